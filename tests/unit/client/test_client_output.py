"""What the management CLI prints: JSON or table mode, notes, and Ditto's errors on one line."""

from __future__ import annotations

import io
import json

from ditto_compat.client.api import DittoApiError
from ditto_compat.client.output import (
    JSON_MODE,
    TABLE_MODE,
    Result,
    describe_error,
    emit,
    output_mode,
)


class _Terminal(io.StringIO):
    """A text stream that says it is a terminal, as ``sys.stdout`` does in an interactive shell."""

    def isatty(self) -> bool:
        return True


def test_output_mode_defaults_to_table_on_a_terminal_and_json_elsewhere() -> None:
    assert output_mode(None, _Terminal()) == TABLE_MODE
    assert output_mode(None, io.StringIO()) == JSON_MODE
    assert output_mode(JSON_MODE, _Terminal()) == JSON_MODE
    assert output_mode(TABLE_MODE, io.StringIO()) == TABLE_MODE


def _emitted(result: Result, mode: str) -> str:
    out = io.StringIO()
    emit(result, mode, out)
    return out.getvalue()


def test_json_mode_prints_the_data_and_nothing_for_no_body() -> None:
    data = [{"thingId": "a:1", "attributes": {"unit": "°C"}}]
    text = _emitted(Result(data, lambda: "TABLE", "note"), JSON_MODE)
    assert json.loads(text) == data
    assert "°C" in text  # not escaped: readable and still valid JSON
    assert _emitted(Result(None, None, "deleted a:1"), JSON_MODE) == ""
    assert _emitted(Result(0), JSON_MODE) == "0\n"


def test_table_mode_prints_the_table_the_note_or_indented_json() -> None:
    assert _emitted(Result([1], lambda: "THE TABLE", "note"), TABLE_MODE) == "THE TABLE\n"
    assert _emitted(Result(None, None, "deleted a:1"), TABLE_MODE) == "deleted a:1\n"
    assert _emitted(Result({"value": 1}), TABLE_MODE) == '{\n  "value": 1\n}\n'


def test_describe_error_is_code_message_and_description() -> None:
    body = {
        "status": 404,
        "error": "things:thing.notfound",
        "message": "The Thing with ID 'a:1' could not be found.",
        "description": "Check the ID.",
    }
    assert (
        describe_error(DittoApiError(404, body, json.dumps(body)))
        == "things:thing.notfound: The Thing with ID 'a:1' could not be found. (Check the ID.)"
    )
    without_description = {"status": 400, "error": "rql:expression.invalid", "message": "bad filter"}
    assert describe_error(DittoApiError(400, without_description, "")) == "rql:expression.invalid: bad filter"


def test_describe_error_of_a_non_ditto_answer() -> None:
    html = "\n<html><head><title>502 Bad Gateway</title></head></html>\n"
    assert (
        describe_error(DittoApiError(502, None, html))
        == "HTTP 502: <html><head><title>502 Bad Gateway</title></head></html>"
    )
    assert describe_error(DittoApiError(500, None, "")) == "HTTP 500"
    assert describe_error(DittoApiError(500, ["not", "an", "error"], "[]")) == "HTTP 500: []"

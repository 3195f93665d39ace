"""The management CLI's command line: sub-commands, options, environment defaults, bodies and sort keys."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from ditto_compat.cli import build_parser
from ditto_compat.client.arguments import DEFAULT_LIMIT, sort_of
from ditto_compat.client.bodies import read_body
from ditto_compat.client.runner import DEFAULT_URL, endpoint_of, run
from ditto_compat.client.things import list_things
from ditto_compat.client.usage import UsageError


def _parse(*argv: str) -> argparse.Namespace:
    return build_parser({}).parse_args(list(argv))


def test_every_verb_has_a_handler() -> None:
    commands = [
        ["things", "list"],
        ["things", "get", "a:1"],
        ["things", "put", "a:1", "{}"],
        ["things", "patch", "a:1", "{}"],
        ["things", "delete", "a:1"],
        ["things", "search"],
        ["things", "count"],
        ["policies", "get", "a:p"],
        ["policies", "put", "a:p", "{}"],
        ["policies", "delete", "a:p"],
        ["connections", "list"],
        ["connections", "get", "c"],
        ["connections", "put", "{}"],
        ["connections", "delete", "c"],
        ["connections", "status", "c"],
    ]
    for argv in commands:
        args = _parse(*argv)
        assert callable(args.handler), argv


def test_search_options() -> None:
    args = _parse(
        "things",
        "search",
        "--filter",
        "eq(attributes/a,1)",
        "--namespaces",
        "org.a,org.b",
        "--fields",
        "thingId",
        "--size",
        "50",
        # a key starting with "-" must be attached with "=", or argparse takes it for an option
        "--sort=-_modified",
        "--limit",
        "0",
        "-o",
        "table",
    )
    assert args.filter == "eq(attributes/a,1)"
    assert args.namespaces == "org.a,org.b"
    assert args.fields == "thingId"
    assert args.size == 50
    assert args.sort == "-_modified"
    assert args.limit == 0
    assert args.output == "table"
    assert _parse("things", "list").limit == DEFAULT_LIMIT


@pytest.mark.parametrize(
    "argv",
    [
        ["things", "list", "--size", "0"],
        ["things", "list", "--size", "201"],
        ["things", "search", "--limit", "-1"],
        ["things", "get"],
        ["things", "frobnicate"],
        ["things", "list", "--output", "yaml"],
        ["things", "list", "--timeout", "0"],
        ["connections", "list", "--user", "x"],
    ],
)
def test_usage_errors_exit_with_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        _parse(*argv)
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_endpoint_takes_options_then_environment_then_defaults() -> None:
    defaults = endpoint_of(_parse("things", "list"), {})
    assert (defaults.url, defaults.user, defaults.password) == (DEFAULT_URL, "ditto", "ditto")

    environ = {"DITTO_URL": "http://env:1", "DITTO_USER": "eve", "DITTO_PASSWORD": "pw"}
    from_env = endpoint_of(_parse("things", "list"), environ)
    assert (from_env.url, from_env.user, from_env.password) == ("http://env:1", "eve", "pw")

    options = _parse("things", "list", "--url", "http://opt:2", "--user", "ann", "--password", "x")
    given = endpoint_of(options, environ)
    assert (given.url, given.user, given.password) == ("http://opt:2", "ann", "x")


def test_connections_use_the_devops_user() -> None:
    defaults = endpoint_of(_parse("connections", "list"), {"DITTO_USER": "eve", "DITTO_PASSWORD": "pw"})
    assert (defaults.user, defaults.password) == ("devops", "foobar")
    environ = {"DITTO_DEVOPS_USER": "ops", "DITTO_DEVOPS_PASSWORD": "secret"}
    from_env = endpoint_of(_parse("connections", "list"), environ)
    assert (from_env.user, from_env.password) == ("ops", "secret")
    given = endpoint_of(_parse("connections", "status", "c", "--devops-password", "p2"), environ)
    assert (given.user, given.password) == ("ops", "p2")


def test_a_url_without_scheme_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="http://host:port"):
        endpoint_of(_parse("things", "list", "--url", "localhost:8080"), {})


def test_body_inline_from_a_file_or_from_standard_input(tmp_path: Path) -> None:
    assert read_body('{"a": 1}', None) == {"a": 1}
    assert read_body('"hall-3"', None) == "hall-3"
    assert read_body("null", None) is None
    body_file = tmp_path / "thing.json"
    body_file.write_text('{"attributes": {"unit": "°C"}}', encoding="utf-8")
    assert read_body(None, str(body_file)) == {"attributes": {"unit": "°C"}}
    assert read_body(None, "-", io.StringIO("[1, 2]")) == [1, 2]


@pytest.mark.parametrize(
    ("inline", "file", "message"),
    [
        (None, None, "a JSON body is needed"),
        ("{}", "x.json", "not both"),
        ("{bad", None, "the inline body is not valid JSON"),
        (None, "/nonexistent/thing.json", "cannot read /nonexistent/thing.json"),
    ],
)
def test_body_errors(inline: str | None, file: str | None, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        read_body(inline, file)


def test_sort_keys_get_a_sign_and_lose_the_sort_wrapper() -> None:
    assert sort_of(None) is None
    assert sort_of("") is None
    assert sort_of("thingId") == "+thingId"
    assert sort_of("-_modified, thingId") == "-_modified,+thingId"
    assert sort_of("sort(-attributes/n)") == "-attributes/n"


def test_run_reports_a_usage_error_with_exit_code_2() -> None:
    args = _parse("things", "list", "--url", "localhost:8080")
    out, err = io.StringIO(), io.StringIO()
    assert run(list_things, args, environ={}, stdout=out, stderr=err) == 2
    assert out.getvalue() == ""
    assert err.getvalue().startswith("ditto-compat: error: the URL must look like http://host:port")

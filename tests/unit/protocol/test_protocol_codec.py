"""The Ditto Protocol codec beyond the documentation's examples: topics, envelope validation, headers and the
answers (``protocol-specification``, ``protocol-specification-topic``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ditto_compat.domain.events import ThingEvent
from ditto_compat.domain.policy_resources import PolicyKind
from ditto_compat.domain.things import Outcome, ThingCommand
from ditto_compat.errors import (
    DittoError,
    HeaderInvalid,
    JsonFieldMissing,
    JsonFieldSelectorInvalid,
    JsonInvalid,
    PolicyIdInvalid,
    RqlExpressionInvalid,
    ThingIdInvalid,
    ThingNotModifiable,
    TimeoutInvalid,
    UnknownPath,
    UnknownTopicPath,
)
from ditto_compat.model.headers import IfEqual, command_headers_from
from ditto_compat.model.pointer import MISSING
from ditto_compat.protocol.envelope import (
    Envelope,
    Topic,
    answer_headers,
    parse_envelope,
    parse_topic,
    salvage,
)
from ditto_compat.protocol.policies import policy_command, policy_response
from ditto_compat.protocol.things import (
    RetrieveThings,
    error_envelope,
    retrieve_things_response,
    thing_command,
    thing_event,
    thing_response,
)


def _env(topic: str, path: str = "/", **extra: Any) -> dict[str, Any]:
    return {"topic": topic, "headers": extra.pop("headers", {"correlation-id": "c-1"}), "path": path, **extra}


# ------------------------------------------------------------------------------------------------ topics


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ns/t/things/twin/commands/modify", Topic("ns", "t", "things", "twin", "commands", "modify")),
        ("ns/t/things/live/events/merged", Topic("ns", "t", "things", "live", "events", "merged")),
        ("ns/t/things/twin/errors", Topic("ns", "t", "things", "twin", "errors", None)),
        ("ns/t/things/live/messages/a/b c", Topic("ns", "t", "things", "live", "messages", "a/b c")),
        ("ns/t/things/twin/acks", Topic("ns", "t", "things", "twin", "acks", None)),
        ("ns/t/things/twin/acks/my:ack", Topic("ns", "t", "things", "twin", "acks", "my:ack")),
        ("_/_/things/twin/search/subscribe", Topic("_", "_", "things", "twin", "search", "subscribe")),
        (
            "ns/t/things/twin/streaming/subscribeForPersistedEvents",
            Topic("ns", "t", "things", "twin", "streaming", "subscribeForPersistedEvents"),
        ),
        ("ns/p/policies/commands/create", Topic("ns", "p", "policies", None, "commands", "create")),
        ("ns/p/policies/errors", Topic("ns", "p", "policies", None, "errors", None)),
        (
            "ns/p/policies/announcements/subjectDeletion",
            Topic("ns", "p", "policies", None, "announcements", "subjectDeletion"),
        ),
        (
            "_/c1/connections/announcements/opened",
            Topic("_", "c1", "connections", None, "announcements", "opened"),
        ),
    ],
)
def test_topics_parse_and_render_back(text: str, expected: Topic) -> None:
    assert parse_topic(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ns/t/things",
        "ns/t/things/twin",
        "ns/t/things/twin/",
        "/t/things/twin/commands/modify",
        "ns//things/twin/commands/modify",
        "ns/t/thingz/twin/commands/modify",
        "ns/t/things/digital/commands/modify",
        "ns/t/things/commands/modify",  # a things topic needs its channel
        "_/_/things/search/errors",  # the legacy shape of one documentation example
        "ns/t/things/twin/commandos/modify",
        "ns/t/things/twin/commands",
        "ns/t/things/twin/commands/update",
        "ns/t/things/twin/events/changed",
        "ns/t/things/twin/errors/oops",
        "ns/t/things/twin/messages/subject",  # messages only on live
        "ns/t/things/live/messages",
        "ns/t/things/live/search/subscribe",  # search only on the twin
        "ns/t/things/twin/acks/x",  # labels have 3 to 100 characters
        "ns/t/things/twin/acks/bad label",
        "ns/t/things/twin/streaming/subscribe",
        "ns/p/policies/twin/commands/create",
        "ns/p/policies/messages/hello",
        "ns/p/policies/announcements",
    ],
)
def test_invalid_topics_are_unknown_topic_paths(text: str) -> None:
    with pytest.raises(UnknownTopicPath) as raised:
        parse_topic(text)
    assert raised.value.status == 400
    assert raised.value.error_code == "things.protocol.adapter:unknown.topicpath"


# ------------------------------------------------------------------------------------------------ envelopes


def test_an_envelope_parses_from_text_bytes_and_dicts() -> None:
    body = _env("ns/t/things/twin/commands/modify", "/attributes/a", value=1)
    for raw in (json.dumps(body), json.dumps(body).encode(), body):
        env = parse_envelope(raw)
        assert env.topic == Topic("ns", "t", "things", "twin", "commands", "modify")
        assert env.value == 1
        assert env.to_json() == body


def test_envelope_json_has_ditto_key_order_and_omits_absent_fields() -> None:
    env = Envelope(
        Topic("ns", "t", "things", "twin", "events", "modified"),
        {},
        "/",
        value=None,
        status=200,
        fields="a",
        extra={"x": 1},
        revision=3,
        timestamp="2024-01-01T00:00:00Z",
    )
    keys = ["topic", "headers", "path", "value", "fields", "extra", "status", "revision", "timestamp"]
    assert list(env.to_json()) == keys
    assert env.to_json()["value"] is None  # null is a value (merge-delete), unlike an absent one
    bare = Envelope(Topic("ns", "t", "things", "twin", "commands", "delete"), {}, "/")
    assert list(bare.to_json()) == ["topic", "headers", "path"]


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("{not json", JsonInvalid),
        (b"\xff", JsonInvalid),
        ("[]", JsonInvalid),
        ('"START-SEND-EVENTS"', JsonInvalid),
        ({"headers": {}, "path": "/"}, JsonFieldMissing),
        ({"topic": "ns/t/things/twin/commands/retrieve", "path": "/"}, JsonFieldMissing),
        ({"topic": "ns/t/things/twin/commands/retrieve", "headers": {}}, JsonFieldMissing),
        ({"topic": 1, "headers": {}, "path": "/"}, JsonInvalid),
        ({"topic": "ns/t/things/twin/commands/retrieve", "headers": [], "path": "/"}, JsonInvalid),
        ({"topic": "ns/t/things/twin/commands/retrieve", "headers": {}, "path": 5}, JsonInvalid),
        (_env("ns/t/things/twin/commands/retrieve", status="200"), JsonInvalid),
        (_env("ns/t/things/twin/commands/retrieve", status=700), JsonInvalid),
        (_env("ns/t/things/twin/commands/retrieve", fields=["a"]), JsonInvalid),
        (_env("ns/t/things/twin/events/created", revision=-1), JsonInvalid),
        (_env("ns/t/things/twin/events/created", revision=True), JsonInvalid),
        (_env("ns/t/things/twin/events/created", timestamp=1), JsonInvalid),
        (_env("ns/t/things/twin/commands/frobnicate"), UnknownTopicPath),
        (_env("ns/t/things/twin/commands/retrieve", headers={"response-required": "maybe"}), HeaderInvalid),
        (_env("ns/t/things/twin/commands/retrieve", headers={"timeout": "forever"}), TimeoutInvalid),
        (_env("ns/t/things/twin/commands/retrieve", headers={"timeout": "5m"}), TimeoutInvalid),
        (_env("ns/t/things/twin/commands/retrieve", headers={"if-match": "rev:1"}), HeaderInvalid),
        (_env("ns/t/things/twin/commands/retrieve", headers={"if-equal": "sometimes"}), HeaderInvalid),
        (_env("ns/t/things/twin/commands/retrieve", headers={"correlation-id": 42}), HeaderInvalid),
        (_env("ns/t/things/twin/commands/retrieve", headers={"correlation-id": ""}), HeaderInvalid),
        (_env("ns/t/things/twin/commands/retrieve", headers={"requested-acks": ["x"]}), HeaderInvalid),
        (_env("ns/t/things/twin/commands/retrieve", headers={"requested-acks": {"a": 1}}), HeaderInvalid),
    ],
)
def test_invalid_envelopes_answer_ditto_400_errors(raw: Any, error: type[DittoError]) -> None:
    with pytest.raises(error) as raised:
        parse_envelope(raw)
    assert raised.value.status == 400


def test_envelope_error_codes() -> None:
    codes = {}
    for raw in ("{", {"headers": {}}, {"topic": [], "headers": {}, "path": "/"}):
        with pytest.raises(DittoError) as raised:
            parse_envelope(raw)
        codes[raised.value.error_code] = raised.value.status
    assert codes == {"json.invalid": 400, "json.field.missing": 400}


def test_a_failed_envelope_keeps_its_correlation_id_for_the_error_answer() -> None:
    with pytest.raises(UnknownTopicPath) as raised:
        parse_envelope(_env("ns/t/things/twin/nonsense/x", headers={"correlation-id": "c-9"}))
    assert raised.value.headers["correlation-id"] == "c-9"
    answer = error_envelope(raised.value, None, {}).to_json()
    assert answer["headers"]["correlation-id"] == "c-9"
    assert answer["topic"] == "unknown/unknown/things/twin/errors"


def test_valid_typed_headers_pass_and_custom_headers_pass_verbatim() -> None:
    headers = {
        "Correlation-Id": "c",
        "response-required": False,
        "timeout": 10,
        "requested-acks": ["twin-persisted", "my:ack"],
        "ditto-weak-ack": "false",
        "my-app-header": {"any": ["json"]},
    }
    env = parse_envelope(_env("ns/t/things/twin/commands/retrieve", headers=headers))
    assert env.headers == headers
    assert env.correlation_id == "c"
    parse_envelope(_env("ns/t/things/twin/commands/retrieve", headers={"requested-acks": "a-1,b-2"}))


def test_salvage_reads_what_it_can() -> None:
    assert salvage("{") == (None, {})
    assert salvage("[1]") == (None, {})
    raw = {"topic": "ns/t/things/live/commands/modify", "headers": {"correlation-id": "x"}}
    topic, headers = salvage(json.dumps(raw))
    assert topic == Topic("ns", "t", "things", "live", "commands", "modify")
    assert headers == {"correlation-id": "x"}
    assert salvage({"topic": "bad", "headers": {"correlation-id": 1}}) == (None, {})


# ------------------------------------------------------------------------------------------------ headers


def test_command_headers_from_parses_like_the_http_api() -> None:
    headers = command_headers_from(
        {
            "Response-Required": "false",
            "timeout": "250ms",
            "if-match": '"rev:1"',
            "if-none-match": "*",
            "if-equal": "skip",
            "allow-policy-lockout": "true",
            "dry-run": "true",
            "correlation-id": "from-mapping",
        }
    )
    assert headers.correlation_id == "from-mapping"
    assert headers.response_required is False
    assert headers.timeout_s == 0.25
    assert headers.if_match is not None and headers.if_match.tags == ('"rev:1"',)
    assert headers.if_none_match is not None and headers.if_none_match.any
    assert headers.if_equal is IfEqual.SKIP
    assert headers.allow_policy_lockout and headers.dry_run
    assert command_headers_from({"correlation-id": "a"}, "b").correlation_id == "b"
    assert command_headers_from({}).correlation_id  # a new one


def test_protocol_headers_become_command_headers() -> None:
    headers = {"correlation-id": "c", "response-required": False, "timeout": 5, "if-equal": "skip"}
    cmd = thing_command(parse_envelope(_env("ns/t/things/twin/commands/retrieve", headers=headers)))
    assert isinstance(cmd, ThingCommand)
    assert cmd.headers.correlation_id == "c"
    assert cmd.headers.response_required is False
    assert cmd.headers.timeout_s == 5.0
    assert cmd.headers.if_equal is IfEqual.SKIP


def test_the_condition_header_becomes_a_checked_query() -> None:
    env = parse_envelope(
        _env("ns/t/things/twin/commands/delete", headers={"condition": "eq(attributes/a,1)"})
    )
    cmd = thing_command(env)
    assert isinstance(cmd, ThingCommand) and cmd.condition is not None
    with pytest.raises(RqlExpressionInvalid):
        thing_command(parse_envelope(_env("ns/t/things/twin/commands/delete", headers={"condition": "eq("})))


# ------------------------------------------------------------------------------------------------ thing commands


def test_live_commands_parse_like_twin_commands() -> None:
    twin = thing_command(parse_envelope(_env("ns/t/things/twin/commands/modify", "/attributes/a", value=1)))
    live = thing_command(parse_envelope(_env("ns/t/things/live/commands/modify", "/attributes/a", value=1)))
    assert twin == live


def test_paths_are_json_pointers() -> None:
    cmd = thing_command(parse_envelope(_env("ns/t/things/twin/commands/retrieve", "/attributes/a~1b/c")))
    assert isinstance(cmd, ThingCommand)
    assert cmd.path == ("attributes", "a/b", "c")


@pytest.mark.parametrize(
    ("topic", "path", "extra", "error"),
    [
        ("ns/t/things/twin/commands/retrieve", "/nothing", {}, UnknownPath),
        ("ns/t/things/twin/commands/retrieve", "/features/f/unknown", {}, UnknownPath),
        ("ns/t/things/twin/commands/retrieve", "/attributes//a", {}, UnknownPath),
        ("ns/t/things/twin/commands/create", "/attributes", {"value": {}}, UnknownPath),
        ("ns/t/things/twin/commands/modify", "/attributes/a", {}, JsonFieldMissing),
        ("ns/t/things/twin/commands/merge", "/", {}, JsonFieldMissing),
        ("ns/t/things/twin/commands/create", "/", {}, JsonFieldMissing),
        ("ns/t/things/twin/commands/migrate", "/", {"value": {}}, UnknownTopicPath),
        ("ns/t/things/twin/events/modified", "/", {"value": {}}, UnknownTopicPath),
        ("ns/p/policies/commands/retrieve", "/", {}, UnknownTopicPath),
        ("9ns/t/things/twin/commands/retrieve", "/", {}, ThingIdInvalid),
        ("ns/t/things/twin/commands/retrieve", "/", {"fields": "a("}, JsonFieldSelectorInvalid),
        ("_/_/things/twin/commands/retrieve", "/", {}, JsonFieldMissing),
        ("_/_/things/twin/commands/retrieve", "/", {"value": {"thingIds": "ns:a"}}, JsonInvalid),
        ("_/_/things/twin/commands/retrieve", "/", {"value": {"thingIds": ["no id"]}}, ThingIdInvalid),
    ],
)
def test_invalid_thing_commands(
    topic: str, path: str, extra: dict[str, Any], error: type[DittoError]
) -> None:
    with pytest.raises(error) as raised:
        thing_command(parse_envelope(_env(topic, path, **extra)))
    assert raised.value.status == 400


def test_unknown_path_error_code() -> None:
    with pytest.raises(UnknownPath) as raised:
        thing_command(parse_envelope(_env("ns/t/things/twin/commands/retrieve", "/nothing")))
    assert raised.value.error_code == "things.protocol.adapter:unknown.path"
    assert raised.value.to_json()["status"] == 400


def test_merge_with_null_is_a_value() -> None:
    cmd = thing_command(parse_envelope(_env("ns/t/things/twin/commands/merge", "/attributes/a", value=None)))
    assert isinstance(cmd, ThingCommand) and cmd.value is None


def test_retrieve_things() -> None:
    body = _env("_/_/things/twin/commands/retrieve", value={"thingIds": ["ns:a", "ns:b"]}, fields="thingId")
    cmd = thing_command(parse_envelope(body))
    assert isinstance(cmd, RetrieveThings)
    assert cmd.thing_ids == ("ns:a", "ns:b") and cmd.namespace is None and cmd.fields == (("thingId",),)
    answer = retrieve_things_response(cmd, [{"thingId": "ns:a"}], {"correlation-id": "c-1"}).to_json()
    assert answer["topic"] == "ns/_/things/twin/commands/retrieve"
    assert answer["value"] == [{"thingId": "ns:a"}] and answer["status"] == 200
    mixed = RetrieveThings(("a:x", "b:y"))
    assert str(retrieve_things_response(mixed, [], {}).topic) == "_/_/things/twin/commands/retrieve"


# ------------------------------------------------------------------------------------------------ answers


def test_thing_response_headers() -> None:
    command_headers = {
        "correlation-id": "c",
        "if-match": "*",
        "content-type": "application/merge-patch+json",
        "response-required": True,
        "my-header": "kept",
    }
    env = parse_envelope(
        _env("ns/t/things/live/commands/merge", "/attributes", headers=command_headers, value={})
    )
    cmd = thing_command(env)
    assert isinstance(cmd, ThingCommand)
    answer = thing_response(cmd, Outcome(204, tag='"rev:2"'), env.headers, channel="live").to_json()
    assert answer == {
        "topic": "ns/t/things/live/commands/merge",
        "headers": {
            "correlation-id": "c",
            "my-header": "kept",
            "response-required": False,
            "etag": '"rev:2"',
        },
        "path": "/attributes",
        "status": 204,
    }
    retrieved = thing_response(
        ThingCommand("retrieve", "ns:t", ("attributes",), headers=cmd.headers), Outcome(200, {"a": 1}), {}
    ).to_json()
    assert retrieved["value"] == {"a": 1}
    assert retrieved["headers"]["content-type"] == "application/json"


def test_thing_events() -> None:
    deleted = ThingEvent(
        "things.events:attributeDeleted", "ns:t", "deleted", ("attributes", "a/b"), MISSING, 4, "ts"
    )
    body = thing_event(deleted, {"correlation-id": "c"}, channel="live", extra={"attributes": {}}).to_json()
    assert body == {
        "topic": "ns/t/things/live/events/deleted",
        "headers": {"correlation-id": "c"},
        "path": "/attributes/a~1b",
        "extra": {"attributes": {}},
        "revision": 4,
        "timestamp": "ts",
    }
    merged = ThingEvent("things.events:thingMerged", "ns:t", "merged", (), {"a": None}, 5, "ts")
    body = thing_event(merged, {"Content-Type": "application/json"}).to_json()
    assert body["headers"] == {"content-type": "application/merge-patch+json"}
    assert body["value"] == {"a": None} and body["path"] == "/"


def test_error_envelopes() -> None:
    error = ThingNotModifiable(headers={"correlation-id": "c"})
    thing_topic = Topic("ns", "t", "things", "live", "commands", "modify")
    body = error_envelope(error, thing_topic, {"if-match": "*", "x": "y"}).to_json()
    assert body["topic"] == "ns/t/things/live/errors"
    assert body["status"] == 403 and body["path"] == "/"
    assert body["value"] == error.to_json()
    assert body["headers"] == {
        "x": "y",
        "correlation-id": "c",
        "response-required": False,
        "content-type": "application/json",
    }
    policy_topic = Topic("ns", "p", "policies", None, "commands", "modify")
    assert str(error_envelope(PolicyIdInvalid(), policy_topic, {}).topic) == "ns/p/policies/errors"
    assert str(error_envelope(error, None, {}).topic) == "unknown/unknown/things/twin/errors"


def test_answer_headers_replace_the_correlation_id_in_any_casing() -> None:
    assert answer_headers({"Correlation-ID": "old"}, correlation_id="new") == {
        "correlation-id": "new",
        "response-required": False,
    }


# ------------------------------------------------------------------------------------------------ policies


@pytest.mark.parametrize(
    ("path", "kind", "label", "key"),
    [
        ("/", PolicyKind.POLICY, None, None),
        ("/entries", PolicyKind.ENTRIES, None, None),
        ("/entries/owner", PolicyKind.ENTRY, "owner", None),
        ("/entries/owner/subjects", PolicyKind.SUBJECTS, "owner", None),
        ("/entries/owner/subjects/google:https://x/y", PolicyKind.SUBJECT, "owner", "google:https://x/y"),
        ("/entries/owner/resources", PolicyKind.RESOURCES, "owner", None),
        ("/entries/owner/resources/thing:/features/f", PolicyKind.RESOURCE, "owner", "thing:/features/f"),
        ("/entries/owner/resources/thing:/", PolicyKind.RESOURCE, "owner", "thing:/"),
        ("/entries/owner/namespaces", PolicyKind.NAMESPACES, "owner", None),
        ("/entries/owner/references", PolicyKind.REFERENCES, "owner", None),
        ("/imports", PolicyKind.IMPORTS, None, None),
        ("/imports/ns:other", PolicyKind.IMPORT, None, "ns:other"),
        ("/imports/ns:other/entries", PolicyKind.IMPORT_ENTRIES, None, "ns:other"),
    ],
)
def test_policy_paths(path: str, kind: PolicyKind, label: str | None, key: str | None) -> None:
    cmd = policy_command(parse_envelope(_env("ns/p/policies/commands/retrieve", path)))
    resource = cmd.resource
    assert resource.kind is kind and resource.label == label
    assert key in (None, resource.subject_id, resource.resource_key, resource.import_id)
    assert resource.ditto_path == ("/" if path == "/" else path)


@pytest.mark.parametrize(
    ("topic", "path", "extra", "error"),
    [
        ("ns/p/policies/commands/retrieve", "/nothing", {}, UnknownPath),
        ("ns/p/policies/commands/retrieve", "/entries//subjects", {}, UnknownPath),
        ("ns/p/policies/commands/create", "/entries/a", {"value": {}}, UnknownPath),
        ("ns/p/policies/commands/delete", "/entries", {}, UnknownPath),
        ("ns/p/policies/commands/delete", "/entries/a/subjects", {}, UnknownPath),
        ("ns/p/policies/commands/modify", "/entries/a", {}, JsonFieldMissing),
        ("ns/p/policies/commands/merge", "/", {"value": {}}, UnknownTopicPath),
        ("ns/t/things/twin/commands/retrieve", "/", {}, UnknownTopicPath),
        ("9ns/p/policies/commands/retrieve", "/", {}, PolicyIdInvalid),
    ],
)
def test_invalid_policy_commands(
    topic: str, path: str, extra: dict[str, Any], error: type[DittoError]
) -> None:
    with pytest.raises(error) as raised:
        policy_command(parse_envelope(_env(topic, path, **extra)))
    assert raised.value.status == 400


def test_policy_view_header_and_response() -> None:
    headers = {"correlation-id": "c", "policy-view": "resolved"}
    env = parse_envelope(_env("ns/p/policies/commands/retrieve", headers=headers))
    cmd = policy_command(env)
    assert cmd.wants_resolved_view
    answer = policy_response(cmd, Outcome(200, {"entries": {}}, '"rev:3"'), env.headers).to_json()
    assert answer["topic"] == "ns/p/policies/commands/retrieve"
    assert answer["headers"] == {
        "correlation-id": "c",
        "response-required": False,
        "content-type": "application/json",
        "etag": '"rev:3"',
    }
    assert answer["value"] == {"entries": {}} and answer["status"] == 200


def test_topics_are_parsed_once_per_text_but_an_invalid_one_raises_every_time() -> None:
    text = "org.acme/lamp/things/twin/commands/modify"
    assert parse_topic(text) is parse_topic(text)
    for _ in range(2):
        with pytest.raises(DittoError):
            parse_topic("org.acme/lamp/things/nowhere/commands/modify")
    long_name = "n" * 300  # beyond the cached length: parsed all the same
    assert parse_topic(f"org.acme/{long_name}/things/twin/events/modified").name == long_name

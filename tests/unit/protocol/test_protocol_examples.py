"""Every Ditto Protocol example of Ditto's documentation through the codec (``protocol/examples``).

Commands parse into the command the HTTP API would build, responses render from an Outcome into the example's
topic, path, status and value, events render from a ThingEvent into the example, and errors render from the
error JSON into the example's topic, status and value. The examples are shape fixtures, not conversations:
correlation ids are placeholders (``<command-correlation-id>`` vs ``<preserved-command-correlation-id>``), so a
response is checked to carry its command's id instead.
"""

from __future__ import annotations

from typing import Any

import pytest
from protocol_examples import EXAMPLES, Example, command_of, is_response, under

from ditto_compat.domain.events import ThingEvent
from ditto_compat.domain.policy_commands import PolicyCommand
from ditto_compat.domain.things import Outcome, ThingCommand, check_body_thing_id
from ditto_compat.errors import ThingIdNotSettable, UnknownPath, UnknownTopicPath, error_from_json
from ditto_compat.model.fields import parse_fields
from ditto_compat.model.pointer import MISSING, parse_pointer
from ditto_compat.protocol.envelope import parse_envelope, parse_topic
from ditto_compat.protocol.policies import policy_command, policy_response
from ditto_compat.protocol.things import (
    RetrieveThings,
    error_envelope,
    retrieve_things_response,
    thing_command,
    thing_event,
    thing_response,
)

pytestmark = pytest.mark.skipif(not EXAMPLES, reason="the Ditto protocol examples are not available")


def _ids(examples: list[Example]) -> list[str]:
    return [example.id for example in examples]


# A legacy search error topic without a channel (``_/_/things/search/errors``): current Ditto rejects a things
# topic without twin/live, and search failures travel as ``.../search/failed`` events instead.
LEGACY_TOPICS = {"search/exceptions/thing-search_search_option_invalid.md"}
# ``deleteimport*`` address ``/import/<id>``: a typo of the example generator, Ditto's path is ``/imports/<id>``
# (as ``retrieveimport`` and ``modifyimport`` have it); the codec answers unknown.path for it.
TYPO_PATHS = {"policies/commands/modify/deleteimport.md", "policies/commands/modify/deleteimportresponse.md"}


# ------------------------------------------------------------------------------------------------ envelopes


@pytest.mark.parametrize("example", EXAMPLES, ids=_ids(EXAMPLES))
def test_every_example_is_an_envelope_that_renders_back_unchanged(example: Example) -> None:
    if example.file in LEGACY_TOPICS:
        with pytest.raises(UnknownTopicPath) as raised:
            parse_envelope(example.body)
        assert raised.value.status == 400
        return
    env = parse_envelope(example.body)
    assert env.to_json() == example.body
    assert str(env.topic) == example.body["topic"]


def test_the_vectors_are_all_there() -> None:
    # the inventory counts 323 blocks; a changed count means the loader or the checkout changed
    assert len(EXAMPLES) == 323


# ------------------------------------------------------------------------------------------------ things


THING_COMMANDS = [e for e in under("things/commands/") if not is_response(e)]
THING_RESPONSES = [e for e in under("things/commands/") if is_response(e)]


@pytest.mark.parametrize("example", THING_COMMANDS, ids=_ids(THING_COMMANDS))
def test_thing_command_examples_parse_to_the_command(example: Example) -> None:
    env = parse_envelope(example.body)
    cmd = thing_command(env)
    body = example.body
    if isinstance(cmd, RetrieveThings):
        assert body["topic"] == "_/_/things/twin/commands/retrieve"
        assert list(cmd.thing_ids) == body["value"]["thingIds"]
        assert cmd.fields == (parse_fields(body["fields"]) if "fields" in body else None)
        return
    assert isinstance(cmd, ThingCommand)
    namespace, name = body["topic"].split("/")[:2]
    assert cmd.thing_id == f"{namespace}:{name}"
    assert cmd.action == env.topic.action
    assert cmd.path == parse_pointer(body["path"])
    expected_value = body["value"] if cmd.action in ("create", "modify", "merge") else MISSING
    assert cmd.value == expected_value
    assert cmd.headers.correlation_id == body["headers"]["correlation-id"]
    assert cmd.fields == (parse_fields(body["fields"]) if "fields" in body else None)
    assert cmd.type.startswith(f"things.commands:{cmd.action}")


@pytest.mark.parametrize("example", THING_RESPONSES, ids=_ids(THING_RESPONSES))
def test_thing_response_examples_render_from_an_outcome(example: Example) -> None:
    command_env = parse_envelope(command_of(example).body)
    cmd = thing_command(command_env)
    body = example.body
    status = body["status"]
    value = body.get("value", MISSING) if status in (200, 201) else MISSING
    if isinstance(cmd, RetrieveThings):
        rendered = retrieve_things_response(cmd, value, command_env.headers).to_json()
    else:
        rendered = thing_response(cmd, Outcome(status, value, '"rev:1"'), command_env.headers).to_json()
        assert rendered["headers"]["etag"] == '"rev:1"'
    assert rendered["topic"] == body["topic"]
    assert rendered["path"] == body["path"]
    assert rendered["status"] == status
    if status in (200, 201):
        assert rendered["value"] == body["value"]
    else:
        # some 204 examples (modifyattributesresponse, modifyfeature[s]response) carry "value": null; a 204 has
        # no body, so neither has the response
        assert "value" not in rendered
        assert body.get("value") is None
    assert rendered["headers"]["correlation-id"] == command_env.headers["correlation-id"]
    assert rendered["headers"]["response-required"] is False


# Ten files address ``.../fancy-thing/...`` while their Thing JSON says ``org.eclipse.ditto:fancy-thing_53``: the
# codec parses them (it does not read the payload), and the Things strategy refuses them as Ditto would.
MISMATCHED = [
    e
    for e in THING_COMMANDS
    if isinstance(e.body.get("value"), dict)
    and e.body["path"] == "/"
    and "thingId" in e.body["value"]
    and e.body["value"]["thingId"] != ":".join(e.body["topic"].split("/")[:2])
]


@pytest.mark.parametrize("example", MISMATCHED, ids=_ids(MISMATCHED))
def test_examples_with_a_foreign_thing_id_in_the_payload_are_refused_by_the_domain(example: Example) -> None:
    cmd = thing_command(parse_envelope(example.body))
    assert isinstance(cmd, ThingCommand)
    with pytest.raises(ThingIdNotSettable):
        check_body_thing_id(cmd.thing_id, cmd.value)


THING_EVENTS = under("things/events/")


@pytest.mark.parametrize("example", THING_EVENTS, ids=_ids(THING_EVENTS))
def test_thing_event_examples_render_from_a_thing_event(example: Example) -> None:
    body = example.body
    topic = parse_topic(body["topic"])
    assert topic.action is not None
    event = ThingEvent(
        type="things.events:any",
        thing_id=topic.entity_id,
        action=topic.action,
        path=parse_pointer(body["path"]),
        value=body.get("value", MISSING),
        revision=body["revision"],
        timestamp=body.get("timestamp", ""),
    )
    assert thing_event(event, body["headers"]).to_json() == body


ERRORS = under("things/exceptions/") + under("policies/exceptions/")


@pytest.mark.parametrize("example", ERRORS, ids=_ids(ERRORS))
def test_error_examples_render_from_the_error(example: Example) -> None:
    body = example.body
    error = error_from_json(body["value"])
    topic = parse_topic(body["topic"])
    # the topic of the failed command: same entity, group and channel
    command_topic = topic.with_criterion("commands", "modify")
    rendered = error_envelope(error, command_topic, body["headers"]).to_json()
    assert rendered["topic"] == body["topic"]
    assert rendered["status"] == body["status"] == error.status
    assert rendered["path"] == body["path"] == "/"
    # "href" / "url" (two examples) are links this server does not render
    expected = {k: v for k, v in body["value"].items() if k not in ("href", "url")}
    assert rendered["value"] == expected
    assert rendered["headers"]["response-required"] is False
    if "correlation-id" in body["headers"]:
        assert rendered["headers"]["correlation-id"] == body["headers"]["correlation-id"]


# ------------------------------------------------------------------------------------------------ policies


POLICY_COMMANDS = [e for e in under("policies/commands/") if not is_response(e) and e.file not in TYPO_PATHS]
POLICY_RESPONSES = [e for e in under("policies/commands/") if is_response(e) and e.file not in TYPO_PATHS]


@pytest.mark.parametrize("example", POLICY_COMMANDS, ids=_ids(POLICY_COMMANDS))
def test_policy_command_examples_parse_to_the_command(example: Example) -> None:
    env = parse_envelope(example.body)
    cmd = policy_command(env)
    body = example.body
    assert isinstance(cmd, PolicyCommand)
    namespace, name = body["topic"].split("/")[:2]
    assert cmd.policy_id == f"{namespace}:{name}"
    assert cmd.action == env.topic.action
    assert cmd.resource.ditto_path == body["path"]
    expected_value = body["value"] if cmd.action in ("create", "modify") else MISSING
    assert cmd.value == expected_value
    assert cmd.fields == (parse_fields(body["fields"]) if "fields" in body else None)
    assert cmd.headers.correlation_id == body["headers"]["correlation-id"]


@pytest.mark.parametrize("example", POLICY_RESPONSES, ids=_ids(POLICY_RESPONSES))
def test_policy_response_examples_render_from_an_outcome(example: Example) -> None:
    command_env = parse_envelope(command_of(example).body)
    cmd = policy_command(command_env)
    body = example.body
    status = body["status"]
    value: Any = body.get("value", MISSING) if status in (200, 201) else MISSING
    rendered = policy_response(cmd, Outcome(status, value), command_env.headers).to_json()
    assert rendered["topic"] == body["topic"]
    assert rendered["path"] == body["path"]
    assert rendered["status"] == status
    assert rendered.get("value", MISSING) == value
    assert "etag" not in rendered["headers"]
    assert rendered["headers"]["correlation-id"] == command_env.headers["correlation-id"]


def test_the_delete_import_examples_use_a_path_ditto_does_not_know() -> None:
    (example,) = [e for e in EXAMPLES if e.file == "policies/commands/modify/deleteimport.md"]
    with pytest.raises(UnknownPath) as raised:
        policy_command(parse_envelope(example.body))
    assert raised.value.status == 400
    fixed = {**example.body, "path": example.body["path"].replace("/import/", "/imports/")}
    assert policy_command(parse_envelope(fixed)).type == "policies.commands:deletePolicyImport"


def test_every_command_example_is_covered() -> None:
    covered = {e.id for e in THING_COMMANDS + THING_RESPONSES + POLICY_COMMANDS + POLICY_RESPONSES}
    commands = [e for e in EXAMPLES if "/commands/" in e.file and not e.file.startswith("search/")]
    missing = [e.id for e in commands if e.id not in covered and e.file not in TYPO_PATHS]
    assert missing == []

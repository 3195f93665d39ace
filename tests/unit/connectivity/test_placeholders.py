"""Placeholders and function pipelines, with the cases of ``basic-placeholders`` and
``connectivity-header-mapping``."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from ditto_compat.connectivity.placeholders import (
    PlaceholderSource,
    compile_condition,
    compile_template,
    matches_filter,
)
from ditto_compat.errors import DittoError
from ditto_compat.protocol.envelope import Envelope, parse_topic

NOW = datetime(2024, 1, 6, 14, 23, 42, 123000, tzinfo=UTC)

CREATE = parse_topic("org.eclipse.ditto/device-123/things/twin/commands/create")
MESSAGE = parse_topic("org.eclipse.ditto/device-123/things/live/messages/hello.world")

SOURCE = PlaceholderSource(
    headers={
        "Device_ID": "org.eclipse:sensor-1",
        "scopes": "openid email",
        "response-required": "true",
        "spaced": "  padded  ",
        "encoded": "a%20b+c",
        "b64": "aGVsbG8gd29ybGQ=",
        "empty": "",
        "number": 42,
    },
    topic=CREATE,
    path="/features/lamp/properties/on",
    thing_json={"attributes": {"location": "kitchen", "floor": 2}},
    connection_id="conn-1",
    source_address="telemetry/a",
    request_subject="integration:ditto",
    clock=lambda: NOW,
)


def resolve(text: str, source: PlaceholderSource = SOURCE) -> str | None:
    return compile_template(text).resolve(source)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # basic-placeholders "Examples" for a create command topic
        ("{{ topic:full }}", "org.eclipse.ditto/device-123/things/twin/commands/create"),
        ("{{ topic:namespace }}", "org.eclipse.ditto"),
        ("{{ topic:entityName }}", "device-123"),
        ("{{ topic:group }}", "things"),
        ("{{ topic:channel }}", "twin"),
        ("{{ topic:criterion }}", "commands"),
        ("{{ topic:action }}", "create"),
        ("{{ topic:subject }}", None),
        ("{{ topic:action-subject }}", "create"),
        ("{{ thing:id }}", "org.eclipse.ditto:device-123"),
        ("{{ thing:namespace }}", "org.eclipse.ditto"),
        ("{{ thing:name }}", "device-123"),
        ("{{ entity:id }}", "org.eclipse.ditto:device-123"),
        ("{{ entity:name }}", "device-123"),
        ("{{ policy:id }}", None),
        ("{{ feature:id }}", "lamp"),
        ("{{ resource:type }}", "thing"),
        ("{{ resource:path }}", "/features/lamp/properties/on"),
        ("{{ thing-json:attributes/location }}", "kitchen"),
        ("{{ thing-json:attributes/floor }}", "2"),
        ("{{ thing-json:attributes/missing }}", None),
        ("{{ header:device_id }}", "org.eclipse:sensor-1"),  # case-insensitive
        ("{{ header:DEVICE_ID }}", "org.eclipse:sensor-1"),
        ("{{ header:number }}", "42"),
        ("{{ header:missing }}", None),
        ("{{ request:subjectId }}", "integration:ditto"),
        ("{{ connection:id }}", "conn-1"),
        ("{{ source:address }}", "telemetry/a"),
        ("{{header:device_id}}/{{ connection:id }}", "org.eclipse:sensor-1/conn-1"),
        ("constant", "constant"),
        ("devices/{{ thing:name }}/events", "devices/device-123/events"),
    ],
)
def test_placeholders_resolve(template: str, expected: str | None) -> None:
    assert resolve(template) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ topic:full }}", "org.eclipse.ditto/device-123/things/live/messages/hello.world"),
        ("{{ topic:channel }}", "live"),
        ("{{ topic:criterion }}", "messages"),
        ("{{ topic:action }}", None),
        ("{{ topic:subject }}", "hello.world"),
        ("{{ topic:action-subject }}", "hello.world"),
        ("{{ resource:type }}", "message"),
    ],
)
def test_message_topic_placeholders(template: str, expected: str | None) -> None:
    assert resolve(template, PlaceholderSource(topic=MESSAGE)) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # basic-placeholders "Time Placeholder" examples; now = 2024-01-06T14:23:42.123Z
        ("{{ time:now }}", "2024-01-06T14:23:42.123Z"),
        ("{{ time:now+1h }}", "2024-01-06T15:23:42.123Z"),
        # the doc prints 2023-12-31 here, which is 6 days before; 7 days before is the 30th
        ("{{ time:now-7d }}", "2023-12-30T14:23:42.123Z"),
        ("{{ time:now[h] }}", "2024-01-06T14:00:00.000Z"),
        ("{{ time:now[d] }}", "2024-01-06T00:00:00.000Z"),
        ("{{ time:now-25m[m] }}", "2024-01-06T13:58:00.000Z"),
        ("{{ time:now+3d[s] }}", "2024-01-09T14:23:42.000Z"),
        ("{{ time:now+1mo }}", "2024-02-06T14:23:42.123Z"),
        ("{{ time:now-1y[mo] }}", "2023-01-01T00:00:00.000Z"),
        ("{{ time:now[w] }}", "2024-01-01T00:00:00.000Z"),  # a Saturday; the week starts on Monday
        ("{{ time:now+500ms }}", "2024-01-06T14:23:42.623Z"),
        ("{{ time:now_epoch_millis }}", "1704551022123"),
        ("{{ time:now_epoch_millis[d] }}", "1704499200000"),
        ("{{ time:now_epoch_millis+1s }}", "1704551023123"),
    ],
)
def test_time_placeholders(template: str, expected: str) -> None:
    assert resolve(template) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # the doc's pipeline example: substring-before, default, upper
        ("{{ thing:name | fn:substring-before('-') | fn:default('fallback') | fn:upper() }}", "DEVICE"),
        ("{{ header:missing | fn:substring-before('-') | fn:default('fallback') | fn:upper() }}", "FALLBACK"),
        ('{{ header:missing | fn:default("double") }}', "double"),
        ("{{ header:missing | fn:default(thing:id) }}", "org.eclipse.ditto:device-123"),
        ("{{ header:device_id | fn:default('unused') }}", "org.eclipse:sensor-1"),
        ("{{ fn:default('from nothing') }}", "from nothing"),
        ("{{ header:device_id | fn:substring-before(':') }}", "org.eclipse"),
        ("{{ header:device_id | fn:substring-after(':') }}", "sensor-1"),
        ("{{ header:device_id | fn:substring-after('#') }}", None),
        ("{{ header:device_id | fn:lower() }}", "org.eclipse:sensor-1"),
        ("{{ header:device_id | fn:upper() }}", "ORG.ECLIPSE:SENSOR-1"),
        ("{{ header:spaced | fn:trim() }}", "padded"),
        ("{{ header:scopes | fn:url-encode() }}", "openid+email"),
        ("{{ header:device_id | fn:url-encode() }}", "org.eclipse%3Asensor-1"),
        ("{{ header:encoded | fn:url-decode() }}", "a b c"),
        ("{{ header:scopes | fn:base64-encode() }}", "b3BlbmlkIGVtYWls"),
        ("{{ header:b64 | fn:base64-decode() }}", "hello world"),
        ("{{ header:device_id | fn:base64-decode() }}", None),
        ("{{ header:device_id | fn:delete() }}", None),
        ("{{ header:device_id | fn:delete() | fn:default('ignored') }}", None),
        ("{{ header:device_id | fn:replace('sensor', 'lamp') }}", "org.eclipse:lamp-1"),
        ("{{ header:scopes | fn:split(' ') | fn:join(',') }}", "openid,email"),
        ("{{ header:scopes | fn:split(' ') | fn:upper() | fn:join('+') }}", "OPENID+EMAIL"),
        ("{{ header:device_id | fn:join(',') }}", "org.eclipse:sensor-1"),
        # fn:filter: the doc's four forms
        ("{{ header:device_id | fn:filter('like','org.eclipse:*') }}", "org.eclipse:sensor-1"),
        ("{{ header:device_id | fn:filter('like','allowlist1|foobar|include') }}", None),
        ("{{ header:device_id | fn:filter('like','foo|org.eclipse:sensor-?') }}", "org.eclipse:sensor-1"),
        ("{{ header:device_id | fn:filter(header:response-required,'eq','true') }}", "org.eclipse:sensor-1"),
        ("{{ header:device_id | fn:filter(header:response-required,'eq','false') }}", None),
        ("{{ header:device_id | fn:filter(header:response-required,'ne','false') }}", "org.eclipse:sensor-1"),
        ("{{ header:device_id | fn:filter(header:response-required,'exists') }}", "org.eclipse:sensor-1"),
        ("{{ header:device_id | fn:filter(header:missing,'exists') }}", None),
        ("{{ header:device_id | fn:filter(header:missing,'exists','false') }}", "org.eclipse:sensor-1"),
        ("{{ header:device_id | fn:filter(header:empty,'exists','false') }}", "org.eclipse:sensor-1"),
        ("{{ header:device_id | fn:filter('eq','org.eclipse:sensor-1') }}", "org.eclipse:sensor-1"),
        ("{{ header:device_id | fn:filter('ne','org.eclipse:sensor-1') }}", None),
        ("{{ header:device_id | fn:filter('exists') }}", "org.eclipse:sensor-1"),
        ("{{ header:missing | fn:filter('exists','false') }}", None),  # only resolved values are filtered
        ("{{ header:scopes | fn:split(' ') | fn:filter('eq','email') }}", "email"),
    ],
)
def test_functions(template: str, expected: str | None) -> None:
    assert resolve(template) == expected


def test_split_yields_several_values() -> None:
    template = compile_template("{{ header:scopes | fn:split(' ') }}@{{ connection:id }}")
    assert template.resolve_all(SOURCE) == ["openid@conn-1", "email@conn-1"]
    assert template.resolve(SOURCE) == "openid@conn-1"


def test_an_unresolvable_part_makes_the_whole_template_unresolvable() -> None:
    template = compile_template("{{ header:device_id }}/{{ header:missing }}")
    assert template.resolve_all(SOURCE) == []
    assert template.resolve(SOURCE) is None


def test_format_keeps_fields_correlated() -> None:
    # basic-placeholders "Correlated field extraction with fn:format()"
    authz = [
        {"reseller": "io.test", "service_provider": "acme", "roles": ["op"]},
        {"reseller": "io.test", "service_provider": "", "roles": ["resellerAdmin"]},
    ]
    template = compile_template("{{ header:authz | fn:format('{reseller}#{service_provider}#{roles}') }}")
    values = [orjson.dumps(item).decode() for item in authz]
    results = [template.resolve(PlaceholderSource(headers={"authz": v})) for v in values]
    assert results == ["io.test#acme#op", "io.test##resellerAdmin"]


def test_format_sections_iterate_arrays() -> None:
    document = {
        "reseller": "io.test",
        "service_provider": "acme",
        "permissions": [
            {"resource": "things", "actions": ["read", "write"]},
            {"resource": "policies", "actions": ["read"]},
        ],
    }
    template = compile_template(
        "{{ header:authz | fn:format('{reseller}:{service_provider}:"
        "{#permissions}{resource}:{#actions}{.}{/actions}{/permissions}') }}"
    )
    source = PlaceholderSource(headers={"authz": orjson.dumps(document).decode()})
    assert template.resolve_all(source) == [
        "io.test:acme:things:read",
        "io.test:acme:things:write",
        "io.test:acme:policies:read",
    ]


def test_format_pointers_escapes_and_missing_fields() -> None:
    template = compile_template("{{ header:doc | fn:format('\\{{/a/b}\\}-{missing}') }}")
    source = PlaceholderSource(headers={"doc": '{"a": {"b": "x"}}'})
    assert template.resolve(source) == "{x}-"


@pytest.mark.parametrize(
    ("template", "code"),
    [
        ("{{ foo:bar }}", "placeholder:unresolved"),
        ("{{ thing:colour }}", "placeholder:unresolved"),
        ("{{ topic:everything }}", "placeholder:unresolved"),
        ("{{ time:later }}", "placeholder:unresolved"),
        ("{{ time:now+1x }}", "placeholder:unresolved"),
        ("{{ header: }}", "placeholder:unresolved"),
        ("{{ header:x | }}", "placeholder:unresolved"),
        ("{{ header:x | fn:nope() }}", "placeholder:function.unknown"),
        ("{{ header:x | fn:upper }}", "placeholder:function.unknown"),  # forgot the parentheses
        ("{{ header:x | fn:default() }}", "placeholder:function.signature.invalid"),
        ("{{ header:x | fn:upper('a') }}", "placeholder:function.signature.invalid"),
        ("{{ header:x | fn:replace('a') }}", "placeholder:function.signature.invalid"),
        ("{{ header:x | fn:filter('a','between','b') }}", "placeholder:function.signature.invalid"),
        ("{{ header:x | fn:default(nope:x) }}", "placeholder:unresolved"),
        ("{{ header:x" + " | fn:trim()" * 11 + " }}", "placeholder:function.too.complex"),
    ],
)
def test_bad_templates_fail_when_compiled(template: str, code: str) -> None:
    with pytest.raises(DittoError) as caught:
        compile_template(template)
    assert caught.value.error_code == code
    assert caught.value.status == 400


def test_ten_functions_are_accepted() -> None:
    assert resolve("{{ header:spaced" + " | fn:trim()" * 10 + " }}") == "padded"


def test_allowed_prefixes_limit_the_placeholders() -> None:
    allowed = frozenset({"header", "time"})
    assert compile_template("{{ header:device_id }}", allowed).resolve(SOURCE) == "org.eclipse:sensor-1"
    with pytest.raises(DittoError) as caught:
        compile_template("{{ thing:id }}", allowed)
    assert caught.value.error_code == "placeholder:unresolved"


def test_quoted_pipes_and_commas_stay_in_arguments() -> None:
    source = PlaceholderSource(headers={"x": "a|b,c"})
    assert resolve("{{ header:x | fn:replace('|', ',') }}", source) == "a,b,c"
    assert resolve("{{ header:x | fn:substring-after(',') }}", source) == "c"


def test_envelope_source_uses_protocol_headers_topic_and_path() -> None:
    envelope = Envelope(
        topic=parse_topic("org.example/lamp-1/things/twin/events/modified"),
        headers={"correlation-id": "c-1", "response-required": False},
        path="/features/light/properties/on",
        value=True,
    )
    source = PlaceholderSource.for_envelope(envelope, connection_id="conn-9")
    assert resolve("{{ header:correlation-id }}", source) == "c-1"
    assert resolve("{{ header:response-required }}", source) == "false"
    assert (
        resolve("{{ thing:id }}/{{ feature:id }}/{{ topic:action }}", source)
        == "org.example:lamp-1/light/modified"
    )
    assert resolve("{{ connection:id }}", source) == "conn-9"


def test_policy_topic_resolves_policy_placeholders() -> None:
    source = PlaceholderSource(topic=parse_topic("org.example/p-1/policies/commands/modify"), path="/")
    assert (
        resolve("{{ policy:id }}|{{ entity:namespace }}|{{ resource:type }}", source)
        == "org.example:p-1|org.example|policy"
    )
    assert resolve("{{ thing:id }}", source) is None


@pytest.mark.parametrize(
    ("condition", "holds"),
    [
        # connectivity-mapping "Mapping conditions"
        ("fn:filter(header:response-required,'eq','true')", True),
        ("fn:filter(header:response-required,'eq','false')", False),
        ("fn:filter(header:missing,'exists')", False),
        ("fn:filter(header:missing,'exists','false')", True),
        ("fn:filter(header:device_id,'like','org.eclipse:*')", True),
        ("{{ fn:filter(header:device_id,'ne','org.eclipse:sensor-1') }}", False),
        ("fn:delete()", False),
    ],
)
def test_conditions(condition: str, holds: bool) -> None:
    assert compile_condition(condition).holds(SOURCE) is holds


def test_enforcement_filters() -> None:
    # basic-connections "enforcement": the input must equal one of the filters
    filters = [compile_template("{{ thing:id }}"), compile_template("{{ thing:namespace }}:other")]
    given = compile_template("{{ header:device_id }}")
    matching = PlaceholderSource(headers={"device_id": "org.example:lamp-1"}, thing_id="org.example:lamp-1")
    other = PlaceholderSource(headers={"device_id": "org.example:lamp-2"}, thing_id="org.example:lamp-1")
    assert matches_filter(given.resolve(matching), filters, matching)
    assert not matches_filter(given.resolve(other), filters, other)
    assert not matches_filter(None, filters, matching)

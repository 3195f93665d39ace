"""Placeholders and function pipelines (``basic-placeholders``, ``connectivity-header-mapping``): templates such as
``{{ header:device_id | fn:substring-after(':') | fn:default(thing:name) }}`` used by header mappings, target
addresses, ``enforcement``, mapping options and mapping conditions.

A template is compiled once (:func:`compile_template`, when a connection opens), so that a message only pays for
the lookups: unknown placeholders and functions, bad signatures and too long pipelines fail at compile time with
Ditto's ``placeholder:*`` errors (400). :meth:`Template.resolve` gives ``None`` when some placeholder cannot be
resolved (or ``fn:delete`` removed it); the caller then drops the header or the message, as Ditto does.

A pipeline value is a tuple of strings: empty means unresolved, several values come from ``fn:split`` and are
applied element by element by the following functions (``fn:join`` makes one string again); several values in one
template give their cartesian product (:meth:`Template.resolve_all`).

Pure: no I/O; the clock is a field of :class:`PlaceholderSource`.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import itertools
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import orjson

from ditto_compat.errors import DittoError
from ditto_compat.model.pointer import MISSING, get_at, parse_pointer
from ditto_compat.protocol.envelope import Envelope, Topic, header_value

MAX_PIPELINE_FUNCTIONS = 10  # Ditto's ImmutableExpressionResolver.MAX_COUNT_PIPELINE_FUNCTIONS


class PlaceholderUnresolved(DittoError):
    status = 400
    error_code = "placeholder:unresolved"
    default_message = "A placeholder could not be resolved."
    default_description = (
        "Some placeholders could not be resolved. "
        "Check the spelling of the placeholder and make sure all required headers are set."
    )


class PlaceholderFunctionUnknown(DittoError):
    status = 400
    error_code = "placeholder:function.unknown"
    default_message = "The function is not known."
    default_description = (
        "Ensure to only use supported functions. "
        "Check if you maybe just forgot to use parentheses for a function with empty parameters."
    )


class PlaceholderFunctionSignatureInvalid(DittoError):
    status = 400
    error_code = "placeholder:function.signature.invalid"
    default_message = "The function signature could not be parsed."
    default_description = "Ensure to use the function with the signature the documentation names."


class PlaceholderFunctionTooComplex(DittoError):
    status = 400
    error_code = "placeholder:function.too.complex"
    default_message = "The placeholder functions are not accepted as they are too complex."
    default_description = f"Please use at most {MAX_PIPELINE_FUNCTIONS} chained functions."


Values = tuple[str, ...]
UNRESOLVED: Values = ()


class _Deleted:
    """``fn:delete()``: the pipeline's value is gone and later functions are skipped."""

    __slots__ = ()


DELETED = _Deleted()
PipelineValue = Values | _Deleted


# ------------------------------------------------------------------------------------------- the source


def _clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class PlaceholderSource:
    """What placeholders are resolved against. Every field is optional: a placeholder whose data is missing
    is unresolved. ``thing:``, ``policy:`` and ``entity:`` fall back to the topic, ``feature:id`` to the path."""

    headers: Mapping[str, Any] = field(default_factory=dict)
    topic: Topic | None = None
    path: str | None = None
    thing_id: str | None = None
    policy_id: str | None = None
    feature_id: str | None = None
    thing_json: Mapping[str, Any] | None = None
    connection_id: str | None = None
    source_address: str | None = None
    request_subject: str | None = None
    clock: Callable[[], datetime] = _clock

    @classmethod
    def for_envelope(
        cls,
        envelope: Envelope,
        *,
        connection_id: str | None = None,
        thing_json: Mapping[str, Any] | None = None,
        request_subject: str | None = None,
        clock: Callable[[], datetime] = _clock,
    ) -> PlaceholderSource:
        """Outbound: the Ditto protocol headers and the signal's topic and path."""
        return cls(
            headers=envelope.headers,
            topic=envelope.topic,
            path=envelope.path,
            thing_json=thing_json,
            connection_id=connection_id,
            request_subject=request_subject,
            clock=clock,
        )

    def entity_id(self) -> str | None:
        if self.topic is not None and self.topic.namespace != "_" and self.topic.name != "_":
            return self.topic.entity_id
        return self.thing_id or self.policy_id

    def resolved_thing_id(self) -> str | None:
        if self.thing_id is not None:
            return self.thing_id
        if self.topic is not None and self.topic.group == "things" and self.topic.name != "_":
            return self.topic.entity_id
        return None

    def resolved_policy_id(self) -> str | None:
        if self.policy_id is not None:
            return self.policy_id
        if self.topic is not None and self.topic.group == "policies" and self.topic.name != "_":
            return self.topic.entity_id
        return None

    def resolved_feature_id(self) -> str | None:
        if self.feature_id is not None:
            return self.feature_id
        if self.path:
            parts = [p for p in self.path.split("/") if p]
            if len(parts) >= 2 and parts[0] == "features":
                return parts[1]
        return None


# ------------------------------------------------------------------------------------------- placeholders

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNIT = r"(?:ms|mo|s|m|h|d|w|y)"
_TIME_RE = re.compile(rf"(now|now_epoch_millis)(?:([+-])(\d+)({_UNIT}))?(?:\[({_UNIT})\])?")

_ENTITY_NAMES = frozenset({"id", "namespace", "name"})
_TOPIC_NAMES = frozenset(
    {
        "full",
        "namespace",
        "entityName",
        "group",
        "channel",
        "criterion",
        "action",
        "subject",
        "action-subject",
    }
)

# the prefixes of ``basic-placeholders`` "Scope: Connections" (plus ``source:address`` for enforcement)
CONNECTION_PREFIXES = frozenset(
    {
        "thing",
        "entity",
        "policy",
        "feature",
        "thing-json",
        "header",
        "topic",
        "resource",
        "request",
        "connection",
        "source",
        "time",
    }
)


def _one(value: str | None) -> Values:
    return UNRESOLVED if value is None or value == "" else (value,)


def _split_id(entity_id: str | None, part: str) -> Values:
    if entity_id is None:
        return UNRESOLVED
    namespace, _, name = entity_id.partition(":")
    return _one({"id": entity_id, "namespace": namespace, "name": name}[part])


def _text(value: Any) -> str:
    """A header or JSON value in the string form placeholders give (strings as they are, the rest as JSON)."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _topic_part(topic: Topic | None, name: str) -> Values:
    if topic is None:
        return UNRESOLVED
    is_message = topic.criterion == "messages"
    parts: dict[str, str | None] = {
        "full": str(topic),
        "namespace": topic.namespace,
        "entityName": topic.name,
        "group": topic.group,
        "channel": topic.channel,
        "criterion": topic.criterion,
        "action": None if is_message else topic.action,
        "subject": topic.action if is_message else None,
        "action-subject": topic.action,
    }
    return _one(parts[name])


def _resource_type(source: PlaceholderSource) -> str | None:
    topic = source.topic
    if topic is None:
        return None
    if topic.group == "things":
        return "message" if topic.criterion == "messages" else "thing"
    return {"policies": "policy", "connections": "connection"}.get(topic.group)


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def _shift(moment: datetime, sign: str, amount: int, unit: str) -> datetime:
    amount = -amount if sign == "-" else amount
    if unit == "mo":
        return _add_months(moment, amount)
    if unit == "y":
        return _add_months(moment, amount * 12)
    seconds = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    return moment + timedelta(seconds=amount * seconds)


def _truncate(moment: datetime, unit: str) -> datetime:
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    if unit == "ms":
        return moment
    moment = moment.replace(microsecond=0)
    if unit == "s":
        return moment
    moment = moment.replace(second=0)
    if unit == "m":
        return moment
    moment = moment.replace(minute=0)
    if unit == "h":
        return moment
    moment = moment.replace(hour=0)
    if unit == "d":
        return moment
    if unit == "w":  # ISO weeks start on Monday
        return moment - timedelta(days=moment.weekday())
    moment = moment.replace(day=1)
    return moment if unit == "mo" else moment.replace(month=1)


def format_instant(moment: datetime) -> str:
    """ISO-8601 in UTC with millisecond precision, as the doc's ``time:now`` examples show it."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _time_resolver(name: str) -> Callable[[PlaceholderSource], Values]:
    match = _TIME_RE.fullmatch(name)
    if match is None:
        raise PlaceholderUnresolved(f"The placeholder 'time:{name}' could not be resolved.")
    kind, sign, amount, unit, truncation = match.groups()

    def resolve(source: PlaceholderSource) -> Values:
        moment = source.clock()
        if sign is not None:
            moment = _shift(moment, sign, int(amount), unit)
        if truncation is not None:
            moment = _truncate(moment, truncation)
        if kind == "now":
            return (format_instant(moment),)
        return (str((moment - _EPOCH) // timedelta(milliseconds=1)),)

    return resolve


def _thing_json_resolver(name: str) -> Callable[[PlaceholderSource], Values]:
    pointer = parse_pointer(name)

    def resolve(source: PlaceholderSource) -> Values:
        if source.thing_json is None:
            return UNRESOLVED
        value = get_at(source.thing_json, pointer)
        if value is MISSING or value is None:
            return UNRESOLVED
        return (_text(value),)

    return resolve


def _header_resolver(name: str) -> Callable[[PlaceholderSource], Values]:
    def resolve(source: PlaceholderSource) -> Values:
        value = header_value(source.headers, name)
        return UNRESOLVED if value is None else (_text(value),)

    return resolve


def _placeholder_resolver(prefix: str, name: str) -> Callable[[PlaceholderSource], Values] | None:
    """The resolver of ``prefix:name``, or None when Ditto does not know it."""
    if prefix in ("thing", "entity", "policy") and name in _ENTITY_NAMES:
        getter: Callable[[PlaceholderSource], str | None] = {
            "thing": PlaceholderSource.resolved_thing_id,
            "entity": PlaceholderSource.entity_id,
            "policy": PlaceholderSource.resolved_policy_id,
        }[prefix]
        return lambda source: _split_id(getter(source), name)
    simple: dict[tuple[str, str], Callable[[PlaceholderSource], str | None]] = {
        ("feature", "id"): PlaceholderSource.resolved_feature_id,
        ("resource", "type"): _resource_type,
        ("resource", "path"): lambda source: source.path,
        ("request", "subjectId"): lambda source: source.request_subject,
        ("connection", "id"): lambda source: source.connection_id,
        ("source", "address"): lambda source: source.source_address,
    }
    if (prefix, name) in simple:
        getter = simple[(prefix, name)]
        return lambda source: _one(getter(source))
    if prefix == "topic" and name in _TOPIC_NAMES:
        return lambda source: _topic_part(source.topic, name)
    if prefix == "header" and name:
        return _header_resolver(name)
    if prefix == "thing-json" and name:
        return _thing_json_resolver(name)
    if prefix == "time":
        return _time_resolver(name)
    return None


@dataclass(frozen=True, slots=True)
class _Placeholder:
    text: str
    resolver: Callable[[PlaceholderSource], Values]

    def resolve(self, source: PlaceholderSource) -> Values:
        return self.resolver(source)


def _compile_placeholder(text: str, allowed: frozenset[str] | None) -> _Placeholder:
    prefix, colon, name = text.partition(":")
    prefix, name = prefix.strip(), name.strip()
    resolver = None
    if colon and (allowed is None or prefix in allowed):
        resolver = _placeholder_resolver(prefix, name)
    if resolver is None:
        raise PlaceholderUnresolved(f"The placeholder '{text}' could not be resolved.")
    return _Placeholder(text, resolver)


# ------------------------------------------------------------------------------------------- functions


@dataclass(frozen=True, slots=True)
class _Literal:
    value: str

    def resolve(self, source: PlaceholderSource) -> Values:
        return (self.value,)


_Argument = _Literal | _Placeholder


def _first(values: Values) -> str | None:
    return values[0] if values else None


def _like(value: str, pattern: str) -> bool:
    # Ditto's LikeFunction: the pattern is quoted, then '*' -> '.*', '?' -> '.', '|' -> alternation
    alternatives = (
        "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in part)
        for part in pattern.split("|")
    )
    return re.fullmatch("|".join(alternatives), value, re.DOTALL) is not None


FILTER_FUNCTIONS = ("eq", "ne", "exists", "like")


def filter_holds(function: str, value: str, compared: str | None) -> bool:
    """One of the RQL functions of ``fn:filter`` (``eq``, ``ne``, ``exists``, ``like``) on resolved strings;
    an unresolved value is the empty string, as in Ditto."""
    if function == "eq":
        return compared is not None and value == compared
    if function == "ne":
        return compared is not None and value != compared
    if function == "exists":
        should_exist = compared is None or compared.lower() == "true"
        return should_exist != (value == "")
    if function == "like":
        return compared is not None and _like(value, compared)
    return False


class _Function:
    name: ClassVar[str]
    arities: ClassVar[tuple[int, ...]] = (0,)

    def __init__(self, args: list[_Argument], text: str) -> None:
        if len(args) not in self.arities:
            raise PlaceholderFunctionSignatureInvalid(f"The function signature <{text}> could not be parsed.")
        self.args = args
        self.text = text

    def apply(self, value: PipelineValue, source: PlaceholderSource) -> PipelineValue:
        if isinstance(value, _Deleted):
            return value
        return self.apply_values(value, source)

    def apply_values(self, values: Values, source: PlaceholderSource) -> PipelineValue:
        out: list[str] = []
        for item in values:
            out.extend(self.map_one(item, source))
        return tuple(out)

    def map_one(self, value: str, source: PlaceholderSource) -> Iterable[str]:
        raise NotImplementedError

    def arg(self, index: int, source: PlaceholderSource) -> str | None:
        return _first(self.args[index].resolve(source))


class _Default(_Function):
    name = "default"
    arities = (1,)

    def apply_values(self, values: Values, source: PlaceholderSource) -> PipelineValue:
        return values if values else self.args[0].resolve(source)


class _SubstringBefore(_Function):
    name = "substring-before"
    arities = (1,)

    def map_one(self, value: str, source: PlaceholderSource) -> Iterable[str]:
        needle = self.arg(0, source)
        if needle is None or needle not in value:
            return ()
        return (value.split(needle, 1)[0],)


class _SubstringAfter(_Function):
    name = "substring-after"
    arities = (1,)

    def map_one(self, value: str, source: PlaceholderSource) -> Iterable[str]:
        needle = self.arg(0, source)
        if needle is None or needle not in value:
            return ()
        return (value.split(needle, 1)[1],)


class _Simple(_Function):
    """A function of the value alone; None drops the value."""

    def map_one(self, value: str, source: PlaceholderSource) -> Iterable[str]:
        result = self.transform(value)
        return () if result is None else (result,)

    def transform(self, value: str) -> str | None:
        raise NotImplementedError


class _Lower(_Simple):
    name = "lower"

    def transform(self, value: str) -> str | None:
        return value.lower()


class _Upper(_Simple):
    name = "upper"

    def transform(self, value: str) -> str | None:
        return value.upper()


class _Trim(_Simple):
    name = "trim"

    def transform(self, value: str) -> str | None:
        return value.strip()


class _UrlEncode(_Simple):
    name = "url-encode"

    def transform(self, value: str) -> str | None:
        # Java's URLEncoder (form encoding): space becomes '+'
        return urllib.parse.quote_plus(value, safe="*")


class _UrlDecode(_Simple):
    name = "url-decode"

    def transform(self, value: str) -> str | None:
        return urllib.parse.unquote_plus(value)


class _Base64Encode(_Simple):
    name = "base64-encode"

    def transform(self, value: str) -> str | None:
        return base64.b64encode(value.encode("utf-8")).decode("ascii")


class _Base64Decode(_Simple):
    name = "base64-decode"

    def transform(self, value: str) -> str | None:
        try:
            return base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None


class _Delete(_Function):
    name = "delete"

    def apply_values(self, values: Values, source: PlaceholderSource) -> PipelineValue:
        return DELETED


class _Replace(_Function):
    name = "replace"
    arities = (2,)

    def map_one(self, value: str, source: PlaceholderSource) -> Iterable[str]:
        old, new = self.arg(0, source) or "", self.arg(1, source)
        if new is None:
            return (value,)
        return (value.replace(old, new) if old else value,)


class _Split(_Function):
    name = "split"
    arities = (1,)

    def map_one(self, value: str, source: PlaceholderSource) -> Iterable[str]:
        separator = self.arg(0, source)
        if not separator:
            return (value,)
        return tuple(part for part in value.split(separator) if part)


class _Join(_Function):
    name = "join"
    arities = (1,)

    def apply_values(self, values: Values, source: PlaceholderSource) -> PipelineValue:
        if not values:
            return values
        return ((self.arg(0, source) or "").join(values),)


class _Filter(_Function):
    """``fn:filter([filterValue,] rqlFunction [, comparedValue])`` (Ditto's PipelineFunctionFilter): keeps the
    pipeline's value if the condition holds. With two parameters the first is the RQL function when it names one
    (the second is then the compared value and the pipeline's value is filtered), else it is the filter value."""

    name = "filter"
    arities = (1, 2, 3)

    def __init__(self, args: list[_Argument], text: str) -> None:
        super().__init__(args, text)
        self.filter_arg: _Argument | None = None
        self.function_arg: _Argument
        self.compared_arg: _Argument | None = None
        if len(args) == 1:
            self.function_arg = args[0]
        elif len(args) == 3:
            self.filter_arg, self.function_arg, self.compared_arg = args
        elif isinstance(args[0], _Literal) and args[0].value in FILTER_FUNCTIONS:
            self.function_arg, self.compared_arg = args
        else:
            self.filter_arg, self.function_arg = args
        function = self.function_arg
        if isinstance(function, _Literal) and function.value not in FILTER_FUNCTIONS:
            raise PlaceholderFunctionSignatureInvalid(
                f"The function signature <{text}> could not be parsed.",
                f"The RQL function must be one of {', '.join(FILTER_FUNCTIONS)}.",
            )

    def apply_values(self, values: Values, source: PlaceholderSource) -> PipelineValue:
        if not values:
            return values  # Ditto filters resolved values only
        function = self.arg_of(self.function_arg, source)
        compared = None if self.compared_arg is None else self.arg_of(self.compared_arg, source)
        if self.filter_arg is not None:
            return values if filter_holds(function, self.arg_of(self.filter_arg, source), compared) else ()
        return tuple(value for value in values if filter_holds(function, value, compared))

    @staticmethod
    def arg_of(arg: _Argument, source: PlaceholderSource) -> str:
        return _first(arg.resolve(source)) or ""


class _Format(_Function):
    """``fn:format(template)``: formats each input value, a JSON object, keeping its fields correlated."""

    name = "format"
    arities = (1,)

    def map_one(self, value: str, source: PlaceholderSource) -> Iterable[str]:
        template = self.arg(0, source)
        if template is None:
            return ()
        try:
            document = orjson.loads(value)
        except orjson.JSONDecodeError:
            return ()
        return _format_values(_parse_format(template, self.text), document)


# a parsed fn:format template: literal text, a field reference, or a section over an array
_FormatNode = tuple[str, str] | tuple[str, str, list[Any]]


def _parse_format(template: str, text: str) -> list[_FormatNode]:
    nodes: list[_FormatNode] = []
    stack: list[tuple[str, list[_FormatNode]]] = []
    literal: list[str] = []
    i = 0
    current = nodes

    def flush() -> None:
        if literal:
            current.append(("text", "".join(literal)))
            literal.clear()

    while i < len(template):
        ch = template[i]
        if ch == "\\" and i + 1 < len(template) and template[i + 1] in "{}":
            literal.append(template[i + 1])
            i += 2
            continue
        if ch != "{":
            literal.append(ch)
            i += 1
            continue
        end = template.find("}", i)
        if end < 0:
            raise PlaceholderFunctionSignatureInvalid(f"The function signature <{text}> could not be parsed.")
        reference = template[i + 1 : end].strip()
        flush()
        if reference.startswith("#"):
            section: list[_FormatNode] = []
            current.append(("section", reference[1:], section))
            stack.append((reference[1:], current))
            current = section
        elif reference.startswith("/") and stack and reference[1:] == stack[-1][0]:
            current = stack.pop()[1]
        else:
            current.append(("field", reference))
        i = end + 1
    flush()
    if stack:
        raise PlaceholderFunctionSignatureInvalid(f"The function signature <{text}> could not be parsed.")
    return nodes


def _field_of(document: Any, reference: str) -> Any:
    if reference == ".":
        return document
    if not isinstance(document, dict):
        return None
    found = get_at(document, parse_pointer(reference))
    return None if found is MISSING else found


def _scalar_texts(value: Any) -> list[str]:
    if value is None:
        return [""]
    if isinstance(value, list):
        return [_text(item) for item in value if item is not None] or [""]
    return [_text(value)]


def _format_values(nodes: list[_FormatNode], document: Any) -> list[str]:
    """Every combination of the template's values over ``document`` (cartesian across fields and sections)."""
    choices: list[list[str]] = []
    for node in nodes:
        if node[0] == "text":
            choices.append([node[1]])
        elif node[0] == "field":
            choices.append(_scalar_texts(_field_of(document, node[1])))
        else:
            items = _field_of(document, node[1])
            elements = items if isinstance(items, list) else [] if items is None else [items]
            rendered: list[str] = []
            for element in elements:
                rendered.extend(_format_values(node[2], element))  # type: ignore[misc]
            choices.append(rendered)
    return ["".join(combination) for combination in itertools.product(*choices)]


_FUNCTIONS: dict[str, type[_Function]] = {
    cls.name: cls
    for cls in (
        _Filter,
        _Default,
        _SubstringBefore,
        _SubstringAfter,
        _Lower,
        _Upper,
        _Trim,
        _UrlEncode,
        _UrlDecode,
        _Base64Encode,
        _Base64Decode,
        _Delete,
        _Replace,
        _Split,
        _Join,
        _Format,
    )
}

# ------------------------------------------------------------------------------------------- parsing


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    quote: str | None = None
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if quote is not None:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == separator and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if quote is not None:
        raise PlaceholderUnresolved(f"The placeholder '{text}' could not be resolved: a quote is not closed.")
    parts.append(text[start:])
    return parts


_FUNCTION_RE = re.compile(r"fn:([a-z0-9-]+)\s*\((.*)\)", re.DOTALL)


def _compile_argument(text: str, allowed: frozenset[str] | None, function_text: str) -> _Argument:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return _Literal(text[1:-1])
    if not text or text[0] in "'\"":
        raise PlaceholderFunctionSignatureInvalid(
            f"The function signature <{function_text}> could not be parsed."
        )
    return _compile_placeholder(text, allowed)


def _compile_function(text: str, allowed: frozenset[str] | None) -> _Function:
    match = _FUNCTION_RE.fullmatch(text)
    if match is None:
        raise PlaceholderFunctionUnknown(f"The function <{text}> is not known.")
    name, params = match.groups()
    cls = _FUNCTIONS.get(name)
    if cls is None:
        raise PlaceholderFunctionUnknown(f"The function <{text}> is not known.")
    args = [] if not params.strip() else _split_outside_quotes(params, ",")
    return cls([_compile_argument(arg, allowed, text) for arg in args], text)


@dataclass(frozen=True, slots=True)
class _Expression:
    """One ``{{ ... }}``: a placeholder (or nothing, when the pipeline starts with a function) and functions."""

    text: str
    start: _Placeholder | None
    functions: tuple[_Function, ...]

    def evaluate(self, source: PlaceholderSource) -> PipelineValue:
        value: PipelineValue = UNRESOLVED if self.start is None else self.start.resolve(source)
        for function in self.functions:
            value = function.apply(value, source)
            if isinstance(value, _Deleted):
                return value
        return value


def compile_expression(text: str, allowed: frozenset[str] | None = None) -> _Expression:
    stages = [stage.strip() for stage in _split_outside_quotes(text, "|")]
    if any(not stage for stage in stages):
        raise PlaceholderUnresolved(f"The placeholder '{text.strip()}' could not be resolved.")
    if len(stages) > MAX_PIPELINE_FUNCTIONS + 1:
        raise PlaceholderFunctionTooComplex(
            f"The placeholder functions are not accepted as they are too complex: '{text.strip()}'."
        )
    start: _Placeholder | None = None
    if not stages[0].startswith("fn:"):
        start = _compile_placeholder(stages.pop(0), allowed)
    return _Expression(text.strip(), start, tuple(_compile_function(stage, allowed) for stage in stages))


_EXPRESSION_RE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled template: literal text and expressions, resolved per message."""

    text: str
    parts: tuple[str | _Expression, ...]

    @property
    def is_constant(self) -> bool:
        return all(isinstance(part, str) for part in self.parts)

    def resolve_all(self, source: PlaceholderSource) -> list[str]:
        """Every value of the template (several when a pipeline yields several); empty when unresolvable."""
        choices: list[Values] = []
        for part in self.parts:
            if isinstance(part, str):
                choices.append((part,))
                continue
            value = part.evaluate(source)
            if isinstance(value, _Deleted) or not value:
                return []
            choices.append(value)
        return ["".join(combination) for combination in itertools.product(*choices)]

    def resolve(self, source: PlaceholderSource) -> str | None:
        """The template's value, or None when a placeholder is unresolvable or deleted (drop the header or
        message, as Ditto does)."""
        if self.is_constant:
            return "".join(self.parts)  # type: ignore[arg-type]
        values = self.resolve_all(source)
        return values[0] if values else None


def compile_template(text: str, allowed: frozenset[str] | None = None) -> Template:
    """Parse ``text`` once. ``allowed`` limits the placeholder prefixes (None: every prefix known here); a prefix
    outside it raises ``placeholder:unresolved`` like an unknown placeholder."""
    parts: list[str | _Expression] = []
    position = 0
    for match in _EXPRESSION_RE.finditer(text):
        if match.start() > position:
            parts.append(text[position : match.start()])
        parts.append(compile_expression(match.group(1), allowed))
        position = match.end()
    if position < len(text):
        parts.append(text[position:])
    return Template(text, tuple(parts))


def contains_placeholder(text: str) -> bool:
    return _EXPRESSION_RE.search(text) is not None


# ------------------------------------------------------------------------------------------- conditions


@dataclass(frozen=True, slots=True)
class Condition:
    """A mapping condition (``incomingConditions`` / ``outgoingConditions``) or ``acknowledgementRequests.filter``:
    a pipeline such as ``fn:filter(header:x,'eq','true')``. Ditto evaluates it as
    ``{{ fn:default('true') | <condition> }}``: it holds when that resolves."""

    text: str
    expression: _Expression

    def holds(self, source: PlaceholderSource) -> bool:
        value = self.expression.evaluate(source)
        return not isinstance(value, _Deleted) and bool(value)


def compile_condition(text: str, allowed: frozenset[str] | None = None) -> Condition:
    body = text.strip()
    match = _EXPRESSION_RE.fullmatch(body)
    if match is not None:
        body = match.group(1).strip()
    return Condition(text, compile_expression(f"fn:default('true') | {body}", allowed))


def matches_filter(value: str | None, filters: Iterable[Template], source: PlaceholderSource) -> bool:
    """Source ``enforcement``: the resolved input must equal one of the resolved filters."""
    if value is None:
        return False
    return any(value in template.resolve_all(source) for template in filters)

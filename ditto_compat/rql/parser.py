"""RQL parser and renderer (``basic-rql``; Ditto's ``RqlPredicateParser.scala`` and ``RqlParserBase.scala``).

The grammar is Ditto's "normalized" RQL::

    Query    := Op "(" Property "," Literal ")"      Op: eq ne gt ge lt le like ilike
              | "in" "(" Property ("," Literal)+ ")"
              | ("and" | "or") "(" Query ("," Query)* ")"
              | "not" "(" Query ")" | "exists" "(" Property ")" | "empty" "(" Property ")"
    Property := any characters but , ) " \\ and backslash escapes; a leading "/" is optional
    Literal  := Double (Integer "." Digits) | Long (no "-0") | "string" | 'string'
              | true | false | null | time:now | time:now_epoch_millis

What this parser decides where Ditto leaves room:

- Whitespace (space, tab, CR, LF, form feed) is allowed around every token; Ditto only allows it in a few
  places. Whitespace inside a property is kept, around it is not (write ``\\u0020`` to keep an edge space).
- Escapes are Ditto's: ``\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX`` in double-quoted strings and properties, and
  ``\\' \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX`` in single-quoted ones. ``\\uD83D\\uDE00`` pairs combine; a lone
  surrogate is refused (it cannot be stored or compared as UTF-8).
- A property is converted to a JSON pointer (``~0``/``~1`` unescaped); an empty one is refused.
- Longs must fit 64 bits and doubles must be finite, as Java's ``Long``/``Double`` parsing demands.
- ``like``/``ilike`` take only strings (Ditto's ``CriteriaFactory`` refuses other values).
- ``time:`` placeholders other than ``now`` and ``now_epoch_millis`` are refused.
- Nesting is limited to :data:`MAX_DEPTH` levels (Ditto's recursive parser has a stack limit too).

Errors are :class:`~ditto_compat.errors.RqlExpressionInvalid` with parboiled's wording, e.g.
``Invalid input 'x', expected ',' (line 1, column 8):`` followed by the line and a caret.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal, NoReturn, cast

from lark import Lark, Token
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ditto_compat.errors import DittoError, RqlExpressionInvalid
from ditto_compat.model.pointer import Pointer, format_pointer, parse_pointer
from ditto_compat.rql.ast import (
    And,
    Compare,
    CompareOp,
    Empty,
    Exists,
    Field,
    In,
    Not,
    Options,
    Or,
    Query,
    SortKey,
    TimeNow,
    Value,
)

MAX_DEPTH = 100
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1

# (a "/" inside a lark regex literal must be written "\\/")
_ESCAPE = r'\\(?:["\\\/bfnrt]|u[0-9a-fA-F]{4})'
_SQ_ESCAPE = r"\\(?:['\\\/bfnrt]|u[0-9a-fA-F]{4})"
# property characters; the first and the last must not be (unescaped) whitespace, which is ignored around tokens
_PROPERTY_EDGE = r'(?:[^,)"\\ \t\n\r\f]|' + _ESCAPE + ")"
_PROPERTY_CHAR = r'(?:[^,)"\\]|' + _ESCAPE + ")"
_PROPERTY = f"{_PROPERTY_EDGE}(?:{_PROPERTY_CHAR}*{_PROPERTY_EDGE})?"

_GRAMMAR = rf"""
query: _compare_op "(" PROPERTY "," literal ")"   -> compare
     | "in" "(" PROPERTY ("," literal)+ ")"         -> in_
     | _logic_op "(" query ("," query)* ")"         -> logic
     | "not" "(" query ")"                          -> not_
     | "exists" "(" PROPERTY ")"                    -> exists
     | "empty" "(" PROPERTY ")"                     -> empty

!_compare_op: "eq" | "ne" | "gt" | "ge" | "lt" | "le" | "like" | "ilike"
!_logic_op: "and" | "or"

literal: NUMBER | DQ_STRING | SQ_STRING | PLACEHOLDER | TRUE | FALSE | NULL

options: option ("," option)*
option: "sort" "(" sort_key ("," sort_key)* ")"     -> sort
      | "size" "(" DIGITS ")"                       -> size
      | "cursor" "(" PROPERTY ")"                   -> cursor
      | "limit" "(" NUMBER "," NUMBER ")"           -> limit
sort_key: SIGN PROPERTY

PROPERTY: /{_PROPERTY}/
NUMBER: /[+-]?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?/
DIGITS: /[0-9]+/
DQ_STRING: /"(?:[^"\\]|{_ESCAPE})*"/
SQ_STRING: /'(?:[^'\\]|{_SQ_ESCAPE})*'/
PLACEHOLDER: /time:[^,)"\\ \t\n\r\f]*/
TRUE: "true"
FALSE: "false"
NULL: "null"
SIGN: "+" | "-"

%ignore /[ \t\n\r\f]+/
"""

# what the expected terminals are called in error messages
_TERMINAL_NAMES = {
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "PROPERTY": "a property",
    "NUMBER": "a number",
    "DIGITS": "digits",
    "DQ_STRING": "a string",
    "SQ_STRING": "a string",
    "PLACEHOLDER": "'time:now'",
    "TRUE": "'true'",
    "FALSE": "'false'",
    "NULL": "'null'",
    "SIGN": "'+' or '-'",
    "$END": "end of input",
}


@lru_cache(maxsize=1)
def _lark() -> Lark:
    # LALR with the contextual lexer: a property may contain almost anything (letters, '(' and spaces too), so
    # a token is only what the parser state allows at that point. Built once, on first use.
    return Lark(
        _GRAMMAR, start=["query", "options"], parser="lalr", lexer="contextual", maybe_placeholders=False
    )


# --------------------------------------------------------------------------------------------- errors


class RqlSyntaxError(Exception):
    """A parse failure with its position; :func:`parse_rql` raises it as ``RqlExpressionInvalid`` and
    :func:`ditto_compat.rql.options.parse_options` as ``SearchOptionInvalid``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _describe(terminals: Sequence[str]) -> str:
    names = sorted(
        {_TERMINAL_NAMES.get(t) or _keyword_name(t) for t in terminals}, key=lambda n: n.strip("'")
    )
    if not names:
        # lark's end state accepts no further character
        return "end of input"
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " or " + names[-1]


def _keyword_name(terminal: str) -> str:
    # lark names the anonymous keyword tokens after their text ("EQ", "ILIKE", "EXISTS", ...)
    return "'" + terminal.lower() + "'"


def _position(text: str, index: int) -> tuple[int, int, str]:
    """1-based line and column of ``index`` and the text of that line."""
    line_start = text.rfind("\n", 0, index) + 1
    line_end = text.find("\n", index)
    if line_end < 0:
        line_end = len(text)
    return text.count("\n", 0, index) + 1, index - line_start + 1, text[line_start:line_end]


def _fail(text: str, index: int, problem: str) -> NoReturn:
    line, column, line_text = _position(text, index)
    raise RqlSyntaxError(f"{problem} (line {line}, column {column}):\n{line_text}\n{' ' * (column - 1)}^")


def _invalid_input(text: str, index: int, expected: Sequence[str]) -> NoReturn:
    problem = "Unexpected end of input" if index >= len(text) else f"Invalid input {_quote_char(text[index])}"
    _fail(text, index, f"{problem}, expected {_describe(expected)}")


def _quote_char(char: str) -> str:
    return "'" + (char if char.isprintable() else f"\\u{ord(char):04x}") + "'"


def _from_lark(text: str, error: UnexpectedInput) -> NoReturn:
    if isinstance(error, UnexpectedCharacters):
        _invalid_input(text, error.pos_in_stream or 0, sorted(error.allowed or ()))
    if isinstance(error, UnexpectedToken):
        token = error.token
        index = len(text) if token.type == "$END" else (token.start_pos or 0)
        _invalid_input(text, index, sorted(error.accepts or error.expected or ()))
    if isinstance(error, UnexpectedEOF):
        _invalid_input(text, len(text), sorted(error.expected or ()))
    _fail(text, error.pos_in_stream or 0, "Invalid input")


# --------------------------------------------------------------------------------------------- tokens


_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_ESCAPE_RE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)


def unescape(raw: str) -> str | None:
    """The text of a token with its escapes replaced, or None if it holds a lone surrogate."""
    if "\\" not in raw:
        return raw

    def one(match: re.Match[str]) -> str:
        escape = match.group(1)
        return chr(int(escape[1:], 16)) if len(escape) == 5 else _ESCAPES[escape]

    text = _ESCAPE_RE.sub(one, raw)
    try:
        # combines \uD83D\uDE00 into one code point, and refuses what is left alone
        return text.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        return None


def _string(text: str, token: Token) -> str:
    value = unescape(token.value[1:-1])
    if value is None:
        _fail(text, _start(token), "Invalid input: a \\u escape is an unpaired surrogate")
    return value


def _start(token: Token) -> int:
    return token.start_pos or 0


def property_pointer(text: str, token: Token) -> Pointer:
    raw = unescape(token.value)
    if raw is None:
        _fail(text, _start(token), "Invalid input: a \\u escape in the property is an unpaired surrogate")
    try:
        pointer = parse_pointer(raw)
    except DittoError as error:
        _fail(text, _start(token), f"Invalid property '{raw}': {error.message}")
    if not pointer:
        _fail(text, _start(token), f"Invalid property '{raw}': it names no field")
    return pointer


def long_value(text: str, token: Token) -> int:
    raw = token.value
    if "." in raw:
        _fail(text, _start(token), f"Invalid input '{raw}', expected an integer")
    if raw == "-0":
        # RqlParserBase: LongLiteral = !"-0" ~ Integer
        _fail(text, _start(token), "Invalid input '-0', expected a number other than -0")
    # the length check first: int() refuses (ValueError) digit strings longer than 4300 characters
    if len(raw) > 20 or not LONG_MIN <= int(raw) <= LONG_MAX:
        _fail(text, _start(token), f"Invalid input '{raw}': the number does not fit into a 64-bit integer")
    return int(raw)


def _literal(text: str, token: Token) -> Value:
    kind = token.type
    if kind == "NUMBER":
        if "." not in token.value:
            return long_value(text, token)
        number = float(token.value)
        if not math.isfinite(number):
            _fail(text, _start(token), f"Invalid input '{token.value}': the number is too large")
        return number
    if kind in ("DQ_STRING", "SQ_STRING"):
        return _string(text, token)
    if kind == "TRUE":
        return True
    if kind == "FALSE":
        return False
    if kind == "NULL":
        return None
    if token.value == "time:now":
        return TimeNow()
    if token.value == "time:now_epoch_millis":
        return TimeNow(epoch_millis=True)
    _fail(
        text,
        _start(token),
        f"Unknown placeholder '{token.value}', expected 'time:now' or 'time:now_epoch_millis'",
    )


# --------------------------------------------------------------------------------------------- tree -> AST


@dataclass(slots=True)
class _Frame:
    node: Any  # lark Tree
    subqueries: list[Any]  # the lark trees of the operands of and/or/not
    children: list[Query]  # ... and those already built

    @classmethod
    def of(cls, node: Any) -> _Frame:
        nested = node.data in ("logic", "not_")
        return cls(node, [c for c in node.children if not isinstance(c, Token)] if nested else [], [])


def _build_query(text: str, root: Any) -> Query:
    """The lark tree as AST, without recursion (deep input must not exhaust Python's stack) and with the
    nesting limit."""
    stack: list[_Frame] = [_Frame.of(root)]
    result: Query | None = None
    while stack:
        frame = stack[-1]
        if len(frame.children) < len(frame.subqueries):
            if len(stack) >= MAX_DEPTH:
                _fail(
                    text,
                    _tree_start(frame.node),
                    f"Invalid input: the query nests deeper than {MAX_DEPTH} levels",
                )
            stack.append(_Frame.of(frame.subqueries[len(frame.children)]))
            continue
        stack.pop()
        query = _node(text, frame)
        if stack:
            stack[-1].children.append(query)
        else:
            result = query
    assert result is not None
    return result


def _tree_start(tree: Any) -> int:
    for child in tree.children:
        if isinstance(child, Token):
            return _start(child)
    return 0


def _node(text: str, frame: _Frame) -> Query:
    tree = frame.node
    kind: str = tree.data
    tokens = [c for c in tree.children if isinstance(c, Token)]
    if kind == "logic":
        return And(tuple(frame.children)) if tokens[0].value == "and" else Or(tuple(frame.children))
    if kind == "not_":
        return Not(frame.children[0])
    field = Field(
        property_pointer(text, tokens[-1] if kind in ("exists", "empty") else _first(tokens, "PROPERTY"))
    )
    if kind == "exists":
        return Exists(field)
    if kind == "empty":
        return Empty(field)
    literals = [child.children[0] for child in tree.children if not isinstance(child, Token)]
    if kind == "in_":
        return In(field, tuple(_literal(text, token) for token in literals))
    op = cast(CompareOp, tokens[0].value)
    value = _literal(text, literals[0])
    if op in ("like", "ilike") and not isinstance(value, str):
        # CriteriaFactory.like/ilike
        _fail(
            text, _start(literals[0]), f"Invalid input: in the {op} predicate only string values are allowed"
        )
    return Compare(op, field, value)


def _first(tokens: list[Token], kind: str) -> Token:
    return next(token for token in tokens if token.type == kind)


def parse_tree(text: str, start: Literal["query", "options"]) -> Any:
    """The lark tree of ``text`` or :class:`RqlSyntaxError`."""
    try:
        return _lark().parse(text, start=start)
    except UnexpectedInput as error:
        _from_lark(text, error)
    except (LarkError, RecursionError) as error:  # pragma: no cover - lark's own failures, never seen
        _fail(text, 0, f"Invalid input: {error}")


@lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Query:
    # the AST is immutable, so one parsed filter can serve every request and subscription that repeats it
    return _build_query(text, parse_tree(text, "query"))


def parse_rql(text: str) -> Query:
    """Parse an RQL filter (``filter=``, ``condition``, ``live-channel-condition``, subscription and connection
    filters). Raises :class:`RqlExpressionInvalid` with the position of the problem."""
    try:
        return _parse_cached(text)
    except RqlSyntaxError as error:
        raise RqlExpressionInvalid(error.message) from None


# --------------------------------------------------------------------------------------------- rendering

_STRING_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_PROPERTY_SPECIALS = frozenset(',)"\\')
_WHITESPACE = frozenset(" \t\n\r\f")


def _escape_char(char: str) -> str:
    escaped = _STRING_ESCAPES.get(char)
    if escaped is not None:
        return escaped
    if char in _PROPERTY_SPECIALS or not char.isprintable():
        return f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else _surrogate_escape(char)
    return char


def _surrogate_escape(char: str) -> str:
    code = ord(char) - 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def render_string(value: str) -> str:
    """A double-quoted RQL string literal."""
    return (
        '"'
        + "".join(_escape_char(c) if c in _STRING_ESCAPES or not c.isprintable() else c for c in value)
        + '"'
    )


def render_property(pointer: Pointer) -> str:
    """A property as RQL text (``attributes/a~1b``): pointer escapes first, then RQL escapes for the characters
    a property cannot hold raw (``, ) " \\``, control characters and whitespace at its edges)."""
    text = format_pointer(pointer)[1:]
    out = [_escape_char(c) for c in text]
    for index in (0, len(text) - 1):
        if text and text[index] in _WHITESPACE:
            out[index] = f"\\u{ord(text[index]):04x}"
    return "".join(out)


def render_literal(value: Value) -> str:
    if isinstance(value, TimeNow):
        return "time:now_epoch_millis" if value.epoch_millis else "time:now"
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _render_double(value)
    return render_string(value)


def _render_double(value: float) -> str:
    # RQL has no exponent: write the shortest repr that round-trips, expanded to plain digits
    if not math.isfinite(value):
        raise ValueError(f"RQL cannot express the number {value!r}")
    text = format(Decimal(repr(value)), "f")
    return text if "." in text else text + ".0"


def render(query: Query) -> str:
    """The RQL text of a query; ``parse_rql(render(q))`` gives ``q`` back (the form Ditto keeps in cursors)."""
    renderers: dict[type, Callable[[Any], str]] = {
        Compare: lambda q: f"{q.op}({render_property(q.field.pointer)},{render_literal(q.value)})",
        In: lambda q: (
            f"in({render_property(q.field.pointer)},{','.join(render_literal(v) for v in q.values)})"
        ),
        Exists: lambda q: f"exists({render_property(q.field.pointer)})",
        Empty: lambda q: f"empty({render_property(q.field.pointer)})",
        And: lambda q: f"and({','.join(render(c) for c in q.children)})",
        Or: lambda q: f"or({','.join(render(c) for c in q.children)})",
        Not: lambda q: f"not({render(q.child)})",
    }
    return renderers[type(query)](query)


def render_sort(keys: Sequence[SortKey]) -> str:
    """``+thingId,-attributes/x``: the inside of a ``sort(...)`` option."""
    return ",".join(("+" if key.ascending else "-") + render_property(key.field.pointer) for key in keys)


def render_options(options: Options) -> str:
    """The option text of ``options`` (``sort(+thingId),size(10),cursor(abc)`` / ``limit(0,25)``)."""
    parts: list[str] = []
    if options.sort:
        parts.append(f"sort({render_sort(options.sort)})")
    if options.size is not None:
        parts.append(f"size({options.size})")
    if options.cursor is not None:
        parts.append(f"cursor({''.join(_escape_char(c) for c in options.cursor)})")
    if options.limit is not None:
        parts.append(f"limit({options.limit[0]},{options.limit[1]})")
    return ",".join(parts)

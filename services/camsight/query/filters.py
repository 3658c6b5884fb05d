"""The event filter language: a subset of AIP-160, parsed into bound SQL.

Grammar (``AND`` and ``OR`` are upper case; as in AIP-160, ``OR`` binds
tighter than ``AND``, and juxtaposition means ``AND``)::

    expression := sequence { "AND" sequence }
    sequence   := factor { factor }
    factor     := term { "OR" term }
    term       := "(" expression ")" | FIELD OP VALUE
    OP         := "=" | "!=" | "<" | "<=" | ">" | ">="

Fields: camera, type, label, identity, zone, line, rule, state, direction
and ``attributes.<key>`` (= and != only), confidence (a number), start_time
and end_time (RFC 3339), start_media_time and end_media_time (seconds into
the source, a number). Values are quoted strings ("lobby", 'lobby') or bare
words (lobby, ZONE_ENTER, 0.5, 2026-01-01T00:00:00Z). Enum values accept
``ZONE_ENTER``, ``EVENT_TYPE_ZONE_ENTER`` or ``zone_enter``.

An attribute key is letters, digits, ``_`` and ``-`` (``attributes.in_count``);
the grammar keeps the key out of any quoting question, and the key reaches
SQL only as a bound JSON path, never as SQL text. An event without the
attribute, like an ongoing event's end_time, fails every comparison on it.

The parser produces an AST that compiles to a SQL ``WHERE`` fragment with
``?`` parameters only (a value never becomes SQL text) and to a Python
predicate over :class:`camsight.v1.event_pb2.Event` for live tails; both give
the same answer, including for unset end times (every comparison is false).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from camsight.v1 import analysis_pb2, event_pb2

MAX_FILTER_LENGTH = 4096
MAX_COMPARISONS = 64
MAX_DEPTH = 16


class FilterError(ValueError):
    """The filter cannot be parsed; the message says where and why."""


class Kind(Enum):
    STRING = "string"
    EVENT_TYPE = "event type"
    STATE = "event state"
    DIRECTION = "crossing direction"
    NUMBER = "number"
    TIME = "timestamp"
    MEDIA_TIME = "seconds"


@dataclass(frozen=True)
class FieldSpec:
    """A filterable field: its SQL expression (with its own bound parameters) and its getter.

    ``column`` is SQL text from this module only; ``column_params`` are bound
    before the compared value (the JSON path of an attribute).
    """

    name: str
    column: str
    kind: Kind
    # Not compared: two parses of attributes.<key> build equal specs with different closures.
    getter: Callable[[event_pb2.Event], Any] = dataclass_field(compare=False)
    column_params: tuple[Any, ...] = ()


def _ts(ts: Timestamp, present: bool) -> int | None:
    return ts.ToNanoseconds() if present else None


def _duration(d: Duration, present: bool) -> int | None:
    return d.ToNanoseconds() if present else None


ATTRIBUTE_PREFIX = "attributes."
# Attribute keys as the rules and analyzers write them (in_count, action, speed...).
ATTRIBUTE_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]{0,63}")
# Media times are nanoseconds in the index: keep a bound value inside SQLite's int64.
MAX_MEDIA_SECONDS = 10**9


def attribute_field(key: str) -> FieldSpec:
    """The field ``attributes.<key>``; ``key`` must already match :data:`ATTRIBUTE_KEY`.

    SQL reads the index's ``attributes`` JSON column with a bound path, so
    neither the key nor the value becomes SQL text.
    """
    return FieldSpec(
        ATTRIBUTE_PREFIX + key,
        "json_extract(attributes, ?)",
        Kind.STRING,
        lambda e: e.attributes.get(key),
        (f'$."{key}"',),
    )


FIELDS: dict[str, FieldSpec] = {
    spec.name: spec
    for spec in (
        FieldSpec("camera", "camera", Kind.STRING, lambda e: e.camera_id),
        FieldSpec("type", "type", Kind.EVENT_TYPE, lambda e: e.type),
        FieldSpec("label", "label", Kind.STRING, lambda e: e.label),
        FieldSpec("identity", "identity", Kind.STRING, lambda e: e.identity_id),
        FieldSpec("zone", "zone", Kind.STRING, lambda e: e.zone_id),
        FieldSpec("line", "line", Kind.STRING, lambda e: e.line_id),
        FieldSpec("rule", "rule", Kind.STRING, lambda e: e.rule_id),
        FieldSpec("state", "state", Kind.STATE, lambda e: e.state),
        FieldSpec("direction", "direction", Kind.DIRECTION, lambda e: e.direction),
        FieldSpec("confidence", "confidence", Kind.NUMBER, lambda e: e.confidence),
        FieldSpec("start_time", "start_ns", Kind.TIME, lambda e: _ts(e.start_time, e.HasField("start_time"))),
        FieldSpec("end_time", "end_ns", Kind.TIME, lambda e: _ts(e.end_time, e.HasField("end_time"))),
        FieldSpec(
            "start_media_time",
            "start_media_ns",
            Kind.MEDIA_TIME,
            lambda e: _duration(e.start_media_time, e.HasField("start_media_time")),
        ),
        FieldSpec(
            "end_media_time",
            "end_media_ns",
            Kind.MEDIA_TIME,
            lambda e: _duration(e.end_media_time, e.HasField("end_media_time")),
        ),
    )
}
# Wall-clock fields: a live tail has its own start_time instead (media times are fine there).
TIME_FIELDS = frozenset({"start_time", "end_time"})
ORDERED_KINDS = frozenset({Kind.NUMBER, Kind.TIME, Kind.MEDIA_TIME})
OPS = ("<=", ">=", "!=", "=", "<", ">")
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: bool(a == b),
    "!=": lambda a, b: bool(a != b),
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
}


@dataclass(frozen=True)
class Comparison:
    field: FieldSpec
    op: str
    value: Any

    def sql(self, params: list[Any]) -> str:
        params.extend(self.field.column_params)
        params.append(self.value)
        return f"{self.field.column} {self.op} ?"

    def matches(self, event: event_pb2.Event) -> bool:
        actual = self.field.getter(event)
        return actual is not None and _COMPARE[self.op](actual, self.value)

    def __str__(self) -> str:
        return f"{self.field.name} {self.op} {_render(self.field, self.value)}"


@dataclass(frozen=True)
class BoolOp:
    op: str  # "AND" or "OR"
    items: tuple[Node, ...]

    def sql(self, params: list[Any]) -> str:
        return "(" + f" {self.op} ".join(item.sql(params) for item in self.items) + ")"

    def matches(self, event: event_pb2.Event) -> bool:
        results = (item.matches(event) for item in self.items)
        return all(results) if self.op == "AND" else any(results)

    def __str__(self) -> str:
        return "(" + f" {self.op} ".join(str(item) for item in self.items) + ")"


Node = Comparison | BoolOp


@dataclass(frozen=True)
class Filter:
    """A parsed filter; ``root`` is None for the empty filter (matches all)."""

    root: Node | None

    def sql(self) -> tuple[str, list[Any]]:
        """``(where, params)``; where is "1" for the empty filter."""
        params: list[Any] = []
        return (self.root.sql(params) if self.root else "1"), params

    def matches(self, event: event_pb2.Event) -> bool:
        return self.root is None or self.root.matches(event)

    def fields(self) -> set[str]:
        found: set[str] = set()

        def walk(node: Node) -> None:
            if isinstance(node, Comparison):
                found.add(node.field.name)
            else:
                for item in node.items:
                    walk(item)

        if self.root is not None:
            walk(self.root)
        return found

    def canonical(self) -> str:
        """A normal form: two spellings of the same filter give the same text."""
        return str(self.root) if self.root else ""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lparen>\() | (?P<rparen>\)) |
        (?P<op><=|>=|!=|=|<|>) |
        (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*') |
        (?P<word>[A-Za-z0-9_.:+\-]+)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.lastgroup is None:
            start = pos + len(text[pos:]) - len(text[pos:].lstrip())
            raise FilterError(f"unexpected character {text[start]!r} at position {start + 1}")
        kind = m.lastgroup
        tokens.append(Token(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0
        self.comparisons = 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise FilterError("unexpected end of filter")
        self.i += 1
        return token

    def is_keyword(self, word: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "word" and token.text == word

    def parse(self) -> Node:
        node = self.expression(0)
        token = self.peek()
        if token is not None:
            raise FilterError(f"unexpected {token.text!r} at position {token.pos + 1}")
        return node

    def expression(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise FilterError(f"filter nests deeper than {MAX_DEPTH} levels")
        items = [self.factor(depth)]
        while True:
            token = self.peek()
            if token is None or token.kind == "rparen":
                break
            if self.is_keyword("AND"):
                self.take()
            items.append(self.factor(depth))
        return items[0] if len(items) == 1 else BoolOp("AND", tuple(items))

    def factor(self, depth: int) -> Node:
        items = [self.term(depth)]
        while self.is_keyword("OR"):
            self.take()
            items.append(self.term(depth))
        return items[0] if len(items) == 1 else BoolOp("OR", tuple(items))

    def term(self, depth: int) -> Node:
        token = self.take()
        if token.kind == "lparen":
            node = self.expression(depth + 1)
            close = self.take()
            if close.kind != "rparen":
                raise FilterError(f"expected ')' at position {close.pos + 1}")
            return node
        if token.kind != "word" or token.text in ("AND", "OR"):
            raise FilterError(f"expected a field name at position {token.pos + 1}, got {token.text!r}")
        spec = _field(token)
        op = self.take()
        if op.kind != "op":
            raise FilterError(f"expected a comparison after {spec.name!r} at position {op.pos + 1}")
        if op.text not in ("=", "!=") and spec.kind not in ORDERED_KINDS:
            raise FilterError(f"{spec.name} ({spec.kind.value}) supports only = and !=, not {op.text}")
        value = self.take()
        if value.kind not in ("word", "string"):
            raise FilterError(f"expected a value for {spec.name!r} at position {value.pos + 1}")
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise FilterError(f"filter has more than {MAX_COMPARISONS} comparisons")
        raw = _unquote(value.text) if value.kind == "string" else value.text
        return Comparison(spec, op.text, _convert(spec, raw))


def _field(token: Token) -> FieldSpec:
    """The field a word names: a fixed field or ``attributes.<key>``."""
    spec = FIELDS.get(token.text)
    if spec is not None:
        return spec
    where = f"at position {token.pos + 1}"
    if token.text.startswith(ATTRIBUTE_PREFIX) or token.text == "attributes":
        key = token.text.removeprefix("attributes").removeprefix(".")
        if ATTRIBUTE_KEY.fullmatch(key):
            return attribute_field(key)
        raise FilterError(
            f"bad attribute field {token.text!r} {where}: expected attributes.<key>, the key "
            "1 to 64 letters, digits, _ or -"
        )
    known = ", ".join([*FIELDS, ATTRIBUTE_PREFIX + "<key>"])
    raise FilterError(f"unknown field {token.text!r} {where} (known: {known})")


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def _convert(spec: FieldSpec, raw: str) -> Any:
    try:
        if spec.kind is Kind.STRING:
            return raw
        if spec.kind in _ENUMS:
            return _enum(*_ENUMS[spec.kind], raw)
        if spec.kind is Kind.NUMBER:
            return float(raw)
        if spec.kind is Kind.MEDIA_TIME:
            return _media_ns(raw)
        return parse_time(raw)
    except ValueError as exc:
        raise FilterError(f"bad value {raw!r} for {spec.name}: {exc}") from None


def _enum(enum: Any, prefix: str, raw: str) -> int:
    name = raw.upper()
    if not name.startswith(prefix):
        name = prefix + name
    names = list(enum.DESCRIPTOR.values_by_name)
    if name == prefix + "UNSPECIFIED" or name not in names:
        choices = ", ".join(n.removeprefix(prefix) for n in names if not n.endswith("UNSPECIFIED"))
        raise ValueError(f"expected one of {choices}")
    return int(enum.Value(name))


def _media_ns(raw: str) -> int:
    """Seconds into the source to the index's nanoseconds (the unit of Duration).

    Decimal, not float: ``1.1`` is exactly 1_100_000_000 ns, and the canonical
    text of a filter parses back to the same nanoseconds.
    """
    try:
        seconds = Decimal(raw)
    except InvalidOperation:
        raise ValueError("expected a number of seconds such as 12.5") from None
    if not seconds.is_finite() or abs(seconds) > MAX_MEDIA_SECONDS:
        raise ValueError(f"expected a number of seconds within +-{MAX_MEDIA_SECONDS}")
    return int((seconds * 10**9).to_integral_value())


_ENUMS: dict[Kind, tuple[Any, str]] = {
    Kind.EVENT_TYPE: (event_pb2.EventType, "EVENT_TYPE_"),
    Kind.STATE: (event_pb2.EventState, "EVENT_STATE_"),
    Kind.DIRECTION: (analysis_pb2.CrossingDirection, "CROSSING_DIRECTION_"),
}


def _render(spec: FieldSpec, value: Any) -> str:
    """A converted value back in filter syntax, so that a canonical filter parses again."""
    if spec.kind in _ENUMS:
        enum, prefix = _ENUMS[spec.kind]
        return str(enum.Name(value)).removeprefix(prefix)
    if spec.kind is Kind.TIME:
        ts = Timestamp()
        ts.FromNanoseconds(value)
        return repr(ts.ToJsonString())
    if spec.kind is Kind.MEDIA_TIME:
        text = format(Decimal(value).scaleb(-9), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    return repr(value)


def parse_time(raw: str) -> int:
    """RFC 3339 (with a zone offset or Z) to nanoseconds since the epoch."""
    try:
        dt = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        raise ValueError("expected an RFC 3339 timestamp such as 2026-01-01T00:00:00Z") from None
    if dt.tzinfo is None:
        raise ValueError("timestamp needs a zone (Z or +hh:mm)")
    ts = Timestamp()
    ts.FromDatetime(dt)
    return ts.ToNanoseconds()


def parse_filter(text: str) -> Filter:
    """Parse a filter string; raises :class:`FilterError` naming the problem."""
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterError(f"filter is longer than {MAX_FILTER_LENGTH} characters")
    if not text.strip():
        return Filter(None)
    return Filter(_Parser(text).parse())

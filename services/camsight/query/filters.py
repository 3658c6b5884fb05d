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
the source: a number, or an AIP-160 duration such as ``12.5s``). Values are
quoted strings ("lobby", 'lobby') or bare words (lobby, ZONE_ENTER, 0.5,
2026-01-01T00:00:00Z). Enum values accept ``ZONE_ENTER``,
``EVENT_TYPE_ZONE_ENTER`` or ``zone_enter``. AIP-160's ``NOT``, ``-``
(negation), ``:`` (has) and functions are not supported; each is refused
with a message saying so, rather than as an unknown field.

An attribute key is letters, digits, ``_`` and ``-`` (``attributes.in_count``);
the grammar keeps the key out of any quoting question, and the key reaches
SQL only as a bound JSON path, never as SQL text. An event without the
attribute, like an ongoing event's end_time or a direction on anything but a
line crossing, fails every comparison on it.

The parser produces an AST that compiles to a SQL ``WHERE`` fragment with
``?`` parameters only (a value never becomes SQL text) and to a Python
predicate over :class:`camsight.v1.event_pb2.Event` for live tails; both give
the same answer, including for absent values (every comparison is false).

Every error is a :class:`FilterError` whose one-line message names the
position and the problem with a fixed text (never a Python exception's), and
quotes at most a short prefix of what the filter says there.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from decimal import Decimal
from enum import Enum
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from camsight.naming import shown
from camsight.v1 import analysis_pb2, event_pb2

MAX_FILTER_LENGTH = 4096
MAX_COMPARISONS = 64
MAX_DEPTH = 16
# SQLite's INTEGER, 64 bits: the index keeps times and media times there as nanoseconds,
# and an integer bound as a parameter outside it is an OverflowError, not a comparison.
SQL_INTEGER = range(-(2**63), 2**63)


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
    before the compared value (the JSON path of an attribute). Where the
    getter returns None the value is absent, and ``column`` must be NULL
    there, so that SQL and the predicate both fail every comparison on it.
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
        # Only line crossings have a direction: UNSPECIFIED (0) is an absent value, so that
        # `direction != IN` means "crossed out", not "anything but a crossing in".
        FieldSpec("direction", "NULLIF(direction, 0)", Kind.DIRECTION, lambda e: e.direction or None),
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

    @property
    def where(self) -> str:
        """Where the token starts, for a message: "at position 5" (counted from 1)."""
        return f"at position {self.pos + 1}"


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
    def __init__(self, text: str, live: bool) -> None:
        self.tokens = _tokenize(text)
        self.end = len(text)
        self.live = live
        self.i = 0
        self.comparisons = 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected: str) -> Token:
        """The next token; at the end of the filter, an error saying what was ``expected`` there."""
        token = self.peek()
        if token is None:
            raise FilterError(f"expected {expected} at position {self.end + 1} (the end of the filter)")
        self.i += 1
        return token

    def is_keyword(self, word: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "word" and token.text == word

    def parse(self) -> Node:
        node = self.expression(0)
        token = self.peek()
        if token is not None:
            raise FilterError(f"unexpected {shown(token.text)} {token.where}")
        return node

    def expression(self, depth: int) -> Node:
        items = [self.factor(depth)]
        while True:
            token = self.peek()
            if token is None or token.kind == "rparen":
                break
            if self.is_keyword("AND"):
                self.take("AND")
            items.append(self.factor(depth))
        return items[0] if len(items) == 1 else BoolOp("AND", tuple(items))

    def factor(self, depth: int) -> Node:
        items = [self.term(depth)]
        while self.is_keyword("OR"):
            self.take("OR")
            items.append(self.term(depth))
        return items[0] if len(items) == 1 else BoolOp("OR", tuple(items))

    def term(self, depth: int) -> Node:
        token = self.take("a field name or '('")
        if token.kind == "lparen":
            if depth >= MAX_DEPTH:
                raise FilterError(f"filter nests deeper than {MAX_DEPTH} levels {token.where}")
            node = self.expression(depth + 1)
            close = self.take("')'")
            if close.kind != "rparen":
                raise FilterError(f"expected ')' {close.where}")
            return node
        if token.kind != "word" or token.text in ("AND", "OR"):
            raise FilterError(f"expected a field name {token.where}, got {shown(token.text)}")
        spec = self.field(token)
        op = self.take(f"a comparison after {spec.name!r}")
        if op.kind == "word" and op.text.startswith(":"):
            raise FilterError(f"':' (has) is not supported {op.where}; compare with = instead")
        if op.kind != "op":
            raise FilterError(f"expected a comparison after {spec.name!r} {op.where}")
        if op.text not in ("=", "!=") and spec.kind not in ORDERED_KINDS:
            raise FilterError(
                f"{spec.name} ({spec.kind.value}) supports only = and !=, not {op.text} {op.where}"
            )
        value = self.take(f"a value for {spec.name!r}")
        if value.kind not in ("word", "string"):
            raise FilterError(f"expected a value for {spec.name!r} {value.where}")
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise FilterError(f"filter has more than {MAX_COMPARISONS} comparisons {token.where}")
        raw = _unquote(value.text) if value.kind == "string" else value.text
        try:
            converted = _convert(spec, raw)
        except ValueError as exc:  # only this module's own messages: see _convert
            raise FilterError(f"bad value {shown(raw)} for {spec.name} {value.where}: {exc}") from None
        return Comparison(spec, op.text, converted)

    def field(self, token: Token) -> FieldSpec:
        """The field a word names; AIP-160 forms this subset lacks are named as such."""
        word = token.text
        if word.upper() == "NOT" or word.startswith("-"):
            raise FilterError(f"NOT and - (negation) are not supported {token.where}; use != instead")
        if word.upper() in ("AND", "OR"):
            raise FilterError(f"AND/OR must be upper case: {word!r} {token.where}")
        spec = _field(token, self.live)
        if self.live and spec.name in TIME_FIELDS:
            raise FilterError(
                f"{spec.name} {token.where} cannot filter a live stream; use the request's start_time field"
            )
        return spec


def _field(token: Token, live: bool) -> FieldSpec:
    """The field a word names: a fixed field or ``attributes.<key>``."""
    spec = FIELDS.get(token.text)
    if spec is not None:
        return spec
    if token.text.startswith(ATTRIBUTE_PREFIX) or token.text == "attributes":
        key = token.text.removeprefix("attributes").removeprefix(".")
        if ATTRIBUTE_KEY.fullmatch(key):
            return attribute_field(key)
        raise FilterError(
            f"bad attribute field {shown(token.text)} {token.where}: expected attributes.<key>, the key "
            "1 to 64 letters, digits, _ or -"
        )
    if ":" in token.text:
        position = token.pos + token.text.index(":") + 1
        raise FilterError(f"':' (has) is not supported at position {position}; compare with = instead")
    names = [name for name in FIELDS if not (live and name in TIME_FIELDS)]
    known = ", ".join([*names, ATTRIBUTE_PREFIX + "<key>"])
    raise FilterError(f"unknown field {shown(token.text)} {token.where} (known: {known})")


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


# AIP-160's number literal. float() and Decimal() also take "nan", "inf", "1_000" and
# surrounding spaces, none of which a filter means as a number.
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
# RFC 3339's date-time (section 5.6; T and Z may be lower case there). The shape is
# checked here because protobuf's parser, which reads it to the nanosecond, also takes
# "2026-1-1T0:0:0Z", "+1:0" offsets and a "." without digits.
RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)", re.IGNORECASE
)
EXPECTED_NUMBER = "expected a number such as 0.8"
EXPECTED_SECONDS = "expected seconds such as 12.5 or 12.5s"
EXPECTED_TIME = "expected an RFC 3339 timestamp such as 2026-01-01T00:00:00Z or 2026-01-01T08:30:00.5+01:00"


def _convert(spec: FieldSpec, raw: str) -> Any:
    """The value ``raw`` means for ``spec``; ValueError with a fixed, one-line message otherwise.

    The converters raise only messages of their own (never a library's text, which
    would name Python types and repeat the input whole).
    """
    if spec.kind is Kind.STRING:
        return raw
    if spec.kind in _ENUMS:
        return _enum(*_ENUMS[spec.kind], raw)
    if spec.kind is Kind.NUMBER:
        return _float32(raw)
    if spec.kind is Kind.MEDIA_TIME:
        return _media_ns(raw)
    return parse_time(raw)


def _enum(enum: Any, prefix: str, raw: str) -> int:
    name = raw.upper()
    if not name.startswith(prefix):
        name = prefix + name
    names = list(enum.DESCRIPTOR.values_by_name)
    if name == prefix + "UNSPECIFIED" or name not in names:
        choices = ", ".join(n.removeprefix(prefix) for n in names if not n.endswith("UNSPECIFIED"))
        raise ValueError(f"expected one of {choices}")
    return int(enum.Value(name))


def _float32(raw: str) -> float:
    """A number rounded to the float32 an event carries it in (confidence), so that what a
    client reads is what it can filter on: an event shows ``0.6142231``, but the index holds
    that float32 as a double, which is not the double nearest to 0.6142231."""
    if not NUMBER.fullmatch(raw):
        raise ValueError(EXPECTED_NUMBER)
    try:
        value: float = struct.unpack("<f", struct.pack("<f", float(raw)))[0]
    except OverflowError:  # beyond float32's range (struct refuses; a float's own inf passes)
        raise ValueError(EXPECTED_NUMBER) from None
    if not math.isfinite(value):
        raise ValueError(EXPECTED_NUMBER)
    return value


def _media_ns(raw: str) -> int:
    """Seconds into the source (``12.5`` or AIP-160's duration ``12.5s``) to the index's
    nanoseconds (the unit of Duration).

    Decimal, not float: ``1.1`` is exactly 1_100_000_000 ns, and the canonical
    text of a filter parses back to the same nanoseconds.
    """
    number = raw.removesuffix("s")
    if not NUMBER.fullmatch(number):
        raise ValueError(EXPECTED_SECONDS)
    seconds = Decimal(number)
    if abs(seconds) > MAX_MEDIA_SECONDS:
        raise ValueError(f"expected seconds within +-{MAX_MEDIA_SECONDS}")
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


def timestamp_ns(ts: Timestamp) -> int:
    """Nanoseconds since the epoch of ``ts``, clamped to :data:`SQL_INTEGER` (1677 to 2262).

    ValueError when ``ts`` is not a valid Timestamp (nanos outside 0..999999999, a
    year outside 1..9999). No event can be indexed outside the clamp's range, so
    clamping keeps a comparison's answer (bar an event at its very nanosecond) where
    refusing would break the common "no bound" forms: ``start_time < "9999-12-31T23:59:59Z"``.
    """
    ns = ts.ToNanoseconds()
    return min(max(ns, SQL_INTEGER.start), SQL_INTEGER.stop - 1)


def parse_time(raw: str) -> int:
    """RFC 3339 (with a zone offset or Z) to nanoseconds since the epoch, every digit kept
    (``datetime`` would drop those past the microsecond), clamped as :func:`timestamp_ns`."""
    if not RFC3339.fullmatch(raw):
        raise ValueError(EXPECTED_TIME)
    ts = Timestamp()
    try:
        ts.FromJsonString(raw.upper())  # protobuf's parser takes only an upper case T and Z
    except ValueError:  # a date that does not exist (02-30, hour 24); its message names strptime's format
        raise ValueError(EXPECTED_TIME) from None
    return timestamp_ns(ts)


def parse_filter(text: str, *, live: bool = False) -> Filter:
    """Parse a filter string; raises :class:`FilterError` naming the problem.

    ``live``: for a live tail (StreamEvents), which has its own start_time instead of the
    wall-clock fields.
    """
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterError(f"filter is longer than {MAX_FILTER_LENGTH} characters")
    if not text.strip():
        return Filter(None)
    return Filter(_Parser(text, live).parse())

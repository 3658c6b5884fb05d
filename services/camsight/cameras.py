"""The camera model: validation and conversion to and from the wire message.

One pydantic model validates a camera wherever it comes from (the YAML
config, the gRPC CameraService, a Kubernetes Camera resource), so the rules
(ids, URI schemes, fps range, polygons, lines, rules) are written once. The
registry stores the protobuf :class:`camsight.v1.camera_pb2.Camera`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Self
from urllib.parse import unquote, urlsplit

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    field_validator,
    model_validator,
)

from camsight.naming import ID_PATTERN, redact_uri, validate_id
from camsight.v1 import analysis_pb2, camera_pb2

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

Id = Annotated[str, AfterValidator(lambda v: validate_id(v, "id"))]
NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https")
LOCAL_SCHEMES = ("file",)


def source_scheme(uri: str) -> str:
    """A camera source's URI scheme in lower case; ``""`` for a plain path or a webcam index."""
    return urlsplit(uri).scheme.lower() if "://" in uri else ""


def is_webcam(uri: str) -> bool:
    """A webcam index (``0``) or device (``/dev/video0``, also as a ``file://`` URI)."""
    scheme = source_scheme(uri)
    if scheme == "file":
        uri = unquote(urlsplit(uri).path)
    elif scheme:
        return False
    return uri.isdigit() or uri.startswith("/dev/video")


def is_live(uri: str) -> bool:
    """A network stream or a webcam: it runs in real time whatever the camera's pacing says,
    since holding it back would only lose its pictures at the source."""
    return source_scheme(uri) in NETWORK_SCHEMES or is_webcam(uri)


def _finite_unit(value: float) -> float:
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"coordinate {value!r} must be a finite number in [0, 1]")
    return value


Coord = Annotated[float, AfterValidator(_finite_unit)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Point(_Model):
    x: Coord
    y: Coord

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, value: Any) -> Any:
        # YAML writes points as [x, y].
        if isinstance(value, list | tuple) and len(value) == 2:
            return {"x": value[0], "y": value[1]}
        return value


class Zone(_Model):
    id: Id
    display_name: str = ""
    polygon: list[Point] = Field(min_length=3, max_length=256)

    @field_validator("polygon")
    @classmethod
    def _simple(cls, polygon: list[Point]) -> list[Point]:
        if _self_intersects(polygon):
            raise ValueError("polygon intersects itself")
        if _area(polygon) < 1e-6:
            raise ValueError("polygon has no area")
        return polygon


class Line(_Model):
    id: Id
    display_name: str = ""
    a: Point
    b: Point
    in_side_right: bool = False

    @model_validator(mode="after")
    def _length(self) -> Self:
        if math.dist((self.a.x, self.a.y), (self.b.x, self.b.y)) < 1e-4:
            raise ValueError("line end points are the same")
        return self


class Pacing(StrEnum):
    LOSSLESS = "lossless"
    REALTIME = "realtime"


class VideoDecode(StrEnum):
    """Where a camera's video is decoded (decision 0077)."""

    AUTO = "auto"
    """NVDEC when the node has a GPU and the codec is one it decodes; else the CPU, silently."""
    CPU = "cpu"
    NVDEC = "nvdec"
    """NVDEC; without a GPU, or for a codec it cannot decode, the CPU path with one warning."""


class Anchor(StrEnum):
    BOTTOM_CENTER = "bottom_center"
    CENTER = "center"
    TOP_CENTER = "top_center"


class RuleType(StrEnum):
    OBJECT_DETECTED = "object_detected"
    ZONE_ENTER = "zone_enter"
    ZONE_EXIT = "zone_exit"
    LINE_CROSS = "line_cross"
    LOITERING = "loitering"
    CROWDING = "crowding"
    FACE_RECOGNIZED = "face_recognized"
    UNKNOWN_FACE = "unknown_face"
    ACTION = "action"


class Direction(StrEnum):
    BOTH = "both"
    IN = "in"
    OUT = "out"


ZONE_RULES = {RuleType.ZONE_ENTER, RuleType.ZONE_EXIT, RuleType.LOITERING, RuleType.CROWDING}


def _rule_type(value: Any) -> RuleType | str:
    """A built-in type as its enum, any other name as itself (a plugin's type, maybe)."""
    if isinstance(value, RuleType):
        return value
    if not isinstance(value, str):
        raise ValueError(f"a rule type is a name, not {type(value).__name__}")
    try:
        return RuleType(value)
    except ValueError:
        return validate_id(value, "rule type")


RuleTypeName = Annotated[RuleType | str, PlainValidator(_rule_type)]


class Rule(_Model):
    id: Id
    # A built-in type, or the name of a rule type a plugin provides (the camsight_rules
    # hook; docs/plugins.md): the behavior service checks the name and ``config`` against
    # the installed plugins, this layer only that it is a name.
    type: RuleTypeName
    config: dict[str, Any] = Field(
        default_factory=dict, description="a plugin rule type's own settings (its pydantic config model)"
    )
    zone: str = ""
    line: str = ""
    labels: list[str] = Field(default_factory=list)
    min_score: float = Field(0.0, ge=0.0, le=1.0)
    anchor: Anchor = Anchor.BOTTOM_CENTER
    hysteresis_frames: int = Field(2, ge=1, le=100)
    duration_s: float = Field(0.0, ge=0.0, le=86400.0)
    min_count: int = Field(0, ge=0, le=10000)
    direction: Direction = Direction.BOTH
    debounce_s: float = Field(
        0.5,
        ge=0.0,
        le=3600.0,
        description="zones and lines: media seconds a new inside/side state must hold before it counts",
    )
    margin: float = Field(
        0.0,
        ge=0.0,
        le=0.5,
        description="zones and lines: normalised distance from the edge within which nothing changes",
    )

    @property
    def type_name(self) -> str:
        """The type as written: ``zone_enter``, or a plugin rule type's name."""
        return self.type.value if isinstance(self.type, RuleType) else self.type

    @model_validator(mode="after")
    def _targets(self) -> Self:
        if isinstance(self.type, RuleType) and self.config:
            raise ValueError(f"rule type {self.type.value} takes no config (config is for plugin rule types)")
        if self.type in ZONE_RULES and not self.zone:
            raise ValueError(f"rule type {self.type_name} needs a zone")
        if self.type is RuleType.LINE_CROSS and not self.line:
            raise ValueError("rule type line_cross needs a line")
        if self.type is RuleType.LOITERING and self.duration_s <= 0:
            raise ValueError("rule type loitering needs duration_s > 0")
        if self.type is RuleType.CROWDING and self.min_count < 1:
            raise ValueError("rule type crowding needs min_count >= 1")
        return self


class CameraConfig(_Model):
    """A camera as users write it in YAML, gRPC or a Camera resource."""

    id: Id
    source: str = Field(min_length=1, max_length=4096)
    display_name: str = ""
    enabled: bool = True
    fps: float = Field(0.0, ge=0.0, le=120.0, description="0 = the source's own rate")
    max_width: int = Field(640, ge=16, le=7680)
    max_height: int = Field(640, ge=16, le=4320)
    jpeg_quality: int = Field(85, ge=1, le=100)
    analyzers: list[str] = Field(default_factory=list)
    loop: bool = False
    pacing: Pacing = Pacing.LOSSLESS
    image_fps: float = Field(5.0, gt=0.0, le=120.0)
    zones: list[Zone] = Field(default_factory=list)
    lines: list[Line] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    start_time: AwareDatetime | None = Field(
        None,
        description="files: wall-clock time the recording started (RFC 3339 with a zone); "
        "overrides the container's creation time",
    )
    decode: VideoDecode = Field(
        VideoDecode.AUTO,
        description="files: where the video is decoded: auto (NVDEC when the node has a GPU for the "
        "codec, else the CPU), cpu, or nvdec (falls back to the CPU with one warning)",
    )

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if any(c in value for c in "\x00\r\n"):
            raise ValueError("source contains control characters")
        scheme = source_scheme(value)
        # Another scheme may be a source plugin's (camsight_sources): the decoder and
        # `camsight run` check it against the installed plugins; here only that it is a name.
        if scheme and scheme not in NETWORK_SCHEMES + LOCAL_SCHEMES and not ID_PATTERN.fullmatch(scheme):
            raise ValueError(
                f"unsupported source scheme {scheme!r} in {redact_uri(value)!r}: "
                f"use a file path, file://, {', '.join(s + '://' for s in NETWORK_SCHEMES)}, "
                "/dev/videoN, a webcam index, or a source plugin's scheme"
            )
        return value

    @model_validator(mode="after")
    def _references(self) -> Self:
        for kind, items in (("zone", self.zones), ("line", self.lines), ("rule", self.rules)):
            ids = [item.id for item in items]
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                raise ValueError(f"{kind} id {dupes[0]!r} is used twice")
        zones = {z.id for z in self.zones}
        lines = {line.id for line in self.lines}
        for rule in self.rules:
            if rule.zone and rule.zone not in zones:
                raise ValueError(f"rule {rule.id!r} names unknown zone {rule.zone!r}")
            if rule.line and rule.line not in lines:
                raise ValueError(f"rule {rule.id!r} names unknown line {rule.line!r}")
        return self

    @property
    def redacted_source(self) -> str:
        return redact_uri(self.source)

    @property
    def lossless(self) -> bool:
        """The decoder holds this camera back for its slowest pacing consumer, so every frame
        is analysed (decisions 0010, 0079): a recording paced ``lossless``, never a live source."""
        return self.pacing is Pacing.LOSSLESS and not is_live(self.source)

    def to_proto(self) -> camera_pb2.Camera:
        return camera_pb2.Camera(
            id=self.id,
            display_name=self.display_name,
            source_uri=self.source,
            enabled=self.enabled,
            target_fps=self.fps,
            max_width=self.max_width,
            max_height=self.max_height,
            jpeg_quality=self.jpeg_quality,
            analyzers=self.analyzers,
            loop=self.loop,
            pacing=camera_pb2.Pacing.Value(f"PACING_{self.pacing.name}"),
            image_fps=self.image_fps,
            zones=[
                camera_pb2.Zone(id=z.id, display_name=z.display_name, polygon=[_pt(p) for p in z.polygon])
                for z in self.zones
            ],
            lines=[
                camera_pb2.Line(
                    id=ln.id,
                    display_name=ln.display_name,
                    a=_pt(ln.a),
                    b=_pt(ln.b),
                    in_side_right=ln.in_side_right,
                )
                for ln in self.lines
            ],
            rules=[_rule_to_proto(r) for r in self.rules],
            labels=self.labels,
            start_time=_timestamp(self.start_time) if self.start_time else None,
            decode=camera_pb2.VideoDecode.Value(f"VIDEO_DECODE_{self.decode.name}"),
        )

    @classmethod
    def from_proto(cls, msg: camera_pb2.Camera) -> CameraConfig:
        """Validate a wire Camera; raises pydantic.ValidationError naming the field."""
        pacing = _enum_name(camera_pb2.Pacing, msg.pacing, "PACING_")
        data: dict[str, Any] = {
            "id": msg.id,
            "source": msg.source_uri,
            "display_name": msg.display_name,
            "enabled": msg.enabled,
            "fps": msg.target_fps,
            "loop": msg.loop,
            "analyzers": list(msg.analyzers),
            "zones": [
                {"id": z.id, "display_name": z.display_name, "polygon": [(p.x, p.y) for p in z.polygon]}
                for z in msg.zones
            ],
            "lines": [
                {
                    "id": ln.id,
                    "display_name": ln.display_name,
                    "a": (ln.a.x, ln.a.y),
                    "b": (ln.b.x, ln.b.y),
                    "in_side_right": ln.in_side_right,
                }
                for ln in msg.lines
            ],
            "rules": [_rule_from_proto(r) for r in msg.rules],
            "labels": dict(msg.labels),
        }
        # Zero means "default" on the wire (proto3 has no presence for scalars).
        for name, value in (
            ("max_width", msg.max_width),
            ("max_height", msg.max_height),
            ("jpeg_quality", msg.jpeg_quality),
            ("image_fps", msg.image_fps),
        ):
            if value:
                data[name] = value
        if pacing != "unspecified":
            data["pacing"] = pacing
        decode = _enum_name(camera_pb2.VideoDecode, msg.decode, "VIDEO_DECODE_")
        if decode != "unspecified":
            data["decode"] = decode
        if msg.HasField("start_time"):
            data["start_time"] = msg.start_time.ToDatetime(tzinfo=UTC)
        return cls.model_validate(data)


def _timestamp(when: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(when)
    return ts


def _pt(p: Point) -> analysis_pb2.Point:
    return analysis_pb2.Point(x=p.x, y=p.y)


def _rule_to_proto(rule: Rule) -> camera_pb2.Rule:
    direction = {Direction.BOTH: 0, Direction.IN: 1, Direction.OUT: 2}[rule.direction]
    builtin = rule.type.name if isinstance(rule.type, RuleType) else ""
    msg = camera_pb2.Rule(
        id=rule.id,
        type=camera_pb2.RuleType.Value(f"RULE_TYPE_{builtin or 'CUSTOM'}"),
        custom_type="" if builtin else rule.type_name,
        zone_id=rule.zone,
        line_id=rule.line,
        labels=rule.labels,
        min_score=rule.min_score,
        anchor=camera_pb2.Anchor.Value(f"ANCHOR_{rule.anchor.name}"),
        hysteresis_frames=rule.hysteresis_frames,
        duration_seconds=rule.duration_s,
        min_count=rule.min_count,
        direction=analysis_pb2.CrossingDirection.ValueType(direction),
        debounce_seconds=rule.debounce_s,
        margin=rule.margin,
    )
    msg.config.update(rule.config)
    return msg


def _enum_name(enum: _EnumTypeWrapper[Any], number: int, prefix: str) -> str:
    """``lossless`` for PACING_LOSSLESS. Proto3 enums are open: a number the enum does not
    define (a newer writer, or garbage) comes through parsing, and gives a name no field
    accepts, so validation rejects it naming the field instead of raising here."""
    if number not in enum.values():
        return f"undefined value {number}"
    return enum.Name(number).removeprefix(prefix).lower()


def _rule_from_proto(msg: camera_pb2.Rule) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": msg.id,
        "type": msg.custom_type
        if msg.type == camera_pb2.RULE_TYPE_CUSTOM
        else _enum_name(camera_pb2.RuleType, msg.type, "RULE_TYPE_"),
        "zone": msg.zone_id,
        "line": msg.line_id,
        "labels": list(msg.labels),
        "min_score": msg.min_score,
        "duration_s": msg.duration_seconds,
        "min_count": msg.min_count,
        "direction": ["both", "in", "out"][msg.direction] if msg.direction in (0, 1, 2) else "invalid",
    }
    if msg.anchor:
        data["anchor"] = _enum_name(camera_pb2.Anchor, msg.anchor, "ANCHOR_")
    if msg.hysteresis_frames:
        data["hysteresis_frames"] = msg.hysteresis_frames
    if msg.HasField("debounce_seconds"):
        data["debounce_s"] = msg.debounce_seconds
    if msg.margin:
        data["margin"] = msg.margin
    if msg.config.fields:
        data["config"] = json_format.MessageToDict(msg.config)
    return data


def _area(polygon: list[Point]) -> float:
    n = len(polygon)
    return (
        abs(
            sum(
                polygon[i].x * polygon[(i + 1) % n].y - polygon[(i + 1) % n].x * polygon[i].y
                for i in range(n)
            )
        )
        / 2
    )


def _self_intersects(polygon: list[Point]) -> bool:
    edges = [(polygon[i], polygon[(i + 1) % len(polygon)]) for i in range(len(polygon))]
    for i, (a, b) in enumerate(edges):
        for j in range(i + 1, len(edges)):
            if j == i + 1 or (i == 0 and j == len(edges) - 1):
                continue  # neighbours share a vertex
            c, d = edges[j]
            if _segments_cross(a, b, c, d):
                return True
    return False


def _segments_cross(a: Point, b: Point, c: Point, d: Point) -> bool:
    def orient(p: Point, q: Point, r: Point) -> float:
        return (q.x - p.x) * (r.y - p.y) - (q.y - p.y) * (r.x - p.x)

    d1, d2, d3, d4 = orient(c, d, a), orient(c, d, b), orient(a, b, c), orient(a, b, d)
    return (d1 * d2 < 0) and (d3 * d4 < 0)

"""The settings reference of the built-in analyzers, rendered from their ``Config`` models.

Why generated: the pydantic model is what validates ``services.detector.analyzers.<name>``
(and ``camsight analyze -o key=value``), so the model is the one place a setting's type,
default, bounds and meaning live. ``docs/analyzers.md`` is this module's output;
``tests/analyzers/test_analyzer_docs.py`` fails when a field has no description or the
committed page is stale. Regenerate with ``camsight plugins docs --output docs/analyzers.md``
(or ``python -m camsight.analyzers.docs docs/analyzers.md``).

Only the plugin modules are imported and only their ``camsight_analyzers()`` hooks are
called: no analyzer is constructed and no model is loaded, and the torch and faces modules
import their heavy libraries lazily, so this works without those extras installed.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import json
import sys
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, cast, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from camsight.analyzers.api import Analyzer, AnalyzerConfig

# Entry-point name -> module, as in pyproject.toml's [project.entry-points.camsight], and
# whether the plugin needs the extra of the same name (the test checks both against pyproject).
BUILTIN_PLUGINS: dict[str, str] = {
    "opencv": "camsight_opencv",
    "torch": "camsight_torch",
    "faces": "camsight_faces",
}
PLUGINS_WITH_EXTRAS = frozenset({"torch", "faces"})
COMMON_FIELDS = tuple(AnalyzerConfig.model_fields)

HEADER = """\
# Built-in analyzers: settings

<!-- Generated from each analyzer's Config model by `camsight plugins docs --output
docs/analyzers.md`; do not edit by hand (tests/analyzers/test_analyzer_docs.py fails when
this page is stale). -->

Every analyzer is configured by a mapping of settings, validated by its pydantic `Config`
model: an unknown setting or a value out of bounds stops the service with a message naming
it. Settings go in the detector's (or face service's) configuration, or on the command line
of `camsight analyze`:

```yaml
services:
  detector:
    analyzers:
      hog: {max_width: 960, min_score: 0.6}
      motion: {}
```

```sh
camsight analyze --plugin hog -o max_width=960 -o min_score=0.6 street.mp4
```

`camsight plugins list` shows which analyzers are installed; writing your own is
[plugins.md](plugins.md).
"""


@dataclass(frozen=True)
class FieldDoc:
    """One setting as the reference shows it."""

    name: str
    type: str
    default: str
    description: str


def builtin_analyzers(plugins: Iterable[str] = BUILTIN_PLUGINS) -> list[tuple[str, type[Analyzer]]]:
    """``(plugin, analyzer class)`` of each built-in plugin, in the order the plugin lists them."""
    found: list[tuple[str, type[Analyzer]]] = []
    for plugin in plugins:
        module = importlib.import_module(BUILTIN_PLUGINS[plugin])
        found += [(plugin, cls) for cls in module.camsight_analyzers()]
    return found


def field_docs(model: type[BaseModel], skip: Sequence[str] = ()) -> list[FieldDoc]:
    """The fields of ``model`` (minus ``skip``) in declaration order."""
    return [
        FieldDoc(
            name,
            render_type(info.annotation) + _bounds(info),
            _default(info),
            (info.description or "").strip(),
        )
        for name, info in model.model_fields.items()
        if name not in skip
    ]


def undocumented(model: type[BaseModel]) -> list[str]:
    """Fields of ``model`` without a description: what the reference could not explain."""
    return [name for name, info in model.model_fields.items() if not (info.description or "").strip()]


def render_type(annotation: Any) -> str:
    """A type as a user writes the value in YAML: ``int``, ``list of str``, ``"a" or "b"``."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Literal:
        return " or ".join(json.dumps(arg) for arg in args)
    if origin in (Union, types.UnionType):
        parts = [render_type(arg) for arg in args if arg is not type(None)]
        return " or ".join(parts)
    if origin in (list, tuple, set, frozenset, Sequence):
        return f"list of {render_type(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping of {render_type(args[0])} to {render_type(args[1])}" if args else "mapping"
    if annotation is Any:
        return "any"
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return "path"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " or ".join(json.dumps(member.value) for member in annotation)
    return getattr(annotation, "__name__", str(annotation))


def _bounds(info: FieldInfo) -> str:
    """Numeric bounds from ``Field(ge=..., le=...)``, e.g. ``, 0 to 1`` or ``, > 1``."""
    low = high = ""
    for meta in info.metadata:
        if isinstance(meta, annotated_types.Ge):
            low = f">= {meta.ge}"
        elif isinstance(meta, annotated_types.Gt):
            low = f"> {meta.gt}"
        elif isinstance(meta, annotated_types.Le):
            high = f"<= {meta.le}"
        elif isinstance(meta, annotated_types.Lt):
            high = f"< {meta.lt}"
    if low.startswith(">=") and high.startswith("<="):
        return f", {low[3:]} to {high[3:]}"
    return "".join(f", {bound}" for bound in (low, high) if bound)


def _default(info: FieldInfo) -> str:
    """The default as YAML would spell it; "required" when there is none; "unset" for None."""
    if info.default_factory is not None:
        value = cast(Any, info.default_factory)()
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    if value is None:
        return "unset"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, Path):
        value = str(value)
    return f"`{json.dumps(value)}`"


def _cell(text: str) -> str:
    """Table cell text: a ``|`` would end the cell, a newline the row."""
    return " ".join(text.split()).replace("|", "\\|")


def table(fields: Sequence[FieldDoc]) -> str:
    """A Markdown table: setting, type, default, description."""
    rows = ["| Setting | Type | Default | Description |", "|---|---|---|---|"]
    rows += [
        f"| `{f.name}` | {_cell(f.type)} | {_cell(f.default)} | {_cell(f.description) or '(undocumented)'} |"
        for f in fields
    ]
    return "\n".join(rows)


def _summary(cls: type[Analyzer]) -> str:
    """The first paragraph of the analyzer's docstring (its module's when the class has none)."""
    doc = inspect.getdoc(cls) if cls.__doc__ else inspect.getdoc(sys.modules[cls.__module__])
    return " ".join((doc or "").split("\n\n")[0].split()).replace("``", "`")


def plugin_section(plugin: str, analyzers: Sequence[type[Analyzer]]) -> str:
    """The page's part for one plugin: how to install it, then one table per analyzer."""
    module = BUILTIN_PLUGINS[plugin]
    install = (
        f"needs the `{plugin}` extra: `pip install 'camsight[{plugin}]'`"
        if plugin in PLUGINS_WITH_EXTRAS
        else "installed with camsight"
    )
    parts = [f"## Plugin `{plugin}`\n\nModule `{module}`; {install}."]
    for cls in analyzers:
        clip = ", a clip analyzer (windows of frames)" if cls.clip else ""
        summary = _summary(cls)
        parts.append(
            f"### `{cls.name}`\n\nKind `{cls.kind}`{clip}. {summary}".rstrip()
            + f"\n\n{table(field_docs(cls.Config, COMMON_FIELDS))}\n\n"
            + f"Also `{'`, `'.join(COMMON_FIELDS)}` ([every analyzer](#every-analyzer))."
        )
    return "\n\n".join(parts)


def render(plugins: Iterable[str] = BUILTIN_PLUGINS) -> str:
    """The whole reference page (the content of docs/analyzers.md)."""
    by_plugin: dict[str, list[type[Analyzer]]] = {}
    for plugin, cls in builtin_analyzers(plugins):
        by_plugin.setdefault(plugin, []).append(cls)
    common = (
        "## Every analyzer\n\nThese settings exist on every analyzer; analyzers that do not use "
        f"torch ignore them.\n\n{table(field_docs(AnalyzerConfig))}"
    )
    sections = [plugin_section(plugin, classes) for plugin, classes in by_plugin.items()]
    return "\n\n".join([HEADER.rstrip(), common, *sections]) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m camsight.analyzers.docs [PATH]``: write the page to PATH, or print it."""
    args = list(sys.argv[1:] if argv is None else argv)
    text = render()
    if args:
        Path(args[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""docs/tutorial.md cannot rot: its configs load as ``--config`` files and its commands' options exist.

The README's commands are checked the same way.

The commands themselves were run by hand on the sample videos when the
tutorial was written; running them all here would take minutes. What is
checked is what silently goes stale: config fields and command-line flags.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
from camsight.cameras import RuleType
from camsight.cli import app
from camsight.config import Settings, load_settings
from camsight.run.demo import demo_cameras
from typer.core import TyperCommand, TyperGroup

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "tutorial.md"
README = ROOT / "README.md"


def blocks(language: str, doc: Path = DOC) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)


def configs(tmp_path: Path) -> list[Settings]:
    """Each YAML block, loaded as ``camsight run --config`` loads a file."""
    loaded = []
    for i, block in enumerate(blocks("yaml")):
        path = tmp_path / f"tutorial-{i}.yaml"
        path.write_text(block, encoding="utf-8")
        loaded.append(load_settings(path))
    return loaded


def test_every_yaml_block_is_a_valid_config(tmp_path: Path) -> None:
    settings = configs(tmp_path)
    assert len(settings) == 2, "the tutorial shows the demo's config and the user's"
    kinds = {rule.type for s in settings for camera in s.cameras for rule in camera.rules}
    assert {RuleType.ZONE_ENTER, RuleType.LINE_CROSS, RuleType.LOITERING, RuleType.FACE_RECOGNIZED} <= kinds


def test_the_demo_config_shown_is_the_demo_config(tmp_path: Path) -> None:
    shown = configs(tmp_path)[0].cameras
    actual = demo_cameras()
    assert [c.source for c in shown] == [Path(c.source).name for c in actual]
    assert [c.model_copy(update={"source": ""}) for c in shown] == [
        c.model_copy(update={"source": ""}) for c in actual
    ]


def commands() -> list[list[str]]:
    """Every ``camsight ...`` invocation in the bash blocks, as the shell splits it into words."""
    found = []
    for block in blocks("bash", DOC) + blocks("bash", README):
        for line in block.replace("\\\n", " ").splitlines():
            lexer = shlex.shlex(line.replace("<event id>", "EVENT_ID"), posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            words: list[str] = []
            for token in [*lexer, "&&"]:
                if token in ("&&", "|", ";"):
                    if words[:1] == ["camsight"]:
                        found.append(words[1:])
                    words = []
                else:
                    words.append(token)
    return found


def resolve(words: list[str]) -> tuple[TyperCommand | TyperGroup, list[str]]:
    """The sub-command ``words`` name, and the words left for it."""
    command = typer.main.get_command(app)
    while isinstance(command, TyperGroup) and words and words[0] in command.commands:
        command, words = command.commands[words[0]], words[1:]
    return command, words


@pytest.mark.parametrize("words", commands(), ids=" ".join)
def test_every_command_parses(words: list[str]) -> None:
    command, rest = resolve(words)
    assert not isinstance(command, TyperGroup), f"camsight {' '.join(words)}: no such command"
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    flags = {w.split("=")[0] for w in rest if w.startswith("-")}
    assert flags <= known, f"camsight {' '.join(words)}: unknown {sorted(flags - known)}"
    # Parsing (types, choices, arity), without running the command.
    command.make_context(command.name, list(rest), resilient_parsing=False).close()

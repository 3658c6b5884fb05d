"""The worked examples in docs/rules.md are valid configurations and cover every rule type."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from camsight.behavior.settings import BehaviorSettings
from camsight.cameras import RuleType
from camsight.config import Settings, service_section

DOC = Path(__file__).resolve().parents[2] / "docs" / "rules.md"


def test_every_example_validates_and_every_rule_type_has_one() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    types: set[str] = set()
    for block in blocks:
        settings = Settings(**yaml.safe_load(block))
        service_section(settings, "behavior", BehaviorSettings)
        types.update(rule.type_name for camera in settings.cameras for rule in camera.rules)
    assert types == {t.value for t in RuleType} | {"wrong_way"}  # and a plugin's

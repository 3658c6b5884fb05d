"""``explain: true`` on an analyzer (decision 0037): the host's setting, refused in one line
where the analyzer cannot explain; the event path itself is tested in tests/face/test_explain_events.py."""

from __future__ import annotations

from typing import Any

import pytest
from analyzer_helpers import context
from camsight.bus import Bus
from camsight.config import ConfigError, NatsSettings
from camsight.detector.service import DetectorService


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"explain": True}, "hog: explain: true, but analyzer hog cannot explain its results"),
        ({"explain": "yes"}, "hog: explain must be true or false, not 'yes'"),
    ],
)
def test_an_analyzer_that_cannot_explain_is_refused_in_one_line(
    bus: Bus, nats_settings: NatsSettings, config: dict[str, Any], message: str
) -> None:
    ctx = context(bus, nats_settings, {"analyzers": {"hog": config}})
    with pytest.raises(ConfigError) as caught:
        DetectorService(ctx)
    assert str(caught.value) == f"services.detector.analyzers: {message}"


async def test_explain_is_the_hosts_setting_not_the_analyzers(bus: Bus, nats_settings: NatsSettings) -> None:
    service = DetectorService(context(bus, nats_settings, {"analyzers": {"hog": {"explain": False}}}))
    assert service.host.explain == frozenset()


@pytest.mark.slow
async def test_a_back_end_that_cannot_explain_fails_at_load(
    bus: Bus, nats_settings: NatsSettings, running: Any
) -> None:
    """CenterFace on OpenCV is an Explainer that refuses in its configuration: found at load,
    so the service is not ready and says why, instead of failing on every batch."""
    analyzers = {"centerface": {"backend": "opencv", "embed": False, "explain": True}}
    service = DetectorService(context(bus, nats_settings, {"analyzers": analyzers}))
    await running(service)
    ready, reason = service.readiness()
    assert not ready and "centerface explains only with backend: torch" in reason, reason

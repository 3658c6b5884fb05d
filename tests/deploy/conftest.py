"""Fixtures of the deployment tests: a fake Kubernetes API for the controller."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fake_kube_api import NAMESPACE, FakeKubeApi


@pytest.fixture
async def kube_api() -> AsyncIterator[FakeKubeApi]:
    api = FakeKubeApi(NAMESPACE)
    await api.start()
    yield api
    await api.stop()

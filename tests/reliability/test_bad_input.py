"""The bad-input corpus (see corpus.py): every case gets a clear error and every service stays up.

Offline cases run alone; system cases share one running pipeline (decoder,
detector, face, behavior, query in one Runtime on a real nats-server) for the
module, so each case also proves the services survived the cases before it.
"""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from camsight.natsserver import EmbeddedNats
from corpus import CASES, Case
from reliability_support import System, running_system

ROOT = Path(__file__).resolve().parents[2]


def _params(kind: str) -> list[object]:
    chosen = [c for c in CASES if getattr(c, kind)]
    return [
        pytest.param(c, id=c.id, marks=[pytest.mark.xfail(reason=c.xfail, strict=True)] if c.xfail else [])
        for c in chosen
    ]


def test_the_corpus_has_at_least_30_cases_each_with_one_way_to_check_it() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
    for case in CASES:
        ways = [bool(case.offline), bool(case.system), bool(case.covered_by)]
        assert sum(ways) == 1, case.id
        assert case.feeds and case.expected, case.id


@pytest.mark.parametrize("case", [c for c in CASES if c.covered_by], ids=lambda c: c.id)
def test_covered_cases_point_at_existing_tests(case: Case) -> None:
    path, _, name = case.covered_by.partition("::")
    tree = ast.parse((ROOT / path).read_text())
    names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    assert name in names, f"{case.covered_by} no longer exists"


@pytest.mark.parametrize("case", _params("offline"))
def test_offline_case(case: Case, tmp_path: Path) -> None:
    assert case.offline is not None
    case.offline(tmp_path)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def system(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    tmp = tmp_path_factory.mktemp("corpus")
    with EmbeddedNats(store_dir=tmp / "jetstream", log_file=tmp / "nats.log") as server:
        async with running_system(server.url, tmp / "data") as running:
            yield running


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("case", _params("system"))
async def test_system_case(case: Case, system: System) -> None:
    assert case.system is not None
    await case.system(system)
    await system.assert_ready()

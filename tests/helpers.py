"""Test helpers shared by every test module (on sys.path via pytest's ``pythonpath``)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import pytest
from camsight.samples import sample_video

__all__ = [
    "entry_point_site",
    "install_example",
    "install_package",
    "needs",
    "needs_helm",
    "sample_video",
    "wait_for",
    "wait_for_sync",
]

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def needs(what: str, found: bool, install: str, required_by: str, *, module: bool = False) -> None:
    """Skip unless ``found``: a test needing ``what``, which ``pip install -e ".[test]"`` cannot
    bring here, skips with the command that installs it, so the README's test command passes on
    a fresh machine. With ``<required_by>=1`` (CI sets it after installing it) it fails instead:
    there a skip would hide the test."""
    if found:
        return
    message = f"needs {what}: {install}"
    if os.environ.get(required_by) == "1":
        pytest.fail(f"{message} ({required_by}=1 requires it)", pytrace=False)
    pytest.skip(message, allow_module_level=module)


def needs_helm() -> None:
    """Skip the module unless helm-sdkpy (the Helm v4 engine) imports: a test extra on Python
    3.12+; on 3.11 it installs with --ignore-requires-python (docs/decisions/0060)."""
    try:
        import helm_sdkpy  # noqa: F401
    except ImportError:
        needs(
            "helm-sdkpy (the Helm v4 engine)",
            False,
            "pip install -e '.[test]' on Python 3.12+, "
            "or pip install --ignore-requires-python helm-sdkpy==0.1.32",
            "CAMSIGHT_REQUIRE_CHART",
            module=True,
        )


async def wait_for(
    predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Wait until ``predicate()`` is true (it may be async), failing after ``timeout`` seconds.

    This is how tests synchronise: on a condition with a deadline, never a bare sleep.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def wait_for_sync(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Blocking twin of :func:`wait_for` for synchronous tests."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


# Ctrl-C in a terminal reaches a process whose SIGINT handler is Python's default. A test
# process started in the background of a non-interactive shell (`cmd &` in a CI script)
# inherits SIGINT *ignored*, and so would every child it starts; Python keeps an ignored
# SIGINT ignored. This prelude gives the child the terminal's disposition back.
_INTERRUPTIBLE = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'camsight'; runpy.run_module('camsight', run_name='__main__', alter_sys=True)"
)


def camsight_command(*args: str) -> list[str]:
    """argv that runs ``camsight ARGS`` in a new Python process that Ctrl-C (SIGINT) interrupts."""
    return [sys.executable, "-c", _INTERRUPTIBLE, *args]


def start_camsight(*args: str, cwd: Path, tmpdir: Path, path: Sequence[Path] = ()) -> subprocess.Popen[str]:
    """``camsight ARGS`` in the background (see :func:`camsight_command`), stdout and stderr piped,
    with ``TMPDIR=tmpdir``: where an embedded nats-server keeps its folder (see :func:`leftovers`);
    the tests and ``path`` importable (test plugins), as for :func:`camsight_process`."""
    return subprocess.Popen(
        camsight_command(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, "TMPDIR": str(tmpdir), "PYTHONPATH": _pythonpath(path)},
    )


def leftovers(tmpdir: Path) -> list[str]:
    """What an embedded nats-server started with ``TMPDIR=tmpdir`` left behind: its
    ``camsight-nats-*`` folders and any live process whose command line names one."""
    found = [str(p) for p in tmpdir.glob("camsight-nats-*")]
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
            state = (cmdline.parent / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # the process ended meanwhile
        if state != "Z" and any(str(tmpdir).encode() in arg for arg in argv):
            found.append(f"pid {cmdline.parent.name}: {b' '.join(argv).decode(errors='replace')}")
    return found


def install_example(name: str, work: Path) -> Path:
    """:func:`install_package` of ``examples/<name>``."""
    return install_package(EXAMPLES / name, work)


def install_package(package: Path, work: Path) -> Path:
    """pip-install the package in folder ``package`` into ``work/site`` like a third party;
    returns that folder (put it on ``sys.path`` or ``PYTHONPATH``: its entry points are then found).

    The source is copied first so the build leaves nothing in the working tree;
    no network (``--no-index``) and no build isolation (setuptools is in the venv).
    """
    source = shutil.copytree(package, work / "src", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = work / "site"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
            *("--no-deps", "--no-index", "--no-build-isolation", "--target", str(target), str(source)),
        ],
        check=True,
        timeout=120,
    )
    return target


def camsight_process(
    cwd: Path, *args: str, path: Sequence[Path] = (), timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m camsight ARGS`` run to its end in ``cwd``, with the tests and ``path``
    (installed plugins) importable, as a user's shell runs it."""
    return subprocess.run(
        [sys.executable, "-m", "camsight", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": _pythonpath(path)},
    )


def _pythonpath(path: Sequence[Path]) -> str:
    """``PYTHONPATH`` for a camsight child process: the tests (their plugins), ``path``, the inherited one."""
    return os.pathsep.join([str(Path(__file__).parent), *map(str, path), os.environ.get("PYTHONPATH", "")])


def entry_point_site(
    site: Path,
    distribution: str,
    entry_points: Mapping[str, str],
    modules: Mapping[str, str],
    metadata: str = "",
) -> Path:
    """Make ``site`` a folder that, on ``sys.path`` or ``PYTHONPATH``, installs a third-party
    plugin package without pip: distribution ``distribution`` 1.0 (plus ``metadata`` lines),
    whose ``entry_points`` (name -> module) are in the ``camsight`` group, and ``modules``
    (name -> source). Returns ``site``."""
    info = site / f"{distribution.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n{metadata}")
    points = "".join(f"{name} = {module}\n" for name, module in entry_points.items())
    (info / "entry_points.txt").write_text(f"[camsight]\n{points}")
    for name, source in modules.items():
        (site / f"{name}.py").write_text(source)
    return site

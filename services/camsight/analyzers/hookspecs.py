"""Hook specifications of camsight plugins (pluggy project name ``camsight``).

A camsight plugin is a Python module, registered through the ``camsight``
entry-point group, that implements one or more of the hooks below with
:data:`hookimpl`::

    # pyproject.toml of your package
    [project.entry-points.camsight]
    my_plugin = "my_plugin"

    # my_plugin/__init__.py
    from camsight.analyzers import FrameAnalyzer, hookimpl

    class Blobs(FrameAnalyzer):
        name = "blobs"
        kind = "objects"
        ...

    @hookimpl
    def camsight_analyzers():
        return [Blobs]

Rule types and source schemes are declared the same way (``camsight_rules``,
``camsight_sources``). The entry point's name is the plugin's name, unique among
the installed packages: one that takes the name of camsight's own plugin
(``opencv``, ``torch``, ``faces``, ``camsight-rules``, ``camsight-sources``) is
not loaded, and two third-party ones sharing a name are both refused.

The docstring of each hook below is its documentation. Hooks are stable:
new hooks may be added, existing ones keep their signature.
"""

from __future__ import annotations

from collections.abc import Sequence

import pluggy

from camsight.analyzers.api import Analyzer
from camsight.analyzers.rules import EventRule
from camsight.analyzers.sources import SourceReader

PROJECT = "camsight"
"""Pluggy project name and entry-point group."""

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def camsight_analyzers() -> Sequence[type[Analyzer]]:
    """Return the analyzer classes this plugin provides.

    Each class subclasses :class:`camsight.analyzers.FrameAnalyzer` or
    :class:`camsight.analyzers.ClipAnalyzer` and declares ``name``,
    ``kind``, ``version`` and ``Config``. Return classes, not instances:
    the host instantiates only the analyzers an operator enabled, with the
    operator's validated config, so listing plugins stays cheap. Import
    heavy dependencies (torch, model files) in ``load()``, not at module
    import time.

    Analyzer names must be unique across all installed plugins. A name two
    plugins declare is unusable (that name only: every other analyzer of
    both plugins still works) until one plugin is disabled
    (``disabled_plugins``); ``camsight plugins list`` flags it, and enabling
    it is an error naming both plugins.
    """
    raise NotImplementedError  # pragma: no cover - specification only


@hookspec
def camsight_rules() -> Sequence[type[EventRule]]:
    """Return the behaviour rule types this plugin provides.

    Each class subclasses :class:`camsight.analyzers.rules.EventRule` and
    declares ``name`` (what operators write as a rule's ``type:``; letters,
    digits, ``-`` and ``_``) and ``Config`` (a
    :class:`~camsight.analyzers.rules.RuleConfig` model validating the
    rule's ``config:``). The behavior service builds one instance per camera
    and configured rule and turns its findings into events; see
    docs/plugins.md ("A custom rule").

    camsight's built-in rule types (``zone_enter``, ``line_cross``...)
    answer this hook too, from the behavior service's own plugin, with
    runners of its internal API. A plugin declaring one of their names is
    refused with an error naming it; two plugins declaring one name block
    that name, as for analyzers.
    """
    raise NotImplementedError  # pragma: no cover - specification only


@hookspec
def camsight_sources() -> Sequence[type[SourceReader]]:
    """Return the camera source types this plugin provides.

    Each class subclasses :class:`camsight.analyzers.sources.SourceReader`
    and declares ``scheme``: a camera whose ``source`` is
    ``<scheme>://...`` is read through it (one instance per camera and
    attempt, built with the whole URI). See docs/plugins.md ("A camera
    source") and docs/sources.md.

    camsight's own schemes (``file``, ``rtsp``, ``rtsps``, ``rtmp``,
    ``rtmps``, ``http``, ``https``) answer this hook too, from the decoder's
    own plugin. A plugin declaring one of them is refused with an error
    naming it; two plugins declaring one scheme block it.
    """
    raise NotImplementedError  # pragma: no cover - specification only

"""Embedded mode: every service and a private nats-server in one process.

``camsight run`` and ``camsight demo`` use :class:`EmbeddedPipeline`; it sits
above the services in the layering (it starts them all) and below the CLI.
"""

from camsight.run.pipeline import EmbeddedPipeline, PipelineFailed, PipelineSummary, not_run, source_cameras

__all__ = ["EmbeddedPipeline", "PipelineFailed", "PipelineSummary", "not_run", "source_cameras"]

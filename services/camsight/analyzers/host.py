"""The analyzer host: frames in from FRAMES, one AnalysisResult per frame and analyzer out.

Shared by the detector and face services. Per fetched batch
(``PullWorker.fetch(batch, timeout)`` is the dynamic batcher), in three
pipelined stages (``pipelined``, the default: while one batch is analysed the
next is decoded and the previous one published and acked, so the analyzers
do not wait for JPEG decoding or the bus):

1. parse the Frames; a live or real-time frame older than ``max_frame_age_s``
   is answered as skipped ("too old") and counted as dropped, so under
   overload the newest frames win and every frame still gets its answer. A
   paced (lossless) frame is never too old: the decoder's pacing window
   already bounds what is in flight, and a file must be analysed whole
   however slow an analyzer is;
2. decode the images off the event loop: BGR arrays for the analyzers that
   take numpy (OpenCV, or torchvision's nvJPEG batch decoder when torch
   analyzers run and see a GPU, per ``decode``), and RGB tensors decoded on
   the device of each analyzer declaring ``inputs = "tensor"``, left there
   (:mod:`camsight.analyzers.pictures`);
3. run every analyzer on the frames meant for it, each on a thread of its own
   (:class:`PluginThread`);
   a clip analyzer gets sliding windows kept here per camera (a tensor clip
   analyzer's on its device: its clips never go through host memory);
4. let an optional ``postprocess`` coroutine enrich the results (the face
   service attaches identities), and attach the saliency map of an analyzer
   configured with ``explain: true`` to each result where it found something
   (decision 0037; a failing explanation is logged and the result goes
   without one);
5. publish every result, and only then return so the worker acks.

Stages 1-2 are the first pipeline stage, 3-4 the second, 5 the third.

A plugin raising on a batch is counted and logged (one line; a failure that
repeats is logged again with its count at most every minute) and the batch's
results are published as skipped with the reason; the service goes on. A
plugin that fails to load makes the host not-ready (``load_errors``) while the
other analyzers keep working. A call that has not returned ``stop_timeout_s``
after the host was asked to stop is left behind, so that the service stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast

import numpy as np
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from prometheus_client import Counter, Gauge, Histogram
from pydantic import BaseModel, ConfigDict, Field

from camsight.analyzers.api import (
    Analyzer,
    AnalyzerError,
    Clip,
    ClipAnalyzer,
    Detection,
    FrameAnalyzer,
    FrameInfo,
    Image,
    Precision,
    ResultError,
    check_results,
    detections_problem,
)
from camsight.analyzers.devices import cuda_available
from camsight.analyzers.explain import Explainer, encode
from camsight.analyzers.manager import PluginManager, default_manager, error_line, failed_to_load
from camsight.analyzers.pictures import decode_frames, decode_tensors, tensor_device
from camsight.analyzers.windows import SlidingWindows
from camsight.bus import MalformedMessageError, Pipeline, PullWorker, WorkerConfig, subjects
from camsight.privacy import blur_jpeg, must_blur
from camsight.runtime import ServiceContext
from camsight.v1 import analysis_pb2, frame_pb2

log = logging.getLogger(__name__)
T = TypeVar("T")

Postprocess = Callable[[Analyzer, Sequence[Image], Sequence[analysis_pb2.AnalysisResult]], Awaitable[None]]
"""``async (analyzer, images, results)``: enrich analysed results in place before publishing."""

EXPLAIN = "explain"
"""The per-analyzer setting that asks the host for saliency maps (not passed to the analyzer)."""

SKIP_TOO_OLD = "too old"
SKIP_END_OF_STREAM = "end of stream"
REPEATED_ERRORS_EVERY_S = 60.0
"""How often a failure that repeats (an analyzer failing on every batch) is logged again, with its count."""

BATCH = Histogram(
    "camsight_analyzer_batch_size",
    "Frames per analyzer call",
    ["service", "analyzer"],
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
INFERENCE = Histogram(
    "camsight_analyzer_inference_seconds", "Time of one analyzer call (one batch)", ["service", "analyzer"]
)
DECODE = Histogram("camsight_analyzer_decode_seconds", "Time to decode one fetched batch", ["service"])
FRAMES = Counter(
    "camsight_analyzer_frames",
    "Frames per analyzer and outcome (analyzed, dropped, failed, skipped)",
    ["service", "analyzer", "outcome"],
)
ERRORS = Counter("camsight_analyzer_errors", "Analyzer calls that raised", ["service", "analyzer"])
LAG = Gauge(
    "camsight_analyzer_consumer_lag", "Frames pending on the consumer after the last fetch", ["service"]
)


class HostSettings(BaseModel):
    """Settings of a service that hosts analyzers (``services.<service>`` in the config)."""

    model_config = ConfigDict(extra="forbid")

    analyzers: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="analyzer name -> its config (validated by the analyzer's model)"
    )
    batch: int = Field(default=8, ge=1, le=256, description="frames fetched and analysed per batch (max)")
    fetch_timeout_s: float = Field(default=0.05, gt=0, le=30, description="wait this long to fill a batch")
    max_frame_age_s: float = Field(
        default=10.0,
        ge=0,
        description="live and real-time frames older than this are skipped (lossless ones never); 0 = never",
    )
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda|cuda:\d+)$")
    precision: Precision = "fp32"
    decode: Literal["auto", "opencv", "torchvision"] = Field(
        default="auto",
        description="auto = torchvision on the GPU when a torch analyzer runs on one, else OpenCV",
    )
    ack_wait_s: float = Field(default=60.0, gt=0, description="redeliver frames held longer than this")
    stop_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description=(
            "on stop, wait this long for the analyzer calls in progress; one still running then is "
            "left behind (its frames are not acknowledged) and the service stops without it"
        ),
    )
    pipelined: bool = Field(
        default=True,
        description=(
            "decode the next batch and publish the previous one while a batch is analysed "
            "(false: one step after another)"
        ),
    )
    disabled_plugins: list[str] = Field(
        default_factory=list,
        description="deprecated: the top-level disabled_plugins serves every service (both are honoured)",
    )
    plugin_modules: list[str] = Field(default_factory=list, description="extra plugin modules to import")

    def plugin_manager(self, disabled: Iterable[str], service: str) -> PluginManager:
        """The plugins this service loads: all but the top-level ``disabled`` ones and, while the
        deprecated per-service list is still honoured, this section's ``disabled_plugins``."""
        if self.disabled_plugins:
            log.warning(
                "services.%s.disabled_plugins is deprecated: use the top-level disabled_plugins, "
                "which every service reads",
                service,
            )
        return default_manager([*disabled, *self.disabled_plugins], self.plugin_modules)


@dataclass
class HostStats:
    """In-process counters (the same as the metrics), for tests and benchmarks.

    ``frames`` counts fetched frames; ``analyzed``, ``dropped`` (too old),
    ``failed`` (the analyzer raised) and ``skipped`` (undecodable, no window
    due, analyzer not loaded) count (frame, analyzer) pairs.
    """

    batches: int = 0
    frames: int = 0
    analyzed: int = 0
    dropped: int = 0
    failed: int = 0
    skipped: int = 0
    published: int = 0
    decode_s: float = 0.0
    inference_s: dict[str, float] = field(default_factory=dict)
    publish_s: float = 0.0
    handle_s: float = 0.0
    """Seconds spent in the three stages, summed (pipelined, they overlap in wall time)."""


class PluginThread:
    """A daemon thread of one analyzer's own, running its calls (load, analyze, explain,
    close) one after the other.

    A plugin's call cannot be interrupted. On asyncio's default executor, one that never
    returns keeps the process alive after everything else stopped: ``asyncio.run`` waits
    for the executor's threads when it ends, and the interpreter for every non-daemon
    thread at exit. On a daemon thread, a hung analyzer is left behind when the host stops
    (after ``stop_timeout_s``), and :attr:`busy` names the call it is stuck in. One thread
    per analyzer also keeps the protocol's promise that an instance never runs two calls
    at once, and keeps a torch analyzer on the thread that loaded it.
    """

    def __init__(self, analyzer: str) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=f"analyzer-{analyzer}", daemon=True)
        self._stopped = False
        self.busy: str | None = None
        """The name of the method running now (``analyze``, ``load``...); None when idle."""

    async def call(self, method: Callable[..., T], *args: Any) -> T:
        """``method(*args)`` on this thread, once the calls before it returned."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def job() -> None:
            self.busy = getattr(method, "__name__", "a call")
            try:
                outcome: tuple[Any, BaseException | None] = (method(*args), None)
            except BaseException as exc:  # handed to the caller, whatever it is
                outcome = (None, exc)
            finally:
                self.busy = None
            with contextlib.suppress(RuntimeError):  # the loop closed while the call ran
                loop.call_soon_threadsafe(_settle, future, *outcome)

        if self._thread.ident is None:
            self._thread.start()
        self._jobs.put(job)
        return await future

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called: no call may follow."""
        return self._stopped

    def stop(self) -> None:
        """End the thread once the calls queued so far returned."""
        if self._thread.ident is not None and not self._stopped:
            self._jobs.put(None)
        self._stopped = True

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():  # the caller stopped waiting (the host gave up on the call)
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class RepeatedErrors:
    """Logs a failure once, then how often it repeated.

    An analyzer that fails on every batch would log a line per batch (46 lines for 250
    frames, and as many in a service's log every minute): the first failure of each kind
    of each analyzer is logged whole, the next ones are counted and logged as one line with
    the count and the latest message at most every ``every_s`` seconds, and what is still
    counted when the host closes is logged then.
    """

    def __init__(
        self, every_s: float = REPEATED_ERRORS_EVERY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.every_s = every_s
        self._clock = clock
        self._counted: dict[tuple[str, str], tuple[int, float, str]] = {}
        """(analyzer, what failed) -> (repeats not logged yet, when last logged, the latest message)."""

    def error(self, analyzer: str, what: str, message: str) -> None:
        """Log (or count) that ``what`` failed for ``analyzer`` with ``message`` (one line)."""
        key, now = (analyzer, what), self._clock()
        if key not in self._counted:
            log.error("analyzer %s: %s: %s", analyzer, what, message)
            self._counted[key] = (0, now, message)
            return
        count, logged, _ = self._counted[key]
        if now - logged >= self.every_s:
            self._log_repeats(key, count + 1, now - logged, message)
            self._counted[key] = (0, now, message)
        else:
            self._counted[key] = (count + 1, logged, message)

    def flush(self) -> None:
        """Log the repeats counted and not logged yet."""
        now = self._clock()
        for key, (count, logged, message) in self._counted.items():
            if count:
                self._log_repeats(key, count, now - logged, message)
        self._counted.clear()

    @staticmethod
    def _log_repeats(key: tuple[str, str], count: int, seconds: float, latest: str) -> None:
        analyzer, what = key
        log.error(
            "analyzer %s: %s %d more times in %.0f s; the latest: %s", analyzer, what, count, seconds, latest
        )


@dataclass
class _Item:
    """One parsed frame of a fetched batch, with its fate so far."""

    msg: Msg
    frame: frame_pb2.Frame
    info: FrameInfo
    stream_sequence: int
    pictures: dict[str | None, Any] = field(default_factory=dict)
    """Decoded :data:`Picture` by device (None: the BGR array), for the analyzers that take each:
    an analyzer gets the kind it declares (the protocol's ``Image`` in its signature)."""
    skip: str = ""


@dataclass
class _Batch:
    """One fetched batch on its way through the stages."""

    msgs: Sequence[Msg]
    outcomes: list[BaseException | None]
    items: list[_Item]
    results: list[tuple[_Item, analysis_pb2.AnalysisResult]] = field(default_factory=list)


class AnalyzerHost:
    """Runs ``analyzers`` over the FRAMES stream for service ``service_name``.

    One durable pull consumer named after the service (replicas share it),
    filter ``frames.>``, ack sampling at 100 % for the decoder's pacing.
    """

    def __init__(
        self,
        ctx: ServiceContext,
        analyzers: Sequence[Analyzer],
        service_name: str,
        settings: HostSettings,
        postprocess: Postprocess | None = None,
        explain: Collection[str] = (),
    ) -> None:
        self.ctx = ctx
        self.analyzers = list(analyzers)
        self.explain = frozenset(explain)
        """Names of the analyzers whose results carry saliency maps (see :func:`create_analyzers`)."""
        self.service_name = service_name
        self.settings = settings
        self.postprocess = postprocess
        self.load_errors: dict[str, str] = {}
        self.abandoned: list[str] = []
        """One line per analyzer call the host stopped without (it had not returned): :meth:`run_until`."""
        self.stats = HostStats()
        self._threads = {a.name: PluginThread(a.name) for a in self.analyzers}
        self._errors = RepeatedErrors()
        self._windows: dict[str, SlidingWindows] = {}
        self._worker: PullWorker | None = None
        self._gpu_decode = False
        self._devices: dict[str, str | None] = {a.name: None for a in self.analyzers if a.inputs == "numpy"}
        """Analyzer name -> the device its pictures are decoded on (None: BGR arrays); set by load()."""

    async def load(self) -> None:
        """Load every analyzer on its thread; failures go to :attr:`load_errors`. Cancelled
        (the service stops meanwhile), a load still running is named in :attr:`abandoned`."""
        for analyzer in self.analyzers:
            thread = self._threads[analyzer.name]
            try:
                await thread.call(analyzer.load)
                if analyzer.name in self.explain:
                    assert isinstance(analyzer, Explainer)
                    # A small blank picture: an analyzer that cannot explain in its configuration fails now.
                    await thread.call(analyzer.explain, [np.zeros((64, 64, 3), np.uint8)])
            except asyncio.CancelledError:
                self._give_up("before the service stopped")
                raise
            except Exception as exc:
                reason = failed_to_load(analyzer.name, exc)
                log.error("%s", reason)
                self.load_errors[analyzer.name] = reason
        self._devices = {a.name: tensor_device(a) for a in self.analyzers if a.name not in self.load_errors}
        # auto: decode on the GPU only when an analyzer already brought torch in; an
        # OpenCV-only service must not pay torch's import time and memory for it.
        wanted = self.settings.decode == "torchvision" or (
            self.settings.decode == "auto" and "torch" in sys.modules
        )
        self._gpu_decode = wanted and cuda_available()

    def readiness(self) -> tuple[bool, str]:
        """Ready when every analyzer loaded; else the reasons."""
        if self.load_errors:
            return False, "; ".join(self.load_errors.values())
        return True, ""

    def worker_config(self) -> WorkerConfig:
        return WorkerConfig(
            stream=subjects.FRAMES_STREAM,
            durable=self.service_name,
            filter_subjects=[subjects.FRAMES_ALL],
            batch=self.settings.batch,
            fetch_timeout=self.settings.fetch_timeout_s,
            ack_wait=self.settings.ack_wait_s,
            sample_freq="100%",
            description=f"camsight {self.service_name}: " + ", ".join(a.name for a in self.analyzers),
        )

    async def run(self) -> None:
        """Consume until :meth:`stop`; the batch in hand is finished and acked."""
        handler = (
            Pipeline([self._prepare, self._analyze_batch, self._publish_batch])
            if self.settings.pipelined
            else self.handle
        )
        self._worker = PullWorker(self.ctx.bus, self.worker_config(), handler)
        await self._worker.run()

    async def run_until(self, stopping: asyncio.Event) -> None:
        """Run until ``stopping`` is set, then drain: a service's whole ``run()``.

        Draining finishes the batches in hand, so it waits for their analyzer calls: a call
        that has not returned after ``stop_timeout_s`` cannot be interrupted, so the host
        stops without it (:attr:`abandoned` names it; its frames are not acknowledged and
        come again to the next consumer) instead of keeping the service from stopping.
        """
        task = asyncio.create_task(self.run(), name=f"{self.service_name}-host")
        waiter = asyncio.create_task(stopping.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            await self.stop()
            await asyncio.wait({task}, timeout=self.settings.stop_timeout_s)
            if not task.done():
                self._give_up(f"within {self.settings.stop_timeout_s:g} s")
        finally:
            waiter.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if not task.cancelled():
            task.result()  # the run's own error, if it failed

    def _give_up(self, waited: str) -> None:
        """Name, in :attr:`abandoned` and the log, each analyzer whose call is still running
        when the host stops without waiting for it any longer."""
        for name, thread in self._threads.items():
            if thread.busy is not None:
                line = f"analyzer {name} did not return from {thread.busy}() {waited}"
                log.error("%s; stopping without it", line)
                self.abandoned.append(line)

    async def stop(self) -> None:
        if self._worker is not None:
            await self._worker.stop()

    async def close(self) -> None:
        """Close every analyzer (idempotent, errors logged) but one still in a call the host
        gave up on, and log the failures counted and not logged yet."""
        for analyzer in self.analyzers:
            thread = self._threads[analyzer.name]
            if thread.stopped:
                continue
            if thread.busy is None:
                try:
                    await thread.call(analyzer.close)
                except Exception as exc:
                    log.error("closing analyzer %s failed: %s", analyzer.name, error_line(exc))
            thread.stop()
        self._errors.flush()

    async def handle(self, msgs: Sequence[Msg]) -> list[BaseException | None]:
        """Analyse one fetched batch and publish every result; one outcome per message."""
        return await self._publish_batch(await self._analyze_batch(await self._prepare(msgs)))

    async def _prepare(self, msgs: Sequence[Msg]) -> _Batch:
        """Stage 1: parse the frames and decode their pictures."""
        started = time.perf_counter()
        batch = _Batch(msgs, [None] * len(msgs), [])
        for i, msg in enumerate(msgs):
            try:
                batch.items.append(self._parse(msg))
            except MalformedMessageError as exc:
                batch.outcomes[i] = exc
        self.stats.batches += 1
        self.stats.frames += sum(1 for item in batch.items if not item.frame.end_of_stream)
        if batch.items:
            _update_lag(self.service_name, msgs[-1])
            await self._decode(batch.items)
        self.stats.handle_s += time.perf_counter() - started
        return batch

    async def _analyze_batch(self, batch: _Batch) -> _Batch:
        """Stage 2: every analyzer on the frames meant for it (and the postprocess)."""
        started = time.perf_counter()
        if batch.items:
            batch.results = await self._analyze_all(batch.items)
        self.stats.handle_s += time.perf_counter() - started
        return batch

    async def _publish_batch(self, batch: _Batch) -> list[BaseException | None]:
        """Stage 3: publish every result; a message whose result was not published fails."""
        started = time.perf_counter()
        failed = await self._publish(batch.results) if batch.results else {}
        for i, msg in enumerate(batch.msgs):
            if id(msg) in failed:
                batch.outcomes[i] = failed[id(msg)]
        self.stats.handle_s += time.perf_counter() - started
        return batch.outcomes

    def _parse(self, msg: Msg) -> _Item:
        frame = frame_pb2.Frame()
        try:
            frame.ParseFromString(msg.data)
        except DecodeError as exc:
            raise MalformedMessageError(f"cannot parse Frame: {exc}") from None
        if not frame.camera_id:
            raise MalformedMessageError("Frame without camera_id")
        try:
            subject = subjects.frames(frame.camera_id)
        except ValueError as exc:
            raise MalformedMessageError(f"Frame camera_id: {exc}") from None
        if msg.subject and msg.subject != subject:
            # Results are published under the frame's camera id: a mismatch would misroute them.
            raise MalformedMessageError(
                f"Frame for camera {frame.camera_id[:64]!r} published on {msg.subject!r}"
            )
        info = FrameInfo(
            camera_id=frame.camera_id,
            seq=frame.seq,
            width=frame.width,
            height=frame.height,
            capture_time=frame.capture_time.ToNanoseconds() / 1e9,
            media_time=frame.media_time.ToNanoseconds() / 1e9,
        )
        item = _Item(msg, frame, info, _stream_sequence(msg))
        max_age = self.settings.max_frame_age_s
        if frame.end_of_stream:
            # No picture, never too old: every analyzer answers it, so the end
            # reaches behavior in order after the stream's last result.
            item.skip = SKIP_END_OF_STREAM
        elif max_age and not frame.paced and info.capture_time and time.time() - info.capture_time > max_age:
            item.skip = SKIP_TOO_OLD
        return item

    async def _decode(self, items: list[_Item]) -> None:
        todo = [item for item in items if not item.skip]
        if not todo:
            return
        started = time.perf_counter()
        await asyncio.to_thread(self._decode_pictures, todo)
        elapsed = time.perf_counter() - started
        self.stats.decode_s += elapsed
        DECODE.labels(self.service_name).observe(elapsed)

    def _decode_pictures(self, todo: list[_Item]) -> None:
        """Each picture once per kind wanted: a BGR array, and a tensor per device of tensor analyzers.

        A frame undecodable in one kind is skipped for every analyzer (the bytes are at fault).
        """
        frames = [item.frame for item in todo]
        for device in set(self._devices.values()):
            decoded = (
                decode_frames(frames, self._gpu_decode) if device is None else decode_tensors(frames, device)
            )
            for item, picture in zip(todo, decoded, strict=True):
                if isinstance(picture, str):
                    item.skip = item.skip or picture
                else:
                    item.pictures[device] = picture

    async def _analyze_all(self, items: list[_Item]) -> list[tuple[_Item, analysis_pb2.AnalysisResult]]:
        per_analyzer = await asyncio.gather(*(self._analyze(a, items) for a in self.analyzers))
        return [pair for pairs in per_analyzer for pair in pairs]

    async def _analyze(
        self, analyzer: Analyzer, items: list[_Item]
    ) -> list[tuple[_Item, analysis_pb2.AnalysisResult]]:
        """Results of one analyzer for the frames meant for it, analysed or skipped."""
        mine = [it for it in items if not it.frame.analyzers or analyzer.name in it.frame.analyzers]
        skips: dict[int, str] = {id(it): it.skip for it in mine if it.skip}
        if analyzer.name in self.load_errors:
            skips = {id(it): self.load_errors[analyzer.name] for it in mine}
        live = [it for it in mine if id(it) not in skips]
        detections: dict[int, list[analysis_pb2.Detection]] = {}
        elapsed, batch = 0.0, 0
        if live:
            started = time.perf_counter()
            try:
                if isinstance(analyzer, ClipAnalyzer):
                    batch = await self._run_clips(analyzer, live, detections, skips)
                else:
                    assert isinstance(analyzer, FrameAnalyzer)
                    batch = await self._run_frames(analyzer, live, detections, skips)
            except Exception as exc:
                problem = f"invalid result: {exc}" if isinstance(exc, ResultError) else error_line(exc)
                reason = f"analyzer failed: {problem}"[:500]
                self._errors.error(analyzer.name, "analyze failed", f"{problem} (batch of {len(live)})")
                ERRORS.labels(self.service_name, analyzer.name).inc()
                self.stats.failed += len(live)
                FRAMES.labels(self.service_name, analyzer.name, "failed").inc(len(live))
                skips.update({id(it): reason for it in live})
                detections.clear()
            elapsed = time.perf_counter() - started
            self.stats.inference_s[analyzer.name] = self.stats.inference_s.get(analyzer.name, 0.0) + elapsed
            if batch:
                BATCH.labels(self.service_name, analyzer.name).observe(batch)
                INFERENCE.labels(self.service_name, analyzer.name).observe(elapsed)
        if isinstance(analyzer, ClipAnalyzer) and analyzer.name in self._windows:
            for it in mine:
                if it.frame.end_of_stream:
                    self._windows[analyzer.name].end(it.frame.camera_id)
        out: list[tuple[_Item, analysis_pb2.AnalysisResult]] = []
        analysed: list[analysis_pb2.AnalysisResult] = []
        images: list[Image] = []
        device = self._devices.get(analyzer.name)
        for it in mine:
            result = self._result(analyzer, it, batch, elapsed / max(batch, 1))
            if id(it) in skips:
                result.skipped = True
                result.skip_reason = skips[id(it)]
                if not it.frame.end_of_stream:  # the marker is not a frame
                    self._count_skip(analyzer, skips[id(it)])
            else:
                result.detections.extend(detections.get(id(it), []))
                analysed.append(result)
                images.append(it.pictures[device])
            out.append((it, result))
        if analysed:
            self.stats.analyzed += len(analysed)
            FRAMES.labels(self.service_name, analyzer.name, "analyzed").inc(len(analysed))
            if self.postprocess is not None:
                await self._postprocess(analyzer, images, analysed)
            if analyzer.name in self.explain:
                await self._explain(analyzer, images, analysed)
        return out

    async def _explain(
        self, analyzer: Analyzer, images: list[Image], analysed: list[analysis_pb2.AnalysisResult]
    ) -> None:
        """Attach a saliency map to each result with detections (only those can make a snapshot)."""
        assert isinstance(analyzer, Explainer)
        found = [(image, result) for image, result in zip(images, analysed, strict=True) if result.detections]
        if not found:
            return
        try:
            maps = await self._threads[analyzer.name].call(analyzer.explain, [image for image, _ in found])
            encoded = await asyncio.to_thread(lambda: [encode(m) for m in maps])
        except Exception as exc:
            self._errors.error(analyzer.name, "explain failed", f"{error_line(exc)} (batch of {len(found)})")
            ERRORS.labels(self.service_name, analyzer.name).inc()
            return
        for (_, result), png in zip(found, encoded, strict=True):
            result.saliency.png = png

    async def _postprocess(
        self, analyzer: Analyzer, images: list[Image], analysed: list[analysis_pb2.AnalysisResult]
    ) -> None:
        """Run the service's hook; if it raises, the results go out as skipped with the reason."""
        assert self.postprocess is not None
        try:
            await self.postprocess(analyzer, images, analysed)
        except Exception as exc:
            problem = error_line(exc)
            reason = f"postprocess failed: {problem}"[:500]
            self._errors.error(analyzer.name, "postprocess failed", f"{problem} (batch of {len(analysed)})")
            ERRORS.labels(self.service_name, analyzer.name).inc()
            for result in analysed:
                del result.detections[:]
                result.skipped = True
                result.skip_reason = reason

    def _count_skip(self, analyzer: Analyzer, reason: str) -> None:
        if reason == SKIP_TOO_OLD:
            self.stats.dropped += 1
            FRAMES.labels(self.service_name, analyzer.name, "dropped").inc()
        elif not reason.startswith("analyzer failed"):
            self.stats.skipped += 1
            FRAMES.labels(self.service_name, analyzer.name, "skipped").inc()

    async def _run_frames(
        self,
        analyzer: FrameAnalyzer,
        live: list[_Item],
        detections: dict[int, list[analysis_pb2.Detection]],
        skips: dict[int, str],
    ) -> int:
        device = self._devices[analyzer.name]
        images = [it.pictures[device] for it in live]
        found = await self._threads[analyzer.name].call(analyzer.analyze, images, [it.info for it in live])
        self._accept(analyzer, live, check_results(analyzer.name, found, len(live)), detections, skips)
        return len(live)

    async def _run_clips(
        self,
        analyzer: ClipAnalyzer,
        live: list[_Item],
        detections: dict[int, list[analysis_pb2.Detection]],
        skips: dict[int, str],
    ) -> int:
        clips: list[Clip] = []
        owners: list[_Item] = []
        device = self._devices[analyzer.name]
        for it in live:
            clip = self._window(analyzer).push(it.pictures[device], it.info)
            if clip is None:
                skips[id(it)] = "no window evaluated at this frame"
            else:
                clips.append(clip)
                owners.append(it)
        if not clips:
            return 0
        found = await self._threads[analyzer.name].call(analyzer.analyze_clips, clips)
        self._accept(analyzer, owners, check_results(analyzer.name, found, len(clips)), detections, skips)
        return len(clips)

    def _accept(
        self,
        analyzer: Analyzer,
        owners: list[_Item],
        found: Sequence[Sequence[object]],
        detections: dict[int, list[analysis_pb2.Detection]],
        skips: dict[int, str],
    ) -> None:
        """Keep each frame's detections if every one keeps the contract; else the frame fails.

        A plugin's bad box or score must never become an event (a confidence
        of 1.7, a box outside the picture): the frame's result goes out
        skipped with the reason, counted as failed, and nothing of it is stored.
        """
        bad = 0
        for it, dets in zip(owners, found, strict=True):
            problem = detections_problem(dets)
            if problem is None:
                detections[id(it)] = [to_proto(cast(Detection, d)) for d in dets]
                continue
            bad += 1
            skips[id(it)] = f"analyzer failed: invalid result: {problem}"[:500]
            if bad == 1:
                self._errors.error(analyzer.name, "invalid result", problem)
        if bad:
            self.stats.failed += bad
            FRAMES.labels(self.service_name, analyzer.name, "failed").inc(bad)

    def _window(self, analyzer: ClipAnalyzer) -> SlidingWindows:
        if analyzer.name not in self._windows:
            self._windows[analyzer.name] = SlidingWindows(analyzer.window, analyzer.stride)
        return self._windows[analyzer.name]

    def _result(
        self, analyzer: Analyzer, it: _Item, batch: int, per_frame_s: float
    ) -> analysis_pb2.AnalysisResult:
        result = analysis_pb2.AnalysisResult(
            analyzer=analyzer.name,
            kind=analyzer.kind,
            model_version=analyzer.model_version,
            batch_size=batch,
            producer=self.ctx.settings.instance,
        )
        ref = result.frame
        ref.camera_id = it.frame.camera_id
        ref.seq = it.frame.seq
        ref.capture_time.CopyFrom(it.frame.capture_time)
        ref.media_time.CopyFrom(it.frame.media_time)
        ref.stream = subjects.FRAMES_STREAM
        ref.stream_sequence = it.stream_sequence
        ref.width = it.frame.width
        ref.height = it.frame.height
        ref.end_of_stream = it.frame.end_of_stream
        if it.frame.HasField("media_origin"):
            ref.media_origin.CopyFrom(it.frame.media_origin)
        result.inference_time.FromNanoseconds(int(per_frame_s * 1e9))
        return result

    async def _publish(
        self, results: list[tuple[_Item, analysis_pb2.AnalysisResult]]
    ) -> dict[int, BaseException]:
        """Publish concurrently; return ``id(msg)`` -> error for messages with an unpublished result."""
        started = time.perf_counter()
        outcomes = await asyncio.gather(
            *(
                self.ctx.bus.publish(subjects.detections(r.analyzer, r.frame.camera_id), r)
                for _, r in results
            ),
            return_exceptions=True,
        )
        failed: dict[int, BaseException] = {}
        for (it, _), outcome in zip(results, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                failed.setdefault(id(it.msg), outcome)
            else:
                self.stats.published += 1
        self.stats.publish_s += time.perf_counter() - started
        return failed


def create_analyzers(
    manager: PluginManager, configs: Mapping[str, Mapping[str, Any]], settings: HostSettings
) -> tuple[list[Analyzer], set[str]]:
    """The analyzers of ``configs``, and the names of those configured with ``explain: true``.

    ``explain`` is the host's setting, taken out before the analyzer validates
    its config; an analyzer that has no ``explain()`` is refused with an
    :class:`AnalyzerError` naming it.
    """
    analyzers, explained = [], set()
    for name, config in configs.items():
        own = {k: v for k, v in config.items() if k != EXPLAIN}
        analyzer = manager.create(name, own, settings.device, settings.precision)
        explain = config.get(EXPLAIN, False)
        if not isinstance(explain, bool):
            raise AnalyzerError(f"{name}: explain must be true or false, not {explain!r}")
        if explain:
            if not isinstance(analyzer, Explainer):
                raise AnalyzerError(f"{name}: explain: true, but analyzer {name} cannot explain its results")
            explained.add(name)
        analyzers.append(analyzer)
    return analyzers, explained


def _stream_sequence(msg: Msg) -> int:
    try:
        return int(msg.metadata.sequence.stream)
    except Exception:
        return 0


def _update_lag(service: str, msg: Msg) -> None:
    try:
        LAG.labels(service).set(msg.metadata.num_pending)
    except Exception:
        log.debug("message without JetStream metadata; lag unknown")


def to_proto(d: Detection) -> analysis_pb2.Detection:
    """Convert the plugin-side dataclass into the wire message."""
    # Runs on the event loop for every detection: set only what is there, and the box
    # in place (a nested BoundingBox argument would be built, then copied).
    out = analysis_pb2.Detection(label=d.label, score=d.score)
    box = out.box
    box.x1, box.y1, box.x2, box.y2 = d.box
    if d.embedding:
        out.embedding.extend(d.embedding)
    if d.privacy:
        out.privacy = analysis_pb2.Privacy.ValueType(int(d.privacy))
    if d.crop_jpeg:
        # A plugin's crop of a face it asked to blur leaves the host blurred, whatever the plugin did.
        out.crop_jpeg = blur_jpeg(d.crop_jpeg) if must_blur(out.privacy) else d.crop_jpeg
    if d.attributes:
        out.attributes.update(d.attributes)
    for kp in d.keypoints:
        out.keypoints.add(name=kp.name, point=analysis_pb2.Point(x=kp.x, y=kp.y), score=kp.score)
    return out

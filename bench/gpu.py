"""GPU: batched torch analyzer against the bare model, the service, the whole pipeline. One command.

``.venv/bin/python bench/gpu.py`` is sized to end within 5 minutes on a GPU
machine (64 frames x 4 paths x 3 batch sizes x 2 precisions, then 1,024
frames through the service and 1,000 1080p frames through the whole pipeline
per precision); on a
CPU-only machine it runs small sizes so the script keeps working (the
figures that matter come from a GPU).
Random weights everywhere: speed only, the detections are noise. On the
CPU, torch is limited to one thread so that consecutive modes compare on a
small shared machine.

1. Model vs analyzer, per batch size (1, 8, 32 on a GPU; 1, 4 on the CPU), at
   fp32 and, on a GPU, fp16, on 640x272 frames of bikes.mp4:
   ``bare_model``: the torchvision detector built directly (from the same
   seed as the analyzer's, so with the same random weights)
   (fasterrcnn_mobilenet_v3_large_fpn on a GPU, ssdlite320_mobilenet_v3_large
   on the CPU), fed tensors already on the device: the ceiling;
   ``bare_loop``: the same model fed the BGR numpy frames converted the
   obvious way (what a script would do);
   ``analyzer``: camsight's ``torchvision_detector`` plugin on the same numpy
   frames (conversion, inference, post-processing into Detections);
   ``analyzer_tensors``: the plugin fed what the host hands it (decision
   0076): RGB uint8 tensors already on the device.
   Ratios ``analyzer / bare_model`` and ``analyzer / bare_loop``.
2. Service: the detector service (analyzer host, batch = the largest batch
   size, nvJPEG decode on a GPU) consumes the frames as JPEG from FRAMES on a
   real nats-server; frames/s in the steady state (from the first batch's
   results to the last), and ``cameras_at_5fps`` = that rate / 5, rounded
   down: how many 5-fps cameras one device sustains with this model (with
   every frame analysed). ``first_results_s`` and ``overall_fps`` show the
   start (the model's first CUDA kernels, nvJPEG's start).
   ``service_vs_analyzer``: the service's frames/s over ``analyzer_tensors``
   at the same batch (the acceptance figure: >= 0.9 at batch 32 on a GPU).
3. Pipeline (``gpu_pipeline.py``): the whole pipeline at 1080p, decoded by
   NVDEC, with the GPU's utilisation sampled; cameras per device at 5 and 25 fps.

Run: ``.venv/bin/python bench/gpu.py [--smoke]``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from camsight.analyzers import FrameAnalyzer, FrameInfo, Image, resolve_device
from camsight.analyzers.manager import instantiate
from camsight.analyzers.pictures import decode_frame, image_to_tensor
from camsight.bus import connect, subjects
from camsight.config import NatsSettings, Settings, StreamSettings
from camsight.detector.service import DetectorService
from camsight.natsserver import EmbeddedNats
from camsight.runtime import ServiceContext
from camsight.v1 import frame_pb2
from camsight_torch.detection import TorchvisionDetector
from detector import bikes_frames, same_random_weights
from gpu_analyzers import rate, yolo
from gpu_pipeline import FULL_HD, pipeline_on_device
from gpu_yolo import analyzer_config as yolo_config
from gpu_yolo import yolo_model


def sizes(gpu: bool, smoke: bool) -> dict[str, Any]:
    if gpu:
        return {
            "model": "fasterrcnn_mobilenet_v3_large_fpn",
            "batches": (1, 8, 32),
            "frames": 64,
            "repeat": 3,
            "service_frames": 96 if smoke else 1024,
        }
    return {
        "model": "ssdlite320_mobilenet_v3_large",
        "batches": (1, 4),
        "frames": 4 if smoke else 16,
        "repeat": 1,
        "service_frames": 8 if smoke else 32,
    }


def bare_model(name: str, device: str, precision: str) -> Any:
    """The same architecture, built straight from torchvision (random weights)."""
    from torchvision.models import detection

    model = getattr(detection, name)(weights=None, weights_backbone=None).eval().to(device)
    return model.half() if precision == "fp16" else model


def model_vs_analyzer(
    images: Sequence[Image], device: str, precision: str, size: dict[str, Any]
) -> dict[str, Any]:
    import torch

    dtype = torch.float16 if precision == "fp16" else torch.float32
    same_random_weights()  # the bare model and the analyzer: the same proposals and NMS work per frame
    model = bare_model(size["model"], device, precision)
    resident = [
        torch.from_numpy(im[:, :, ::-1].copy()).permute(2, 0, 1).to(device, dtype) / 255 for im in images
    ]
    handed = [image_to_tensor(im, device) for im in images]  # what the host hands a tensor analyzer
    config = {"model": size["model"], "random_weights": True, "min_score": 0.3, "precision": precision}
    analyzer = instantiate(TorchvisionDetector, config, device=device)
    same_random_weights()
    analyzer.load()
    assert isinstance(analyzer, FrameAnalyzer)
    infos = [FrameInfo("gpu", i + 1, im.shape[1], im.shape[0]) for i, im in enumerate(images)]
    pairs = list(zip(images, infos, resident, handed, strict=True))

    def synced(call: Callable[[Sequence[Any]], object]) -> Callable[[Sequence[Any]], object]:
        def inner(chunk: Sequence[Any]) -> object:
            out = call(chunk)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            return out

        return inner

    def on_device(chunk: Sequence[Any]) -> object:
        with torch.inference_mode():
            return model([t for _, _, t, _ in chunk])

    def from_numpy(chunk: Sequence[Any]) -> object:
        with torch.inference_mode():
            tensors = [
                torch.from_numpy(im[:, :, ::-1].copy()).permute(2, 0, 1).to(device, dtype) / 255
                for im, _, _, _ in chunk
            ]
            return model(tensors)

    def plugin(chunk: Sequence[Any]) -> object:
        return analyzer.analyze([im for im, _, _, _ in chunk], [info for _, info, _, _ in chunk])

    def plugin_on_tensors(chunk: Sequence[Any]) -> object:
        return analyzer.analyze([t for _, _, _, t in chunk], [info for _, info, _, _ in chunk])

    modes = (
        ("bare_model", on_device),
        ("bare_loop", from_numpy),
        ("analyzer", plugin),
        ("analyzer_tensors", plugin_on_tensors),
    )
    for _, call in modes:  # warm every path at every batch size first: allocator, kernels, thread pools
        for batch in size["batches"]:
            synced(call)(pairs[:batch])
    out: dict[str, Any] = {}
    for batch in size["batches"]:
        figures = {name: rate(pairs, batch, synced(call), size["repeat"]) for name, call in modes}
        out[f"batch_{batch}"] = {
            **{f"{k}_fps": round(v, 2) for k, v in figures.items()},
            "analyzer_vs_bare_model": round(figures["analyzer"] / figures["bare_model"], 3),
            "analyzer_vs_bare_loop": round(figures["analyzer"] / figures["bare_loop"], 3),
            "tensors_vs_numpy": round(figures["analyzer_tensors"] / figures["analyzer"], 3),
        }
    analyzer.close()
    return out


async def service(
    count: int, device: str, precision: str, size: dict[str, Any], store: Path
) -> dict[str, Any]:
    base = bikes_frames(min(count, 250))  # bikes.mp4 has 250 frames: repeat them
    frames = []
    for i in range(count):
        frame = frame_pb2.Frame()
        frame.CopyFrom(base[i % len(base)])
        frame.camera_id, frame.seq = f"gpu{i // 1000}", i + 1  # at most 1000 kept per camera
        frames.append(frame)
    server = EmbeddedNats(store_dir=store / "js")
    server.start()
    try:
        nats = NatsSettings(servers=[server.url])
        streams = StreamSettings(frames_per_camera=1000, frames_max_age_s=3600, frames_max_bytes=2**30)
        bus = await connect(nats, streams, name="bench-gpu")
        await bus.ensure_topology()
        for frame in frames:
            await bus.publish(subjects.frames(frame.camera_id), frame)
        done = asyncio.Event()
        batch = max(size["batches"])
        arrivals: list[float] = []

        async def on_result(_msg: Any) -> None:
            arrivals.append(time.perf_counter())
            if len(arrivals) == len(frames):
                done.set()

        sub = await bus.nc.subscribe(subjects.DETECTIONS_ALL, cb=on_result)
        analyzer = {"model": size["model"], "random_weights": True, "min_score": 0.3}
        section = {
            "analyzers": {"torchvision_detector": analyzer},
            "batch": batch,
            "max_frame_age_s": 0,
            "device": device,
            "precision": precision,
        }
        ctx = ServiceContext(Settings(nats=nats, streams=streams, services={"detector": section}))
        ctx.attach(bus)
        detector = DetectorService(ctx)
        same_random_weights()  # the weights model_vs_analyzer measured, so the ratio compares like with like
        await detector.start()
        started = time.perf_counter()
        task = asyncio.create_task(detector.run())
        await asyncio.wait_for(done.wait(), 600)
        ctx.stopping.set()
        await task
        await detector.close()
        await sub.unsubscribe()
        await bus.close()
        # The steady state: from the first batch's results to the last (the first batch also
        # pays for the model's first CUDA kernels and nvJPEG's start).
        first = min(batch, len(frames) - 1)
        fps = (len(frames) - first) / max(arrivals[-1] - arrivals[first - 1], 1e-9)
        return {
            "frames": len(frames),
            "batch": batch,
            "fps": round(fps, 2),
            "first_results_s": round(arrivals[first - 1] - started, 2),
            "overall_fps": round(len(frames) / (arrivals[-1] - started), 2),
            "cameras_at_5fps": int(fps // 5),
            "mean_batch": round(detector.host.stats.frames / max(detector.host.stats.batches, 1), 2),
        }
    finally:
        server.stop()


def run(smoke: bool = False) -> dict[str, Any]:
    device = resolve_device("auto")
    gpu = device.startswith("cuda")
    size = sizes(gpu, smoke)
    result: dict[str, Any] = {"device": device, "model": size["model"], "smoke": smoke}
    import torch

    if gpu:
        result["gpu"] = torch.cuda.get_device_name(0)
    else:
        torch.set_num_threads(1)  # on a small shared CPU, one thread gives comparable figures
    images = [image for f in bikes_frames(size["frames"]) if not isinstance(image := decode_frame(f), str)]
    with tempfile.TemporaryDirectory() as models:
        detectors = {
            "": {"torchvision_detector": {"model": size["model"], "random_weights": True, "min_score": 0.3}},
            "yolo_": {"yolo_onnx": yolo_config(yolo_model(Path(models)))},
        }
        # Full HD is the figure of the goal; bikes' own 640x272 only where the device's time allows.
        resolutions = {"": FULL_HD, "640x272_": (640, 272)} if gpu else {"": FULL_HD}
        for precision in ("fp32", "fp16") if gpu else ("fp32",):
            models_vs = model_vs_analyzer(images, device, precision, size)
            partial(result, f"model_vs_analyzer_{precision}", models_vs)
            with tempfile.TemporaryDirectory() as tmp:
                served = asyncio.run(service(size["service_frames"], device, precision, size, Path(tmp)))
            alone = models_vs[f"batch_{served['batch']}"]["analyzer_tensors_fps"]
            served["service_vs_analyzer"] = round(served["fps"] / alone, 3)
            partial(result, f"service_{precision}", served)
            yolo_figures = yolo(device, gpu, precision, smoke)  # the analyzer alone, per batch size
            partial(result, f"yolo_{precision}", {k: round(v, 2) for k, v in yolo_figures.items()})
            for name, analyzers in detectors.items():
                for resolution, frame_size in resolutions.items():
                    figures = pipeline_on_device(device, precision, analyzers, smoke, frame_size)
                    partial(result, f"pipeline_{name}{resolution}{precision}", figures)
    return result


def partial(result: dict[str, Any], key: str, figures: dict[str, Any]) -> None:
    """Keep a section's figures, and print them to stderr at once: a device run cut short by
    its time limit still leaves every finished section in its log."""
    result[key] = figures
    print(json.dumps({key: figures}), file=sys.stderr, flush=True)


if __name__ == "__main__":
    print(json.dumps(run(smoke="--smoke" in sys.argv), indent=2))

"""Decoding frames into the pictures analyzers take: BGR numpy arrays, or RGB torch tensors on a device.

An analyzer declares ``inputs = "tensor"`` (see :class:`camsight.analyzers.api.Analyzer`)
to get each picture as a ``3 x H x W`` RGB ``uint8`` tensor on the device it
runs on: the JPEG is decoded there by torchvision (nvJPEG on CUDA, libjpeg on
the CPU), so a GPU analyzer's pictures never make a round trip through host
memory or numpy (decision 0076). Every other analyzer gets BGR ``uint8``
arrays decoded by OpenCV, as before. One module owns both paths, so the host,
the author kit and the benchmarks decode alike.

torch is imported only where a tensor is wanted: OpenCV-only services never load it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from camsight.analyzers.api import Analyzer, Image, Picture
from camsight.analyzers.devices import resolve_device
from camsight.v1 import frame_pb2

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def tensor_device(analyzer: Analyzer) -> str | None:
    """The device an analyzer's pictures are decoded on; None for one that takes numpy arrays."""
    if analyzer.inputs != "tensor":
        return None
    return resolve_device(analyzer.config.device)


def picture_size(picture: Picture) -> tuple[int, int]:
    """``(height, width)`` of a BGR ``H x W x 3`` array or an RGB ``3 x H x W`` tensor."""
    if isinstance(picture, np.ndarray):
        height, width = picture.shape[:2]
    else:
        height, width = picture.shape[-2:]
    return int(height), int(width)


def image_to_tensor(image: Image, device: str) -> torch.Tensor:
    """BGR ``H x W x 3`` array -> RGB ``3 x H x W`` uint8 tensor on ``device`` (what tensor analyzers get).

    On a GPU the channels are reordered there, after the copy, sparing the host a pass over
    the picture; on the CPU numpy reorders them (5x faster than torch's permute and flip).
    """
    import torch

    if torch.device(device).type == "cpu":
        return torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1)))
    return torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1).flip(0).contiguous()


def tensor_to_image(picture: torch.Tensor) -> Image:
    """RGB ``3 x H x W`` uint8 tensor -> BGR ``H x W x 3`` array in host memory (reordered where it lies)."""
    array: np.ndarray = picture.permute(1, 2, 0).flip(-1).contiguous().cpu().numpy()
    return array


def on_device(picture: Picture, device: str) -> torch.Tensor:
    """Either kind of picture as an RGB ``3 x H x W`` uint8 tensor on ``device``.

    The host's tensor already lies there and is returned as it is (no copy);
    an array (``camsight analyze``, a plugin's own tests) is converted and moved.
    """
    return image_to_tensor(picture, device) if isinstance(picture, np.ndarray) else picture.to(device)


def decode_frames(frames: Sequence[frame_pb2.Frame], gpu: bool = False) -> list[Image | str]:
    """Decode frames to BGR arrays; an undecodable frame gives a string saying why.

    ``gpu``: decode the JPEGs of the batch in one nvJPEG call through
    torchvision, then copy to host memory (it spares the CPU cores at high
    resolutions and camera counts); falls back to OpenCV per frame.
    """
    out: list[Image | str | None] = [None] * len(frames)
    if gpu:
        jpegs = [i for i, f in enumerate(frames) if f.encoding == frame_pb2.IMAGE_ENCODING_JPEG]
        for i, image in zip(jpegs, decode_jpegs_gpu([frames[i].data for i in jpegs]), strict=True):
            out[i] = image
    return [decode_frame(f) if done is None else done for f, done in zip(frames, out, strict=True)]


def decode_frame(frame: frame_pb2.Frame) -> Image | str:
    """Decode one frame with OpenCV (JPEG, PNG) or reshape raw BGR bytes."""
    if frame.encoding == frame_pb2.IMAGE_ENCODING_RAW_BGR:
        expected = frame.width * frame.height * 3
        if len(frame.data) != expected:
            return f"cannot decode image: raw BGR of {len(frame.data)} bytes, expected {expected}"
        return np.frombuffer(frame.data, np.uint8).reshape(frame.height, frame.width, 3)
    if not frame.data:  # cv2.imdecode asserts on an empty buffer instead of returning None
        return "cannot decode image: the frame holds no image data"
    image = cv2.imdecode(np.frombuffer(frame.data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return f"cannot decode image: {len(frame.data)} bytes are not a valid JPEG/PNG"
    return np.asarray(image, dtype=np.uint8)


def decode_jpegs_gpu(blobs: list[bytes]) -> list[Image | None]:
    """Batch-decode JPEGs with torchvision on CUDA, copied to host memory; None where it failed."""
    decoded = _decode_jpegs(blobs, "cuda")
    return [None if t is None else tensor_to_image(t) for t in decoded]


def decode_tensors(frames: Sequence[frame_pb2.Frame], device: str) -> list[Any]:
    """Decode frames to RGB ``3 x H x W`` uint8 tensors on ``device``; a string says why one failed.

    JPEGs are decoded by torchvision where the tensor is wanted, as one batch
    (nvJPEG on CUDA); the result is handed on as it lies, never copied to the
    host. A frame torchvision cannot decode (PNG, raw BGR, a JPEG it refuses)
    goes through OpenCV and is moved to ``device``: rare, and correct.
    """
    jpegs = [i for i, f in enumerate(frames) if f.encoding == frame_pb2.IMAGE_ENCODING_JPEG and f.data]
    out: list[Any] = [None] * len(frames)
    for i, tensor in zip(jpegs, _decode_jpegs([frames[i].data for i in jpegs], device), strict=True):
        out[i] = tensor
    for i, frame in enumerate(frames):
        if out[i] is None:
            image = decode_frame(frame)
            out[i] = image if isinstance(image, str) else image_to_tensor(image, device)
    return out


def _decode_jpegs(blobs: list[bytes], device: str) -> list[torch.Tensor | None]:
    """One torchvision call for the batch; if it fails, one call per JPEG; None where that failed."""
    if not blobs:
        return []
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    data = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
    try:
        return list(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
    except Exception as exc:  # a corrupt JPEG in the batch, or nvJPEG unavailable
        log.debug("batch JPEG decode on %s failed (%s); decoding one by one", device, exc)
    out: list[torch.Tensor | None] = []
    for one in data:
        try:
            out.append(decode_jpeg(one, mode=ImageReadMode.RGB, device=device))
        except Exception:
            out.append(None)
    return out

"""JPEG encoding of a camera's pictures: nvJPEG on the GPU, or OpenCV on the CPU (decision 0078).

The decoder's ``encode`` setting (:class:`~camsight.decoder.settings.JpegEncode`)
chooses: ``auto`` encodes on the GPU the pictures NVDEC left there (resized
there too, so only the JPEG's bytes cross to host memory), ``cpu`` copies
them to host memory for OpenCV as before, ``nvjpeg`` encodes every picture on
the GPU. Where the GPU cannot encode (no CUDA on the node, or an encode that
fails), the camera's pictures go to OpenCV from then on, with one warning per
camera: never a lost frame, never a crash. Frames keep the same sizes
(:func:`~camsight.decoder.frames.fit_size`) and media times either way.

torch and torchvision are imported only when a picture is a tensor or
``nvjpeg`` is asked for, so CPU decoder nodes never load them.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

import cv2
import numpy as np

from camsight.analyzers.pictures import image_to_tensor, tensor_to_image
from camsight.cameras import CameraConfig
from camsight.decoder.frames import Encoded, fit_size, resize_and_encode
from camsight.decoder.nvdec import cuda_problem
from camsight.decoder.settings import JpegEncode
from camsight.decoder.sources import Picture

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


class FrameEncoder:
    """Resizes and JPEG-encodes one camera's pictures where its setting and each picture say.

    Called from one thread at a time (the camera's decode thread or its encode stage).
    """

    def __init__(self, camera: CameraConfig, mode: JpegEncode) -> None:
        self.camera = camera
        self.mode = mode
        self._gpu_ok = mode is not JpegEncode.CPU  # False once the GPU is known not to encode here
        self._probed = False

    def batches(self, picture: Picture) -> bool:
        """Whether ``picture`` is worth keeping for one nvJPEG call with the next ones: on the
        GPU, yes; in host memory (OpenCV gains nothing from a batch, a 4K picture is 25 MB), no."""
        return self._gpu_ok and not isinstance(picture, np.ndarray)

    def encode(self, pictures: list[Picture]) -> list[Encoded | None]:
        """Each picture as a JPEG fitted to the camera's maximum size, in order; None for one that
        cannot be encoded. The GPU's share goes to nvJPEG in one call (torchvision batches a list
        of CUDA tensors), the rest to OpenCV one by one."""
        size = (self.camera.max_width, self.camera.max_height, self.camera.jpeg_quality)
        out: list[Encoded | None] = [None] * len(pictures)
        on_gpu = [i for i, picture in enumerate(pictures) if self._for_gpu(picture)]
        if on_gpu:
            try:
                tensors = [gpu_tensor(pictures[i]) for i in on_gpu]
                for i, encoded in zip(on_gpu, encode_tensors(tensors, *size), strict=True):
                    out[i] = encoded
            except (RuntimeError, ValueError) as exc:  # CUDA's and nvJPEG's errors are RuntimeErrors
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                self._fall_back(f"nvJPEG failed ({first})")
                on_gpu = []
        done = set(on_gpu)
        for i, picture in enumerate(pictures):
            if i not in done:
                host = picture if isinstance(picture, np.ndarray) else tensor_to_image(picture)
                with contextlib.suppress(cv2.error):
                    out[i] = resize_and_encode(host, *size)
        return out

    def _for_gpu(self, picture: Picture) -> bool:
        """auto: a picture NVDEC left on the GPU; nvjpeg: every picture, where the GPU encodes."""
        if not isinstance(picture, np.ndarray):
            return self._gpu_ok
        return self.mode is JpegEncode.NVJPEG and self._gpu_ok and self._gpu_here()

    def _gpu_here(self) -> bool:
        """For ``nvjpeg``: probe the node once, before the first picture decoded on the CPU."""
        if not self._probed:
            self._probed = True
            problem = nvjpeg_problem()
            if problem is not None:
                self._fall_back(problem)
        return self._gpu_ok

    def _fall_back(self, reason: str) -> None:
        self._gpu_ok = False
        log.warning("camera %s cannot encode on the GPU: %s; encoding on the CPU", self.camera.id, reason)


def nvjpeg_problem() -> str | None:
    """Why nvJPEG cannot encode on this node (None: it can), in words for a warning."""
    return cuda_problem("torchvision")


def encode_tensors(
    pictures: list[torch.Tensor], max_width: int, max_height: int, quality: int
) -> list[Encoded]:
    """Resize RGB ``3 x H x W`` uint8 tensors to fit and JPEG-encode them where they lie, in one
    call (nvJPEG on CUDA, libjpeg on the CPU); only the JPEGs' bytes come back to host memory.

    Area averaging, as OpenCV's ``INTER_AREA`` on the CPU path, so both paths give the
    same picture within rounding.
    """
    import torch
    from torchvision.io import encode_jpeg

    fitted, sizes = [], []
    for picture in pictures:
        _, src_h, src_w = picture.shape
        width, height = fit_size(src_w, src_h, max_width, max_height)
        if (width, height) != (src_w, src_h):
            scaled = torch.nn.functional.interpolate(picture[None].float(), size=(height, width), mode="area")
            picture = scaled[0].round_().clamp_(0, 255).to(torch.uint8)
        fitted.append(picture.contiguous())
        sizes.append((width, height, src_w, src_h))
    jpegs = encode_jpeg(fitted, quality=quality)
    return [Encoded(jpeg.cpu().numpy().tobytes(), *size) for jpeg, size in zip(jpegs, sizes, strict=True)]


def gpu_tensor(picture: Picture) -> torch.Tensor:
    """A picture as the RGB ``3 x H x W`` tensor nvJPEG encodes: a tensor as it lies, an array
    copied to the GPU."""
    return image_to_tensor(picture, "cuda") if isinstance(picture, np.ndarray) else picture

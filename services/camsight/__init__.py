"""camsight: camera streams and video files in, searchable events out.

The import package holds the runtime (bus, config, service runtime, plugin
host) and one subpackage per service. The wire contract is generated from
proto/ into ``camsight.v1``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("camsight")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]

# syntax=docker/dockerfile:1.7
#
# camsight: one image for every service; the entrypoint is `camsight`, the
# Helm chart runs `camsight serve <service> --config /etc/camsight/config.yaml`.
#
#   docker build -t camsight:0.1.0 .                                   # CPU (PyTorch CPU wheels)
#   docker build -t camsight:0.1.0-cuda --build-arg VARIANT=cuda .     # GPU analyzers
#
# The CUDA variant installs PyTorch's default Linux wheels, which carry the
# CUDA runtime and cuDNN as pip packages (nvidia-*); the node's NVIDIA driver
# is mounted by the NVIDIA container runtime (runtimeClassName: nvidia). No
# CUDA base image is needed, and both variants share every other layer.
# See docs/decisions/0061-one-dockerfile-cpu-and-cuda.md.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG VARIANT=cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/camsight/bin:$PATH
RUN python -m venv /opt/camsight
WORKDIR /src
# Dependencies first (the slow, rarely changing layer): torch from the CPU
# index for the CPU variant, from PyPI (CUDA) for the cuda variant.
COPY pyproject.toml README.md ./
RUN case "$VARIANT" in \
      cpu)  pip install --index-url https://download.pytorch.org/whl/cpu torch==2.14.1 torchvision==0.29.1 ;; \
      cuda) pip install torch==2.14.1 torchvision==0.29.1 ;; \
      *)    echo "VARIANT must be cpu or cuda, not $VARIANT" >&2; exit 1 ;; \
    esac
COPY services ./services
COPY plugins ./plugins
COPY proto ./proto
RUN pip install . \
 && python -m compileall -q /opt/camsight/lib \
 && camsight --help >/dev/null

FROM ${PYTHON_IMAGE} AS runtime
ARG VARIANT=cpu
# OpenCV's wheel links libGL and glib; tini reaps children and forwards SIGTERM.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 camsight \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/camsight --shell /usr/sbin/nologin camsight \
 && mkdir -p /var/lib/camsight /etc/camsight /models \
 && chown 10001:10001 /var/lib/camsight
COPY --from=build /opt/camsight /opt/camsight
# The root filesystem is read-only in the cluster: no bytecode writes, caches
# under /tmp (an emptyDir), data under /var/lib/camsight (a volume).
ENV PATH=/opt/camsight/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    TORCH_HOME=/models/torch \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
LABEL org.opencontainers.image.title="camsight" \
      org.opencontainers.image.description="camsight video analytics (${VARIANT})" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/camsight/camsight"
USER 10001:10001
WORKDIR /var/lib/camsight
EXPOSE 8080 50051
ENTRYPOINT ["/usr/bin/tini", "--", "camsight"]
CMD ["--help"]

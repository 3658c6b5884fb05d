# syntax=docker/dockerfile:1.7
#
# camsight: one Dockerfile, one image per role (build targets), each with only what
# its role imports; the entrypoint is `camsight`, the Helm chart runs
# `camsight serve <service> --config /etc/camsight/config.yaml`.
#
#   docker build --target core  -t camsight:0.1.0-core .     # decoder, behavior, query, controller,
#                                                            # detector with the OpenCV analyzers
#   docker build --target faces -t camsight:0.1.0-faces .    # + the faces plugin (face service, CPU)
#   docker build -t camsight:0.1.0 .                         # analyzers (default): + torch (CPU wheels)
#   docker build -t camsight:0.1.0-cuda --build-arg VARIANT=cuda .   # analyzers on the GPU
#
# The CUDA variant installs PyTorch's default Linux wheels, which carry the
# CUDA runtime and cuDNN as pip packages (nvidia-*); the node's NVIDIA driver
# is mounted by the NVIDIA container runtime (runtimeClassName: nvidia). No
# CUDA base image is needed. See docs/decisions/0061-one-dockerfile-cpu-and-cuda.md
# and, for the targets, docs/decisions/0092-extras-and-images-per-role.md.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: a virtual environment per role ---------------------------------------------
FROM ${PYTHON_IMAGE} AS venv
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/camsight/bin:$PATH
RUN python -m venv /opt/camsight
WORKDIR /src
COPY pyproject.toml README.md ./

FROM venv AS build-core
COPY services ./services
COPY plugins ./plugins
COPY proto ./proto
RUN pip install . \
 && python -m compileall -q /opt/camsight/lib \
 && camsight --help >/dev/null

FROM build-core AS build-faces
RUN pip install ".[faces]" \
 && python -m compileall -q /opt/camsight/lib

FROM venv AS build-analyzers
ARG VARIANT=cpu
# PyTorch first (the slow, rarely changing layer): from the CPU index for the CPU
# variant, from PyPI (CUDA) for the cuda variant.
RUN case "$VARIANT" in \
      cpu)  pip install --index-url https://download.pytorch.org/whl/cpu torch==2.14.1 torchvision==0.29.1 ;; \
      cuda) pip install torch==2.14.1 torchvision==0.29.1 ;; \
      *)    echo "VARIANT must be cpu or cuda, not $VARIANT" >&2; exit 1 ;; \
    esac
COPY services ./services
COPY plugins ./plugins
COPY proto ./proto
RUN pip install ".[torch,faces,nvdec]" \
 && python -m compileall -q /opt/camsight/lib \
 && camsight --help >/dev/null

# -- runtime: what every role's image shares -------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG VARIANT=cpu
# OpenCV's wheel links libGL and glib; tini reaps children and forwards SIGTERM. NVDEC
# (PyNvVideoCodec, decision 0077) carries its own demuxer and needs only the driver.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 camsight \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/camsight --shell /usr/sbin/nologin camsight \
 && mkdir -p /var/lib/camsight /etc/camsight /models \
 && chown 10001:10001 /var/lib/camsight
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
EXPOSE 8080 8081 8082 8083 8084 8085 8086 50051
ENTRYPOINT ["/usr/bin/tini", "--", "camsight"]
CMD ["--help"]

# -- the images, one per role (the last is the default target) -------------------------
FROM runtime AS core
COPY --from=build-core /opt/camsight /opt/camsight

FROM runtime AS faces
COPY --from=build-faces /opt/camsight /opt/camsight

FROM runtime AS analyzers
COPY --from=build-analyzers /opt/camsight /opt/camsight

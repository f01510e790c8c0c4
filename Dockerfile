# The backend image: `hitl serve`, `hitl worker`, `hitl scheduler` (docker-compose.yml runs each).
FROM python:3.11-slim

# The CPU build of torch by default; build with --build-arg TORCH_INDEX=<PyTorch's CUDA index> for GPU workers.
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HITL_HOST=0.0.0.0 HITL_REGISTRY_DIR=/data/registry HITL_DATA_DIR=/data/state

WORKDIR /app
RUN pip install "${TORCH_SPEC}" --extra-index-url "${TORCH_INDEX}"
COPY pyproject.toml README.md ./
COPY backend ./backend
COPY labeling_configs ./labeling_configs
RUN pip install ".[postgres]" && useradd --create-home --uid 10001 hitl && mkdir -p /data && chown hitl /data
USER hitl
EXPOSE 9090
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9090/health', timeout=2)"
CMD ["hitl", "serve", "--workers", "2"]

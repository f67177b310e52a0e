# One image for every service: the uv workspace installed once; compose picks the service.
FROM python:3.11-slim
RUN pip install --no-cache-dir "uv>=0.9"
WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy PATH="/app/.venv/bin:$PATH"
COPY pyproject.toml uv.lock ./
COPY libs libs
COPY services services
RUN uv sync --frozen --no-dev
COPY scripts scripts
EXPOSE 8000

# syntax=docker/dockerfile:1
# One image for every service: one uv workspace and one lock make one virtualenv that holds
# them all, so six images would repeat the same ~99% (Python, FastAPI, SQLAlchemy, aiokafka)
# and could drift apart. Compose and the chart pick the service with working_dir + command;
# docs/deployment.md says more.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# uv from its official image, pinned: the version that writes this repository's uv.lock.
FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /uvx /bin/
# Bytecode compiled at build time (no start-up cost, read-only at run time); copy, not
# hardlink, out of the cache mount; the base image's Python, never a downloaded one.
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=0
WORKDIR /app
# Dependencies first, from the lock and the members' pyproject files only: this layer is
# rebuilt when a dependency changes, not when code does.
COPY pyproject.toml uv.lock ./
COPY libs/contracts/pyproject.toml libs/contracts/
COPY libs/shopkit/pyproject.toml libs/shopkit/
COPY libs/shopdev/pyproject.toml libs/shopdev/
COPY services/wallet/pyproject.toml services/wallet/
COPY services/catalog/pyproject.toml services/catalog/
COPY services/order/pyproject.toml services/order/
COPY services/coupon/pyproject.toml services/coupon/
COPY services/payment-mock/pyproject.toml services/payment-mock/
COPY services/analytics/pyproject.toml services/analytics/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace
# Then the code: the workspace's own packages, installed (not editable) into the same venv.
COPY libs libs
COPY services services
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable
# What the migration jobs need besides the venv: each service's alembic.ini and migrations.
RUN for dir in services/*/; do \
      mkdir -p "/out/$dir" && cp -r "$dir/alembic.ini" "$dir/migrations" "/out/$dir"; \
    done

# The gateway (compose's `gateway`, target `gateway`): every web/<name> built by npm from its
# lock, then nginx with each dist at /usr/share/nginx/html/<name>/ and the compose config.
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY web ./
RUN for dir in */; do \
      npm ci --prefix "$dir" --no-audit --no-fund && npm run build --prefix "$dir" \
      && mkdir -p /out && cp -r "$dir/dist" "/out/${dir%/}" || exit 1; \
    done

FROM nginx:1.27 AS gateway
COPY infra/gateway/nginx.compose.conf /etc/nginx/nginx.conf
COPY --from=web /out/ /usr/share/nginx/html/
# The API documents as `make docs` checked them in: /api/openapi.json, /api/asyncapi/<service>.
COPY docs/generated/openapi.json /usr/share/nginx/html/api/openapi.json
COPY services/wallet/asyncapi.json /usr/share/nginx/html/asyncapi/wallet.json
COPY services/catalog/asyncapi.json /usr/share/nginx/html/asyncapi/catalog.json
COPY services/order/asyncapi.json /usr/share/nginx/html/asyncapi/order.json
COPY services/coupon/asyncapi.json /usr/share/nginx/html/asyncapi/coupon.json
COPY services/payment-mock/asyncapi.json /usr/share/nginx/html/asyncapi/payment.json
COPY services/analytics/asyncapi.json /usr/share/nginx/html/asyncapi/analytics.json

FROM ${PYTHON_IMAGE} AS runtime
# A fixed uid/gid with no shell and no home: what a platform's runAsNonRoot policy expects.
RUN groupadd --system --gid 10001 shop \
    && useradd --system --no-log-init --uid 10001 --gid shop --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin shop
COPY --from=build /app/.venv /app/.venv
COPY --from=build /out/services /app/services
ENV PATH="/app/.venv/bin:$PATH" PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 8000
# The image has no curl: Python asks /ready (non-2xx or no answer raises, so the check fails).
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=2)"]
# The wallet unless told otherwise: compose and the chart give every container its own
# working_dir and command (uvicorn --factory <package>.main:build_app).
WORKDIR /app/services/wallet
CMD ["uvicorn", "--factory", "wallet.main:build_app", "--host", "0.0.0.0", "--port", "8000", \
     "--no-access-log", "--timeout-graceful-shutdown", "5", "--timeout-keep-alive", "65", \
     "--backlog", "4096"]

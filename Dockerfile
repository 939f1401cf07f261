# syntax=docker/dockerfile:1
# oom-responder container image.
#   docker build -t oom-responder:0.1.0 .
# Two stages: `build` turns the project and its pinned dependencies (constraints.txt) into wheels; the final
# stage installs only those wheels, offline, into a slim Python with no compilers, and runs as a non-root user.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# Build tools at fixed versions, so the project's wheel does not depend on whatever is newest on build day.
RUN pip install setuptools==80.9.0 wheel==0.45.1
# Dependencies first: this layer is reused until constraints.txt changes. --only-binary refuses source
# distributions, so nothing is ever compiled, not even in this stage.
COPY constraints.txt ./
RUN pip wheel --wheel-dir /wheels --only-binary=:all: --no-deps --requirement constraints.txt
COPY pyproject.toml README.md ./
COPY responder ./responder
RUN pip wheel --wheel-dir /wheels --no-deps --no-build-isolation .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="oom-responder" \
      org.opencontainers.image.description="Alertmanager webhook receiver that runs guarded emergency mitigations for Kubernetes memory incidents" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
# A numeric uid, so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
RUN groupadd --system --gid 10001 responder \
    && useradd --system --uid 10001 --gid responder --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin responder
# Offline install from the build stage's wheels (bind-mounted, so they never become a layer of this image);
# the constraints make pip fail rather than pick any other version.
COPY constraints.txt /tmp/constraints.txt
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels --constraint /tmp/constraints.txt oom-responder \
    && rm /tmp/constraints.txt
USER 10001:10001
EXPOSE 8080
# For `docker run`; in Kubernetes the chart's liveness and readiness probes take over.
HEALTHCHECK --interval=30s --timeout=3s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["oom-responder"]
CMD ["serve"]

# policyengine: the controller image (`policyengine run`; see docs/install.md).
#
# Stage 1 builds wheels for the package and its dependencies; stage 2 installs them into a clean
# slim image with git and nothing to compile with. Kubernetes probes (/healthz, /readyz) watch
# the process, so the image has no HEALTHCHECK.

ARG PYTHON_IMAGE=docker.io/library/python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY policyengine ./policyengine
# Every dependency ships wheels for this platform; --only-binary fails rather than compile one.
RUN pip wheel --wheel-dir /wheels --only-binary=:all: '.[forges]'

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="policyengine" \
      org.opencontainers.image.description="Git-native release engine for ML models on Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
# git: the engine clones, commits and pushes with it. ca-certificates: HTTPS remotes and forges.
# Not pinned: the base image's Debian release fixes the versions, and its security updates apply.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
# Pinned by construction: --no-index installs only the wheels built in the first stage.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --no-index --find-links=/wheels 'policyengine[forges]' \
 && rm -rf /wheels
# A numeric non-root user (runAsNonRoot can check it); OpenShift may run it as another UID in
# group 0, so the writable places belong to group 0 too. The root filesystem is read-only in the
# cluster: the clone lives in /var/cache/policyengine and scratch files in /tmp (emptyDir volumes).
RUN useradd --uid 10001 --gid 0 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin policyengine \
 && mkdir -p /var/cache/policyengine \
 && chown 10001:0 /var/cache/policyengine \
 && chmod 0775 /var/cache/policyengine
ENV HOME=/tmp \
    POLICYENGINE_CACHE_DIR=/var/cache/policyengine \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001
EXPOSE 8080
ENTRYPOINT ["policyengine"]
CMD ["run"]

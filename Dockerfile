# syntax=docker/dockerfile:1
# The control plane's one image; its commands (bin/container-entrypoint): web, worker QUEUE..., beat, migrate,
# sync-catalog. Build: docker build -t mqcloud . ; manifests: deploy/k8s (docs/operations.md).

# One base for both stages, named once (pin a digest here for reproducible builds).
FROM python:3.11-slim-bookworm AS base

# --- build: the virtualenv and the compiled static files -------------------------------------------------
FROM base AS build
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
WORKDIR /src
RUN python -m venv /opt/venv
# Requirements first: the dependency layer is rebuilt only when they change, not on every code change.
COPY requirements.txt ./
RUN pip install --require-virtualenv -r requirements.txt
COPY . .
# Hashed and compressed static files (WhiteNoise's manifest storage, production profile) into /src/staticfiles;
# deploy/build.env holds placeholders only, so the settings load without any real secret in the build.
RUN set -a && . deploy/build.env && set +a \
    && python manage.py collectstatic --noinput -v 0 \
    && rm deploy/build.env
# Bytecode compiled once here: the running image's filesystem is read-only, so Python could not cache it there.
RUN python -m compileall -q -j 0 /src

# --- runtime: no compiler, no pip cache, no build context ------------------------------------------------
FROM base AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    MQCLOUD_PROFILE=production \
    PORT=8000
RUN groupadd --system --gid 10001 mqcloud \
    && useradd --system --uid 10001 --gid mqcloud --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin mqcloud
COPY --from=build /opt/venv /opt/venv
# Owned by root and not writable by the app user: a compromised process cannot change the code it runs.
COPY --from=build /src /app
WORKDIR /app
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/app/bin/container-entrypoint", "healthcheck"]
ENTRYPOINT ["/app/bin/container-entrypoint"]
CMD ["web"]

# syntax=docker/dockerfile:1
# Stage 1: build a wheel and install it with its dependencies into a virtualenv.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/earful
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY watchers ./watchers
COPY storage ./storage
RUN /opt/earful/bin/pip install .

# Stage 2: only the virtualenv, run as an unprivileged user.
FROM python:3.11-slim
ENV PATH=/opt/earful/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    DATABASE_URL=sqlite:////data/earful.db \
    PORT=3000
RUN useradd --system --uid 10001 --home-dir /data --create-home earful
COPY --from=build /opt/earful /opt/earful
USER earful
WORKDIR /data
VOLUME ["/data"]
EXPOSE 3000
# /healthz: 200 for a healthy leader (scheduler and delivery running, no job stuck) or follower
# (database answering, still trying for the lead); 503 otherwise. The start period covers
# `earful run` migrating the database first (replicas take turns on an advisory lock).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
  CMD python -c "import os,urllib.request;urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"3000\")}/healthz',timeout=4)" || exit 1
CMD ["earful", "run"]

# The airqino-elt image: the `elt` CLI with the forecast and publish extras, running `elt run` hourly.
# No embedded MongoDB (SecantusDB, GPL-2.0) in the image: docker compose runs real mongo:7.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    ELT_PROJECT_DIR=/opt/airqino-elt \
    ELT_TARGET=prod

WORKDIR /opt/airqino-elt

# Dependencies first (cached while only the code changes).
COPY pyproject.toml README.md LICENSE ./
COPY elt ./elt
RUN pip install ".[forecast,publish]" \
    && useradd --system --uid 10001 --home-dir /opt/airqino-elt elt

# The project: config (stations, targets) and the aggregation models; compose mounts config/ over it.
COPY config ./config
COPY aggregations ./aggregations
COPY pipelines ./pipelines
COPY docker/elt/scheduler.sh /usr/local/bin/elt-scheduler
COPY docker/elt/refuse-placeholders.sh /usr/local/bin/elt-refuse-placeholders
RUN mkdir -p target && chown -R elt:elt target \
    && chmod 0755 /usr/local/bin/elt-scheduler /usr/local/bin/elt-refuse-placeholders

USER elt
CMD ["elt-scheduler"]

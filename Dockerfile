# sla-stream worker image.
#
#   docker build -t sla-stream .                            # memory:// store
#   docker build -t sla-stream --build-arg EXTRAS=rocksdb .  # adds the RocksDB store (rocksdict)
#
# The image runs `sla-stream worker` by default; any other command works too:
#   docker run --rm sla-stream contracts validate /contracts
#   docker run --rm -e SLA_STREAM_BOOTSTRAP_SERVERS=kafka:9092 sla-stream simulate --rate 2
# With EXTRAS=rocksdb, select the store at run time: SLA_STREAM_STORE=rocksdb://
# (state then lives under SLA_STREAM_DATA_DIR, the /data volume).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
# Optional extras of the package, comma separated (e.g. "rocksdb"); empty installs none.
ARG EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
WORKDIR /src
# README.md is optional here (pyproject names it as the long description).
COPY pyproject.toml README.md* ./
COPY sla_stream ./sla_stream
RUN /opt/venv/bin/pip install "/src${EXTRAS:+[${EXTRAS}]}" \
    && /opt/venv/bin/sla-stream --help >/dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="sla-stream" \
      org.opencontainers.image.description="Event-driven SLA breach detection on Kafka (Faust worker)" \
      org.opencontainers.image.licenses="Apache-2.0"

ARG APP_UID=10001
RUN groupadd --system --gid "${APP_UID}" sla \
    && useradd --system --uid "${APP_UID}" --gid sla --home-dir /app --no-create-home --shell /usr/sbin/nologin sla \
    && mkdir -p /app /data \
    && chown sla:sla /app /data

COPY --from=build /opt/venv /opt/venv
COPY examples/contracts /contracts

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SLA_STREAM_CONTRACTS_DIR=/contracts \
    SLA_STREAM_DATA_DIR=/data \
    SLA_STREAM_WEB_HOST=0.0.0.0 \
    SLA_STREAM_WEB_PORT=6066

WORKDIR /app
USER sla
# Declared after the chown so a fresh named volume starts owned by the sla user.
VOLUME ["/data"]
# /metrics, /healthz and /readyz
EXPOSE 6066

ENTRYPOINT ["sla-stream"]
CMD ["worker"]

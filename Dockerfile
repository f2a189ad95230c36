# monitor as a container service. Mount your own config/ and rules/, and keep data/ on a volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN pip install --no-cache-dir .

COPY config ./config
COPY rules ./rules
COPY seeds ./seeds

RUN useradd --system --uid 10001 --no-create-home --home-dir /app monitor \
    && mkdir -p /app/data \
    && chown monitor /app/data

USER 10001
VOLUME ["/app/config", "/app/rules", "/app/data"]

# Healthy while the daemon's HTTP server answers /healthz on $MONITOR_HTTP_LISTEN (the bundled
# config's http.listen; default 127.0.0.1:8080). Python, not curl: the image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "monitor.healthcheck"]

# The same command `make run` runs: the daemon on the bundled (or mounted) config.
ENTRYPOINT ["monitor", "--config", "/app/config/monitor.yaml"]
CMD ["run"]

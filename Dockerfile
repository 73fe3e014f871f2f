# One image: SQLite in the /data volume by default, PostgreSQL with TRACKER_DATABASE_URL.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TRACKER_DATA_DIR=/data \
    TRACKER_HOST=0.0.0.0 \
    TRACKER_PORT=8000

WORKDIR /app
COPY pyproject.toml README.md ./
COPY tracker ./tracker
COPY migrations ./migrations
COPY static ./static
RUN pip install --no-cache-dir -e . \
    && useradd --system --uid 10001 --home-dir /app tracker \
    && mkdir -p /data && chown tracker /data

USER tracker
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
ENTRYPOINT ["tracker"]
CMD ["serve"]

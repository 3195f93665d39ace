# ditto-compat as a container image: `docker build -t ditto-compat .`, then
#   docker run -p 8080:8080 -v ditto-data:/app/data ditto-compat                 (SQLite, user ditto/ditto)
#   docker run ditto-compat serve --host 0.0.0.0 --mongo-uri 'mongodb://...'   (MongoDB)
# docker-compose.yml runs it behind nginx with MongoDB.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    DITTO_COMPAT_SEEDS_DIR=/app/seeds \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The package first, so that a change to the seeds or policies does not reinstall the dependencies.
COPY pyproject.toml README.md ./
COPY ditto_compat ./ditto_compat
RUN pip install . && rm -rf build ditto_compat.egg-info

# Example twins and policies, for `ditto-compat seed` and for reference inside the container.
COPY seeds ./seeds
COPY policies ./policies

# An unprivileged user; /app/data is where the embedded SQLite database lives when no MongoDB is configured.
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin ditto \
    && mkdir -p /app/data \
    && chown ditto /app/data
USER ditto
VOLUME ["/app/data"]

EXPOSE 8080

HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=6 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]

ENTRYPOINT ["ditto-compat"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080", "--data-dir", "/app/data"]

# Kamiyo image for the API (`kamiyo serve`) and the background worker (`kamiyo worker`).
# It installs exactly what `make run` installs (`pip install .`) on the Debian base CI uses, plus the
# PostgreSQL client for `kamiyo backup`/`restore`. Containers cannot be built where the tests run:
# keep this file minimal and in step with README "Operations" and docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md LICENSE NOTICE ./
COPY src ./src
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin kamiyo \
    && mkdir -p /app/data \
    && chown kamiyo:kamiyo /app/data

USER kamiyo
ENV KAMIYO_DATA_DIR=/app/data \
    KAMIYO_DATABASE_URL=sqlite:////app/data/kamiyo.db
VOLUME ["/app/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

CMD ["kamiyo", "serve", "--host", "0.0.0.0"]

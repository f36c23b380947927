# cogsync serve in a container: settings by COGSYNC_* environment variables, data in /data.
#   docker build -t cogsync .
#   docker run -p 8080:8080 -v cogsync-data:/data cogsync
# See docs/self-hosting.md (TLS in front, backups, upgrades, metrics).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    COGSYNC_HOST=0.0.0.0 \
    COGSYNC_PORT=8080 \
    COGSYNC_DATA=/data \
    COGSYNC_CONFIG_OUT=/data/cogsync.json \
    COGSYNC_LOG_FORMAT=json

RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin cogsync

WORKDIR /src
COPY pyproject.toml README.md ./
COPY cogsync ./cogsync
RUN pip install --no-cache-dir . \
    && rm -rf /src \
    && mkdir -p /data \
    && chown cogsync:cogsync /data

WORKDIR /data
USER cogsync
VOLUME ["/data"]
EXPOSE 8080

HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/ready' % os.environ.get('COGSYNC_PORT', '8080'), timeout=4)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "cogsync", "serve"]

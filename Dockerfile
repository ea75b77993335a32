# Passaparola as one container: the daemon (and, when enabled, its web app), its SQLite database on /data.
# Build: docker build -t passaparola .   Run: see README "Run it as a container" and docker-compose.yml.
# Stage 1 builds the application as a wheel (with the sentiment models it ships); stage 2 installs only that.
FROM python:3.11.14-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY listener ./listener
COPY rules ./rules
COPY storage ./storage
COPY notifiers ./notifiers
COPY passaparola ./passaparola
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title="passaparola" \
      org.opencontainers.image.description="Social listening and advocate tracking" \
      org.opencontainers.image.licenses="MIT"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TZ=UTC \
    PASSAPAROLA_STORAGE__PATH=/data/passaparola.db \
    PASSAPAROLA_WEB__HOST=0.0.0.0 \
    PASSAPAROLA_WEB__PORT=8080
RUN groupadd --system --gid 10001 passaparola \
    && useradd --system --uid 10001 --gid passaparola --home-dir /nonexistent --shell /usr/sbin/nologin passaparola \
    && install -d -o 10001 -g 10001 /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["passaparola", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["passaparola"]
CMD ["run"]

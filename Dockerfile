# Passaparola as one container: the daemon, its SQLite database on the /data volume.
# Build: docker build -t passaparola .   Run: see README "Run it as a container".
FROM python:3.11.14-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY listener ./listener
COPY rules ./rules
COPY storage ./storage
COPY notifiers ./notifiers
COPY passaparola ./passaparola
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.14-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TZ=UTC \
    PASSAPAROLA_STORAGE__PATH=/data/passaparola.db
RUN groupadd --system --gid 10001 passaparola \
    && useradd --system --uid 10001 --gid passaparola --home-dir /nonexistent --shell /usr/sbin/nologin passaparola \
    && install -d -o 10001 -g 10001 /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["passaparola", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["passaparola"]
CMD ["run"]

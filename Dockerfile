# The meshline image: the platform against a Kafka cluster you run (`--bootstrap`), without the
# embedded broker (`--no-default-features`, the configuration `.ci/run` builds and tests too).
# Base images are pinned by version; pin them by digest where your registry policy asks for it.
FROM rust:1.95.0-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --no-default-features --bin meshline

FROM debian:12.12-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/meshline --create-home meshline
COPY --from=build /src/target/release/meshline /usr/local/bin/meshline
USER 10001:10001
WORKDIR /var/lib/meshline
# liveness of whichever server the command runs: the registry's port by default
# (MESHLINE_HEALTH_PORT=8080 for `gateway`, 8083 for `snapshotter`)
ENV MESHLINE_HEALTH_PORT=8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${MESHLINE_HEALTH_PORT} && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["meshline"]

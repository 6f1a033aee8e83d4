# Container image of the pusher-relay worker. Why two build paths: `runtime`
# (the default, last stage) compiles from source in the official Rust image,
# for anyone with a container engine and registry access; `prebuilt` packages
# a binary that CI built once (`--build-arg BINARY=path/in/context`), and is
# the target tests/container.rs builds and runs, because the Rust image cannot
# be pulled on this project's machines. Both share `base`, so what is tested
# is the same runtime as what ships.
#
#   docker build -t pusher-relay .
#   docker build --target prebuilt --build-arg BINARY=target/release/pusher-relay -t pusher-relay .
#
# The binary links glibc dynamically: build it on (or for) the same Debian
# release as DEBIAN_RELEASE when using `prebuilt`.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder
WORKDIR /src
# Only what the build reads, so edits to docs or deploy/ keep the cache.
# benches/ and tests/ are declared in Cargo.toml and must exist to parse it.
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY migrations ./migrations
COPY schema ./schema
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin pusher-relay

FROM debian:${DEBIAN_RELEASE}-slim AS base
# ca-certificates: Pusher's API is https. Not pinned: the release's current
# package carries the current roots, and old versions leave the archive.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# A fixed numeric uid, so Kubernetes' runAsNonRoot can check it without
# resolving names. The home directory holds the default SQLite store.
RUN groupadd --system --gid 10001 pusher-relay \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/pusher-relay \
      --no-create-home --shell /usr/sbin/nologin pusher-relay \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/pusher-relay
WORKDIR /var/lib/pusher-relay
# Listen on every interface (the binary's default is loopback only), log as
# JSON for log collectors. Credentials come from the environment at run time.
ENV HTTP_ADDR=0.0.0.0:9464 \
    RELAY_LOG_FORMAT=json
USER 10001:10001
EXPOSE 9464
# SIGTERM drains in-flight work within RELAY_SHUTDOWN_TIMEOUT (default 30 s);
# give the engine's stop timeout more than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["pusher-relay"]
CMD ["run"]

FROM base AS prebuilt
ARG BINARY=target/release/pusher-relay
COPY --chmod=0755 ${BINARY} /usr/local/bin/pusher-relay

FROM base AS runtime
COPY --from=builder /src/target/release/pusher-relay /usr/local/bin/pusher-relay

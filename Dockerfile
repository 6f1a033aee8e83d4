# Container image of the pusher-relay worker: an empty base (scratch) holding
# the stripped binary, the shared libraries it links (found by ldd), the CA
# bundle, and passwd and group entries for uid 10001. No shell, no package
# manager, nothing else: 23 MB (the binary is 19.7 of it), against 104 MB
# on debian:bookworm-slim before.
#
# Why two build paths: `runtime` (the default, last stage) compiles from
# source in the official Rust image, for anyone with a container engine and
# registry access; `prebuilt` packages a binary that CI built once
# (`--build-arg BINARY=path/in/context`), and is the target tests/e2e/container.rs
# builds and runs, because the Rust image cannot be pulled on this project's
# machines. Both gather their files the same way (`files`, then
# scripts/lib/image-libs.sh) and share `base`, so what is tested is the same
# runtime as what ships.
#
#   docker build -t pusher-relay .
#   docker build --target prebuilt --build-arg BINARY=target/release/pusher-relay -t pusher-relay .
#
# The binary links glibc dynamically, and the libraries come from the Debian
# stage: build it on (or for) the same Debian release as DEBIAN_RELEASE when
# using `prebuilt`. It is stripped by Cargo's release profile (strip = true).

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

# Everything the image holds but the binary and its libraries, laid out
# under /rootfs on Debian, which has the tools to make it.
FROM debian:${DEBIAN_RELEASE}-slim AS files
# ca-certificates: Pusher's API is https. Not pinned: the release's current
# package carries the current roots, and old versions leave the archive.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# A fixed numeric uid, so Kubernetes' runAsNonRoot can check it without
# resolving names; the entries let tools inside and outside the container
# name it. Its home directory holds the default SQLite store.
RUN install -d /rootfs/etc/ssl/certs /rootfs/usr/local/bin \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && echo 'pusher-relay:x:10001:10001:pusher-relay:/var/lib/pusher-relay:/usr/sbin/nologin' > /rootfs/etc/passwd \
 && echo 'pusher-relay:x:10001:' > /rootfs/etc/group \
 && install -d -o 10001 -g 10001 -m 0750 /rootfs/var/lib/pusher-relay
COPY scripts/lib/image-libs.sh /usr/local/bin/image-libs

FROM files AS prebuilt-files
ARG BINARY=target/release/pusher-relay
COPY --chmod=0755 ${BINARY} /rootfs/usr/local/bin/pusher-relay
RUN image-libs /rootfs/usr/local/bin/pusher-relay /rootfs

FROM files AS runtime-files
COPY --from=builder /src/target/release/pusher-relay /rootfs/usr/local/bin/pusher-relay
RUN image-libs /rootfs/usr/local/bin/pusher-relay /rootfs

# What both images are, before their files: the settings, user and command.
FROM scratch AS base
# Listen on every interface (the binary's default is loopback only), log as
# JSON for log collectors. Credentials come from the environment or _FILE
# variables at run time.
ENV HTTP_ADDR=0.0.0.0:9464 \
    RELAY_LOG_FORMAT=json
WORKDIR /var/lib/pusher-relay
USER 10001:10001
EXPOSE 9464 9465
# SIGTERM drains in-flight work within RELAY_SHUTDOWN_TIMEOUT (default 30 s);
# give the engine's stop timeout more than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/pusher-relay"]
CMD ["run"]

FROM base AS prebuilt
COPY --from=prebuilt-files /rootfs/ /
# Again with its owner: an engine may copy from a stage as root.
COPY --from=prebuilt-files --chown=10001:10001 /rootfs/var/lib/pusher-relay/ /var/lib/pusher-relay/

FROM base AS runtime
COPY --from=runtime-files /rootfs/ /
COPY --from=runtime-files --chown=10001:10001 /rootfs/var/lib/pusher-relay/ /var/lib/pusher-relay/

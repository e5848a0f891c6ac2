# syntax=docker/dockerfile:1
# The Shale node image: `docker build -t shale .` then
# `docker run -p 8080:8080 shale` (a single node on a local object store in the
# data volume), or deploy/compose.yaml for a 3-node cluster on MinIO, or the
# ECS service of infra/terraform. docs/DEPLOY.md explains the choices.

# ---- build -------------------------------------------------------------------
# RUST_VERSION is the channel of rust-toolchain.toml (scripts/check-infra.sh
# fails when they differ). RUSTUP_TOOLCHAIN makes rustup use the image's
# toolchain as is, instead of adding the rustfmt and clippy components that the
# toolchain file asks for (a build does not need them).
ARG RUST_VERSION=1.95.0
FROM rust:${RUST_VERSION}-slim-bookworm AS build
ARG RUST_VERSION
ENV RUSTUP_TOOLCHAIN=${RUST_VERSION} \
    CARGO_INCREMENTAL=0 \
    CARGO_TERM_COLOR=never
WORKDIR /src
# The whole workspace: every member's manifest and targets are needed to load
# it, even to build one package. .dockerignore keeps target/ and the rest out.
COPY . .
# Cache mounts keep the registry and the target dir between builds (BuildKit);
# the binary is copied out of the cache so the next stage can see it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p shale-gateway --bin shale \
    && install -D -m 0755 target/release/shale /out/shale

# ---- run ---------------------------------------------------------------------
# bookworm-slim (same glibc as the build stage) rather than distroless: the
# entrypoint is a shell script (it derives the advertised address on ECS) and
# curl serves the entrypoint and the health checks.
FROM debian:bookworm-slim AS runtime
# Package versions are not pinned (hadolint DL3008): bookworm's archive keeps
# only the current version of each, so a pin breaks the build at the next
# security update; rebuild the image to take those.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 shale \
    && useradd --system --uid 10001 --gid shale --home-dir /var/lib/shale --no-create-home \
       --shell /usr/sbin/nologin shale \
    && mkdir -p /var/lib/shale \
    && chown shale:shale /var/lib/shale \
    && chmod 0750 /var/lib/shale
COPY --from=build /out/shale /usr/local/bin/shale
COPY --chmod=0755 deploy/entrypoint.sh /usr/local/bin/shale-entrypoint

# Listen on every interface in a container (the binary's own default is
# 127.0.0.1). Hot tier, topic metadata and node id live in the data directory;
# without SHALE_OBJECT_STORE the objects go there too (file://DATA/objects).
ENV SHALE_LISTEN=0.0.0.0:8080 \
    SHALE_DATA_DIR=/var/lib/shale
# The data directory is a volume: on ECS the task's ephemeral storage is
# mounted there (the image's owner and mode are copied to it), in compose a
# named volume. Everything else of the file system can be read-only.
VOLUME ["/var/lib/shale"]
WORKDIR /var/lib/shale
USER shale:shale
EXPOSE 8080

# SIGTERM makes the node drain: it hands its queues over to the other nodes
# (within SHALE_DRAIN_TIMEOUT_MS), writes LEFT in its lease and exits 0.
# The entrypoint execs the binary, so the signal reaches it directly.
STOPSIGNAL SIGTERM
# Liveness only (/healthz, on the port of SHALE_LISTEN); /readyz answers 503
# while the node drains, which is what load balancers should look at. ECS
# ignores this and uses the task definition's check (the same command).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["sh", "-c", "curl -fsS -o /dev/null \"http://127.0.0.1:${SHALE_LISTEN##*:}/healthz\""]
ENTRYPOINT ["/usr/local/bin/shale-entrypoint"]
CMD []

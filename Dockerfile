# IS-Messenger: one image, one binary (`ism`) that runs every service.
#   docker buildx build -t is-messenger/ism:0.1.0 .
#   docker run --rm is-messenger/ism:0.1.0 --help
#
# Stages: chef (toolchain + cargo-chef) -> planner (dependency recipe) -> builder (dependencies
# cached in their own layer, then the workspace) -> runtime (distroless, non-root, no shell).

ARG RUST_VERSION=1.95
ARG CARGO_CHEF_VERSION=0.1.77

FROM rust:${RUST_VERSION}-bookworm AS chef
ARG CARGO_CHEF_VERSION
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

# The recipe only changes when a Cargo.toml or Cargo.lock changes.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# sqlx: compile-time checked queries use the committed .sqlx metadata, never a live database.
ENV SQLX_OFFLINE=true \
    CARGO_TERM_COLOR=never
COPY --from=planner /src/recipe.json recipe.json
# The commit `ism --version` and ism_build_info name (.git is not in the context).
ARG ISM_COMMIT=unknown
ENV ISM_COMMIT=${ISM_COMMIT}
# Dependency layer: rebuilt only when the recipe changes.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    cargo chef cook --release -p ism --recipe-path recipe.json
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    cargo build --release --locked -p ism --bin ism \
 && install -D -m 0755 target/release/ism /out/ism \
 && /out/ism --help >/dev/null

# glibc + libgcc only; uid/gid 65532 ("nonroot"); no shell or package manager.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
LABEL org.opencontainers.image.title="ism" \
      org.opencontainers.image.description="IS-Messenger omnichannel business messaging services" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/ism /usr/local/bin/ism
USER 65532:65532
# gRPC, Prometheus metrics, gateway HTTP (webhooks, /healthz, /readyz)
EXPOSE 50051 9100 8080
ENTRYPOINT ["/usr/local/bin/ism"]
CMD ["serve", "all"]

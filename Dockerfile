# syntax=docker/dockerfile:1.7
# The `souk` binary: every service runs from this one image (`souk serve <service>`,
# `souk migrate <service>`). Build from the repository root:
#   docker build -t souk:dev .
# The toolchain rust-toolchain.toml pins (rustup adds its clippy and rustfmt if missing).
FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
ENV CARGO_TERM_COLOR=never SQLX_OFFLINE=true
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p souk --bin souk \
 && install -D -m 0755 target/release/souk /out/souk
# The image's whole filesystem, assembled by the same script scripts/image/oci.py runs.
RUN scripts/image/rootfs.sh /rootfs /out/souk /usr/local/bin/souk

# The binary, its libraries and loader, CA certificates, user nonroot (65532); no shell.
# scripts/image/oci.py reads USER, EXPOSE, ENV, ENTRYPOINT and CMD from this stage.
FROM scratch
COPY --from=build /rootfs /
USER 65532:65532
# 8080: the service's API; 9090: its ops listener (/metrics, detailed /readyz), which the
# operator's pods declare as port `ops` and Prometheus scrapes, never routed from outside.
EXPOSE 8080 9090
ENV SOUK_LISTEN_ADDR=0.0.0.0:8080 SOUK_OPS_ADDR=0.0.0.0:9090
# Password hashing allocates 19 MiB blocks; with glibc's adaptive threshold they end up in arenas
# that keep them (user service: 350 MB after 64 sign-ups). A fixed 1 MiB threshold maps such
# blocks and returns them on free: 17.7 MB after the same burst (BENCHMARKS.md).
ENV MALLOC_MMAP_THRESHOLD_=1048576
ENTRYPOINT ["/usr/local/bin/souk"]
CMD ["serve", "gateway"]

# syntax=docker/dockerfile:1
# Build: docker build -t veilgate .
# Run:   docker run -p 8080:8080 -v $PWD/conf:/etc/veilgate:ro veilgate
FROM rust:1-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake g++ make pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin veilgate

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin veilgate
COPY --from=build /src/target/release/veilgate /usr/local/bin/veilgate
USER veilgate
EXPOSE 8080 9090
# The configuration is mounted from outside; the image carries none.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/veilgate", "--upgrade-sock", "/tmp/veilgate_upgrade.sock"]
CMD ["--config", "/etc/veilgate/veilgate.yaml"]

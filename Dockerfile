# The image for the Argo CD sidecar (deploy/argocd/repo-server-patch.yaml): canaryplan on PATH,
# running as Argo CD's user 999.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
COPY --from=build /src/target/release/canaryplan /usr/local/bin/canaryplan
USER 999
ENTRYPOINT ["canaryplan"]

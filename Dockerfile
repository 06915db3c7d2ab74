# syntax=docker/dockerfile:1
# The operator image: a static (musl) binary on an empty base, running as a non-root user.
#
#   docker build -t opal-operator:0.1.0 .
#
# The chart (charts/opal-operator) runs it with a read-only root filesystem, all capabilities
# dropped and seccomp RuntimeDefault; nothing in the image needs more.

# Alpine's Rust targets musl, which links statically by default: the binary needs no libc.
FROM rust:1.95-alpine AS build
RUN apk add --no-cache musl-dev ca-certificates
WORKDIR /src
COPY . .
# Cache mounts keep the registry and build outputs between builds; the binary is copied out of
# the cached target directory because a cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin opal-operator \
 && cp target/release/opal-operator /opal-operator

FROM scratch
# Root certificates for Opal, the HR system and the notification channels over HTTPS.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /opal-operator /usr/local/bin/opal-operator
# A numeric user (scratch has no /etc/passwd), so Kubernetes can verify runAsNonRoot.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/opal-operator"]
CMD ["run", "--config", "/etc/opal-operator/config.yaml"]

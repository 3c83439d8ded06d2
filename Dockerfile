# Maxine container image: a static build on a minimal non-root runtime.
#
#   docker build -t maxine .
#   docker run --read-only -p 8000:8000 -p 8080:8080 -v maxine-data:/data maxine
#
# Both base images are build arguments, so the same file builds with local
# stand-ins where no registry can be reached (deploy/container_test.go does).
# The runtime image needs nothing but an /etc/passwd entry for uid 65532:
# the binary is static and the CA bundle is copied from the builder.
ARG BUILDER_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
# Modules first: this layer stays cached while only the sources change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=0.1.0
ARG COMMIT=
ARG TARGETOS
ARG TARGETARCH
# The same stamp as `make build`; GOOS/GOARCH follow the target platform
# of a multi-arch build (buildx), or the builder's own when unset.
RUN GOOS="${TARGETOS:-$(go env GOOS)}" GOARCH="${TARGETARCH:-$(go env GOARCH)}" \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/rootfs/usr/local/bin/maxine ./cmd/maxine \
 && mkdir -p /out/rootfs/etc/ssl/certs /out/data \
 && cp /etc/ssl/certs/ca-certificates.crt /out/rootfs/etc/ssl/certs/ \
 && chmod 0700 /out/data

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="maxine" \
      org.opencontainers.image.description="Service registry, discovery service and reverse-proxy gateway" \
      org.opencontainers.image.source="https://github.com/maxine-io/maxine" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/rootfs/ /
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV MAXINE_DATA_DIR=/data
# /data is owned by 65532 in the image, so a fresh named volume mounted
# there starts writable by the non-root user.
VOLUME ["/data"]
WORKDIR /data
EXPOSE 8000 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/maxine", "health"]
ENTRYPOINT ["/usr/local/bin/maxine"]

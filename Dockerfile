# adhocd's container image: static binaries on distroless, run as 65532:65532.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) -t adhocd/adhocd .
#   docker run -p 5222:5222 -v adhocd-data:/data adhocd/adhocd
#
# docs/kubernetes.md ("The container image") describes it; image/image_test.go
# builds the final stage's tree from this file without a container engine
# and runs it as the image would. The base images are named by full tags;
# pin them by digest for reproducible builds (same section).
ARG GO_IMAGE=golang:1.26.8-bookworm
ARG BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The version adhocd reports (XEP-0092, status, the log): the build context
# has no .git, so it comes from here.
ARG VERSION="(devel)"
# Static binaries, the third-party notices (the build fails if a dependency's
# licence is not accepted), and the data folder the volume starts from.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X github.com/adhocd/adhocd/buildinfo.version=${VERSION}" -o /out/adhocd ./cmd/adhocd \
 && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X github.com/adhocd/adhocd/buildinfo.version=${VERSION}" -o /out/adhocctl ./cmd/adhocctl \
 && CGO_ENABLED=0 go run ./image/notices -o /out/third-party ./cmd/adhocd ./cmd/adhocctl \
 && mkdir -p /out/data

FROM ${BASE_IMAGE}
ARG VERSION="(devel)"
ARG REVISION=""
LABEL org.opencontainers.image.title="adhocd" \
      org.opencontainers.image.description="An XMPP server with XEP-0050 ad-hoc commands at its heart" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/adhocd/adhocd" \
      org.opencontainers.image.documentation="https://github.com/adhocd/adhocd/blob/main/docs/kubernetes.md"
COPY --from=build /out/adhocd /out/adhocctl /usr/local/bin/
COPY image/config.yaml /etc/adhocd/config.yaml
COPY LICENSE NOTICE /usr/share/doc/adhocd/
COPY --from=build /out/third-party /usr/share/doc/adhocd/third-party
# The store (storage.path in image/config.yaml), writable by the image's user;
# a new named volume starts as a copy of it, ownership included.
COPY --from=build --chown=65532:65532 /out/data /data
VOLUME ["/data"]
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 65532:65532
# `docker exec CONTAINER adhocd user add JID` and the health check find
# config.yaml here without --config.
WORKDIR /etc/adhocd
# c2s.listen, s2s.listen and metrics.listen of image/config.yaml.
EXPOSE 5222 5269 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/adhocd", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/adhocd"]
CMD ["--config", "/etc/adhocd/config.yaml"]

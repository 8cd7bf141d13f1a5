# adhocd container image: a static binary on distroless, as a non-root user.
#   docker build -t adhocd/adhocd:0.1.0 .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/adhocd ./cmd/adhocd \
 && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/adhocctl ./cmd/adhocctl

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/adhocd /out/adhocctl /usr/local/bin/
COPY config.yaml /etc/adhocd/config.yaml
# The data folder is a volume (the Helm chart mounts a PersistentVolumeClaim
# at /data and its own config.yaml at /etc/adhocd/config.yaml).
USER 65532:65532
EXPOSE 5222 9090
ENTRYPOINT ["/usr/local/bin/adhocd"]
CMD ["--config", "/etc/adhocd/config.yaml"]

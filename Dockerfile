# Roundtable in a container: a static binary on an empty base, run as a
# non-root user. Build: docker build -t roundtable .
# Run (media needs the UDP and TCP ports, and the host's address in ICE
# candidates: -nat-ip, or host networking):
#   docker run -e ROUNDTABLE_API_SECRET=... -p 8080:8080 -p 7881:7881 \
#     -p 7882:7882/udp -p 3478:3478/udp -p 3478:3478 roundtable -nat-ip 203.0.113.7
# deploy/compose.yml runs it with Prometheus and Grafana.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Static (no cgo), reproducible paths, no debug tables.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/roundtable ./cmd/roundtable
RUN mkdir -p /out/acme

FROM scratch
# CA certificates for https webhooks and TURN/TLS peers.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/roundtable /roundtable
COPY --from=build --chown=65532:65532 /out/acme /acme
# A numeric non-root user: scratch has no /etc/passwd.
USER 65532:65532
EXPOSE 8080/tcp 7881/tcp 7882/udp 3478/udp 3478/tcp
# Listen on every address of the container; give it an API secret
# (ROUNDTABLE_API_SECRET), or -allow-open for a trial.
ENV ROUNDTABLE_LISTEN=0.0.0.0:8080
# With -acme-domain (then listen on 443: -listen 0.0.0.0:443), keep the
# certificates on a volume: -v roundtable-acme:/acme.
ENV ROUNDTABLE_ACME_CACHE_DIR=/acme
ENTRYPOINT ["/roundtable"]

# syntax=docker/dockerfile:1
# The gateway image: built with the project's own setup on Debian bookworm, run as non-root.
#
#   docker build -t respond-gateway .
#   docker run --rm -p 8080:8080 -p 9090:9090 respond-gateway --listen=0.0.0.0:8080 \
#     --admin_listen=0.0.0.0:9090 --respondio_base_url=... --respondio_token_file=...
#
# tools/k8s_check.js checks that the runtime packages below cover every shared library the
# binary needs, and that the user and ports match k8s/.

# ---- build: Debian's Bazel, gRPC, protobuf, ... installed by tools/setup.sh -------------------
FROM debian:bookworm AS build
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      ca-certificates make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Setup first (cached while only sources change).
COPY tools/setup.sh tools/package.json tools/package-lock.json tools/
COPY clients/node/package.json clients/node/package-lock.json clients/node/
RUN bash tools/setup.sh
COPY . .
RUN bazel build //service:gateway \
 && install -D -m 0755 bazel-bin/service/gateway /out/gateway

# ---- runtime: only the shared libraries the binary links ---------------------------------------
FROM debian:bookworm-slim
# RUNTIME_PACKAGES (checked against the binary's NEEDED libraries by tools/k8s_check.js)
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      ca-certificates \
      libabsl20220623 \
      libc-ares2 \
      libcpp-httplib0.11 \
      libcurl4 \
      libgrpc++1.51 \
      libgrpc29 \
      libhiredis0.14 \
      libprometheus-cpp-core1.0 \
      libprotobuf32 \
      libre2-9 \
      libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 gateway \
 && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin gateway
COPY --from=build /out/gateway /usr/local/bin/gateway
USER 65532:65532
# gRPC and the admin listener (/metrics, /healthz, /readyz).
EXPOSE 8080 9090 8443
ENTRYPOINT ["/usr/local/bin/gateway"]
CMD ["--listen=0.0.0.0:8080", "--admin_listen=0.0.0.0:9090"]

#!/usr/bin/env bash
# Installs everything the build and tests need, from Debian's packages and the npm registry.
# Idempotent: does nothing (and needs no network) when all is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  bazel-bootstrap bazel-platforms g++ pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libcurl4-openssl-dev nlohmann-json3-dev libgtest-dev libgmock-dev libhiredis-dev
  libcpp-httplib-dev libssl-dev redis-server python3 python3-grpcio python3-grpc-tools
  nghttp2-client valgrind openssl binutils
  prometheus-cpp-dev prometheus chromium
  protoc-gen-go protoc-gen-go-grpc protobuf-compiler-grpc-java-plugin
  # The machine checks (tools/machine_checks.sh, .bazelrc's --config=clang/asan): clang-14, the
  # sanitizer and libFuzzer runtimes (only recommended by clang-14, so named here), and
  # llvm-symbolizer for readable sanitizer reports.
  clang-14 libclang-rt-14-dev llvm-14
)

# `kubectl kustomize` renders k8s/ in the tests; Debian's kubernetes-client when none is installed.
command -v kubectl >/dev/null 2>&1 || PACKAGES+=(kubernetes-client)

# Node.js may come from elsewhere (e.g. NodeSource, which bundles npm): only install Debian's
# when there is no npm at all.
command -v npm >/dev/null 2>&1 || PACKAGES+=(nodejs npm)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# buf (lint, breaking, curl, generate), ts-proto, kubernetes-models and yaml from the npm
# registry, pinned in tools/package-lock.json.
if [ ! -x tools/node_modules/.bin/buf ] || [ ! -x tools/node_modules/.bin/protoc-gen-ts_proto ] ||
   [ ! -d tools/node_modules/kubernetes-models ] || [ ! -d tools/node_modules/yaml ]; then
  echo "setup: installing tools/package.json"
  # `npm ci` installs exactly the lock (integrity-checked) and never rewrites it, so a fresh
  # setup leaves the checkout clean. The lock lists buf's optional per-platform packages for
  # every platform (npm ci refuses a lock that leaves any out); regenerate it with
  # `npm install --package-lock-only` after changing tools/package.json.
  (cd tools && npm ci --no-audit --no-fund --loglevel=error)
fi
# The Node client example's @grpc/grpc-js and @grpc/proto-loader (clients/node/package-lock.json).
if [ ! -d clients/node/node_modules/@grpc/grpc-js ] || [ ! -d clients/node/node_modules/@grpc/proto-loader ]; then
  echo "setup: installing clients/node/package.json"
  (cd clients/node && npm ci --no-audit --no-fund --loglevel=error)
fi

#!/usr/bin/env bash
# Generates the Python stubs this example uses, with Debian's protoc (3.21: proto3 `optional`
# needs it; grpc_tools bundles protoc 3.5) and Debian's grpc_python_plugin.
#   clients/python/generate.sh [OUT_DIR]      (default clients/python/gen)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$here/gen}
mkdir -p "$out"
# The served protos (with the binding options they import), and google.rpc for error details
# (any googleapis-common-protos package works too).
protoc -I "$repo/proto" -I "$repo/third_party/googleapis" \
  --python_out="$out" --grpc_python_out="$out" \
  --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" \
  $(cd "$repo/proto" && ls gateway/v1/*.proto respondio/v2/*.proto chatwoot/v1/*.proto) \
  google/rpc/status.proto google/rpc/error_details.proto
echo "$out"

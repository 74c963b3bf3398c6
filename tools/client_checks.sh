#!/usr/bin/env bash
# Script-driven checks of what the gateway offers other languages, against a live gateway and
# sandbox on free loopback ports (stopped on exit). Prints "PASSED: name" / "FAILED: name" per
# check; tools/test.sh counts them.
#   - reflection: `buf curl --list-methods` and a call without local protos;
#   - clients/python and clients/node examples (with caller authentication on);
#   - buf generate for Go, Python, Java and TypeScript from proto/buf.gen.yaml;
#   - buf breaking against the previous commit, and that it catches a wire-incompatible change.
# Needs bazel-bin/service/gateway and bazel-bin/sandbox/sandbox (built by `bazel test //...`).
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
buf=$repo/tools/node_modules/.bin/buf
tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

check() {  # check NAME COMMAND...
  local name=$1; shift
  if "$@" >"$tmp/last.log" 2>&1; then
    echo "PASSED: $name"
  else
    echo "FAILED: $name"; sed 's/^/    /' "$tmp/last.log" | tail -40
  fi
}

# Starts a process whose output announces "<what> listening on 127.0.0.1:PORT" and sets
# $started_port. Not to be called in $(...): the PID must reach this shell's `pids` for cleanup.
start() {  # start NAME LOG COMMAND...
  local name=$1 log=$2; shift 2
  "$@" >"$log" 2>&1 &
  pids+=($!)
  started_port=""
  for _ in $(seq 1 100); do
    local port
    port=$(sed -n "s/^$name listening on \(http:\/\/\)\{0,1\}127\.0\.0\.1:\([0-9]*\).*/\2/p" "$log" | head -1)
    if [ -n "$port" ]; then started_port=$port; return 0; fi
    sleep 0.1
  done
  echo "$name did not start:" >&2; cat "$log" >&2
  return 1
}

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Both upstreams speak DIALECT: live (the default of the gateway and the sandbox) or openapi.
dialect=${DIALECT:-live}
# The live respond.io API is under /v2 (https://api.respond.io/v2); the sandbox serves both.
respondio_prefix=""; [ "$dialect" = live ] && respondio_prefix=/v2
sandbox_port=$(free_port)
start sandbox "$tmp/sandbox.log" bazel-bin/sandbox/sandbox --listen=127.0.0.1:$sandbox_port --rate_limits=false \
  --respondio_dialect=$dialect --chatwoot_dialect=$dialect \
  || { echo "FAILED: start the sandbox"; exit 1; }
token=client-example-token-0123456789
cat >"$tmp/callers.json" <<JSON
{"callers": [{"name": "examples", "token": "$token", "allow": ["*"]}]}
JSON
webhook_secret=client-example-webhook-key
printf '%s' "$webhook_secret" >"$tmp/respondio_webhook_secret"
webhook_port=$(free_port)
start gateway "$tmp/gateway.log" bazel-bin/service/gateway --listen=127.0.0.1:0 \
  --respondio_base_url=http://127.0.0.1:$sandbox_port$respondio_prefix --chatwoot_base_url=http://127.0.0.1:$sandbox_port \
  --respondio_dialect=$dialect --chatwoot_dialect=$dialect \
  --callers_file="$tmp/callers.json" --webhook_listen=127.0.0.1:$webhook_port \
  --respondio_webhook_secret_file="$tmp/respondio_webhook_secret" \
  || { echo "FAILED: start the gateway"; exit 1; }
gateway_port=$started_port
gateway=127.0.0.1:$gateway_port

list_methods() {
  "$buf" curl --protocol grpc --http2-prior-knowledge --list-methods "http://$gateway" >"$tmp/methods"
  for m in respondio.v2.ContactService/GetContact chatwoot.v1.GroupService/ListGroupMembers \
           grpc.health.v1.Health/Check; do
    grep -qx "$m" "$tmp/methods" || { echo "missing $m"; cat "$tmp/methods"; return 1; }
  done
  # Every RPC of the route table, no more and no fewer.
  local rpcs
  rpcs=$(bazel-bin/service/gateway --print_routes | wc -l)
  [ "$(grep -c '^respondio\.v2\.\|^chatwoot\.v1\.' "$tmp/methods")" -eq "$rpcs" ] \
    || { echo "expected $rpcs gateway RPCs:"; cat "$tmp/methods"; return 1; }
}
check "reflection: buf curl --list-methods lists every RPC and health" list_methods

call_by_reflection() {
  "$buf" curl --protocol grpc --http2-prior-knowledge -H "authorization: Bearer $token" \
    -d '{"identifier":"id:12345"}' "http://$gateway/respondio.v2.ContactService/GetContact" \
    | grep -q '"firstName": "Ada"'
}
check "reflection: buf curl calls GetContact with schemas from the server" call_by_reflection

python_example() {
  bash clients/python/generate.sh "$tmp/pygen" >/dev/null &&
    GATEWAY_TOKEN=$token PYTHONPATH="$tmp/pygen" /usr/bin/python3 clients/python/example.py "$gateway"
}
check "clients/python example against the live gateway" python_example

python_subscriber() {
  GATEWAY_TOKEN=$token PYTHONPATH="$tmp/pygen" /usr/bin/python3 clients/python/subscriber.py \
    "$gateway" --selftest "127.0.0.1:$webhook_port" "$webhook_secret"
}
check "clients/python subscriber: a signed webhook arrives on the stream as the typed event" python_subscriber
check "clients/node example against the live gateway" env GATEWAY_TOKEN=$token node clients/node/example.js "$gateway"
check "clients/node subscriber: a signed webhook arrives on the stream as the typed event" \
  env GATEWAY_TOKEN=$token node clients/node/subscriber.js "$gateway" --selftest "127.0.0.1:$webhook_port" "$webhook_secret"

unauthenticated_example() {
  ! PYTHONPATH="$tmp/pygen" /usr/bin/python3 clients/python/example.py "$gateway" >"$tmp/unauth.log" 2>&1 &&
    grep -q UNAUTHENTICATED "$tmp/unauth.log"
}
check "clients: without a token the gateway answers UNAUTHENTICATED" unauthenticated_example

generate_all() {
  (cd proto && "$buf" generate -o "$tmp/gen") || return 1
  for f in go/respondio/v2/contact_service.pb.go go/respondio/v2/contact_service_grpc.pb.go \
           python/respondio/v2/contact_service_pb2.py python/respondio/v2/contact_service_pb2_grpc.py \
           java/com/example/respondgateway/respondio/v2/ContactServiceGrpc.java \
           ts/respondio/v2/contact_service.ts; do
    [ -s "$tmp/gen/$f" ] || { echo "missing $f"; find "$tmp/gen" -maxdepth 4; return 1; }
  done
  grep -q "ContactServiceClient" "$tmp/gen/ts/respondio/v2/contact_service.ts"
  # The generated Python imports and carries the same service.
  PYTHONPATH="$tmp/gen/python" /usr/bin/python3 -c \
    'from respondio.v2 import contact_service_pb2_grpc as g; assert hasattr(g, "ContactServiceStub")'
}
check "buf generate: Go, Python, Java and TypeScript clients" generate_all

breaking_vs_previous() {
  if ! git rev-parse -q --verify HEAD~1 >/dev/null; then echo "no previous commit"; return 0; fi
  (cd proto && "$buf" breaking --against "$repo/.git#ref=HEAD~1,subdir=proto")
}
check "buf breaking: proto/ is wire-compatible with the previous commit" breaking_vs_previous

breaking_detects() {
  cp -r proto "$tmp/changed"
  # Renumber a field: wire-incompatible.
  sed -i '0,/string identifier = 1 \[/s//string identifier = 99 [/' "$tmp/changed/respondio/v2/contact_service.proto"
  ! (cd "$tmp/changed" && "$buf" breaking --against "$repo/proto") >"$tmp/breaking.log" 2>&1 &&
    grep -q "identifier" "$tmp/breaking.log"
}
check "buf breaking: a renumbered field fails the check" breaking_detects

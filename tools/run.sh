#!/usr/bin/env bash
# `make run`: the sandbox upstream on 127.0.0.1:8081, the gateway on 127.0.0.1:8080 and its admin
# listener (status page, /metrics) on 127.0.0.1:9090.
set -euo pipefail
cd "$(dirname "$0")/.."
SANDBOX_PORT=${SANDBOX_PORT:-8081}
GATEWAY_PORT=${GATEWAY_PORT:-8080}
ADMIN_PORT=${ADMIN_PORT:-9090}

# Both speak DIALECT: live (the default, what the real services do) or openapi (their documents).
DIALECT=${DIALECT:-live}
bazel-bin/sandbox/sandbox --listen=127.0.0.1:${SANDBOX_PORT} --respondio_dialect=${DIALECT} \
  --chatwoot_dialect=${DIALECT} &
sandbox_pid=$!
bazel-bin/service/gateway --listen=127.0.0.1:${GATEWAY_PORT} --admin_listen=127.0.0.1:${ADMIN_PORT} \
  --respondio_base_url=http://127.0.0.1:${SANDBOX_PORT}$([ "${DIALECT}" = live ] && echo /v2) \
  --chatwoot_base_url=http://127.0.0.1:${SANDBOX_PORT} --respondio_dialect=${DIALECT} \
  --chatwoot_dialect=${DIALECT} "$@" &
gateway_pid=$!
trap 'kill $gateway_pid $sandbox_pid 2>/dev/null; wait 2>/dev/null' EXIT INT TERM
sleep 1

cat <<MSG

The gateway is serving on 127.0.0.1:${GATEWAY_PORT}, in front of the sandbox upstream on
127.0.0.1:${SANDBOX_PORT}. Try, from another terminal:

  tools/node_modules/.bin/buf curl --protocol grpc --http2-prior-knowledge --schema proto \\
    -d '{"identifier":"id:12345"}' \\
    http://127.0.0.1:${GATEWAY_PORT}/respondio.v2.ContactService/GetContact

or with Python:  /usr/bin/python3 tools/call.py 127.0.0.1:${GATEWAY_PORT} \\
    respondio.v2.ContactService/GetContact '{"identifier":"id:12345"}'

and watch the budget on the status page:  http://127.0.0.1:${ADMIN_PORT}/
(Prometheus metrics: http://127.0.0.1:${ADMIN_PORT}/metrics)

Press Ctrl-C to stop.
MSG
wait

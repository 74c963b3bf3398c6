#!/usr/bin/env bash
# `make bench`: a benchmark, not a test. Builds, starts every process on free 127.0.0.1 ports,
# measures, stops everything, and prints a summary (also written to bench/results.txt).
#
#   1. cache-hit path: gateway vs a bare C++ gRPC server returning the same reply bytes
#      (closed loop for the peak, then open loop at half the gateway's peak and at a quarter)
#   2. miss path: gateway with `cache-control: no-cache` vs a direct HTTP GET on the sandbox
#   3. budget: 3 replicas + redis-server + sandbox (rate limits on), 10x overload on one bucket
#   4. coalescing: 3 replicas + redis-server + sandbox (200 ms upstream), 100 identical cold reads
#
# Everything shares the machine's cores (2 here) with the load generator, so every figure is
# read against a baseline measured in the same run. About 1.5 minutes after the build.
#
# Knobs (environment): BENCH_CONCURRENCY (calls in flight in the closed loop, "64"; a list
# like "32,64" runs each), BENCH_CHANNELS (client connections, 2), BENCH_REPS (closed-loop runs
# of each server, alternating, 4), BENCH_DURATION (seconds per closed-loop run, 3),
# BENCH_OPEN_DURATION (seconds per open-loop run, 5), BENCH_MISS_CALLS (2000), BAZEL,
# BENCH_ONLY ("budget": phase 3 alone; "hit": phases 1 and 2; "coalesce": phase 4; the others
# print "no result").
set -euo pipefail
cd "$(dirname "$0")/.."

BAZEL=${BAZEL:-bazel}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gateway-bench.XXXXXX")
PIDS=()

stop() {  # stop PID...: SIGTERM, then SIGKILL after 5 s
  local pid
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
cleanup() {
  if ((${#PIDS[@]})); then stop "${PIDS[@]}"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME READY_TEXT COMMAND...: runs COMMAND in the background (output in $WORK/NAME.log)
# and waits until READY_TEXT appears; sets STARTED_PID and STARTED_PORT (from "listening on").
start() {
  local name=$1 ready=$2
  shift 2
  : >"$WORK/$name.log"
  "$@" >>"$WORK/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 300); do
    if grep -q -- "$ready" "$WORK/$name.log"; then
      STARTED_PID=$pid
      STARTED_PORT=$(grep -m1 -o "listening on [a-z:/]*127.0.0.1:[0-9]*" "$WORK/$name.log" |
        sed 's/.*://' || true)
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "bench: $name exited before it was ready:" >&2
      cat "$WORK/$name.log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "bench: $name was not ready after 30 s:" >&2
  cat "$WORK/$name.log" >&2
  return 1
}

echo "== building" >&2
"$BAZEL" build //service:gateway //sandbox:sandbox //bench:loadgen //bench:bare_server 2>&1 |
  grep -E "^(ERROR|FAILED)|Build completed" >&2 || true
command -v redis-server >/dev/null || { echo "bench: redis-server is missing (make setup)" >&2; exit 1; }
# Private copies: a concurrent `bazel build` in this workspace must not swap a binary mid-run.
for bin in service/gateway sandbox/sandbox bench/loadgen bench/bare_server; do
  cp "bazel-bin/$bin" "$WORK/" || { echo "bench: bazel-bin/$bin was not built" >&2; exit 1; }
done
GATEWAY=$WORK/gateway
SANDBOX=$WORK/sandbox
LOADGEN=$WORK/loadgen
BARE=$WORK/bare_server

# ---- 1 and 2: one gateway in front of a sandbox without rate limits ----
if [[ -z ${BENCH_ONLY:-} || ${BENCH_ONLY:-} == hit ]]; then
echo "== 1. cache-hit path, 2. miss path" >&2
start sandbox "sandbox listening on" "$SANDBOX" --listen=127.0.0.1:0 --rate_limits=false
sandbox_pid=$STARTED_PID
sandbox_url=http://127.0.0.1:$STARTED_PORT
# bench/gateway_bench.json: GetContact's bucket far above anything sent (the miss path measures
# latency, not queueing) and a TTL longer than the run (every hit-path call is a hit).
start gateway " RPCs)" "$GATEWAY" --listen=127.0.0.1:0 --respondio_base_url="$sandbox_url" \
  --config=bench/gateway_bench.json --log_calls=false --shutdown_grace=2s
gateway_pid=$STARTED_PID
gateway_addr=127.0.0.1:$STARTED_PORT
# The bare server returns exactly what the gateway returns for GetContact(id:12345); this first
# call also fills the gateway's cache.
"$LOADGEN" fetch --target="$gateway_addr" --out="$WORK/reply.bin"
start bare "bare server listening on" "$BARE" --listen=127.0.0.1:0 --reply_file="$WORK/reply.bin"
bare_pid=$STARTED_PID
bare_addr=127.0.0.1:$STARTED_PORT

"$LOADGEN" hit --gateway="$gateway_addr" --gateway_pid="$gateway_pid" \
  --bare="$bare_addr" --bare_pid="$bare_pid" --sandbox="$sandbox_url" \
  --concurrency="${BENCH_CONCURRENCY:-64}" --channels="${BENCH_CHANNELS:-2}" \
  --reps="${BENCH_REPS:-4}" --duration="${BENCH_DURATION:-3}s" \
  --open_duration="${BENCH_OPEN_DURATION:-5}s" --open_fractions=0.5,0.25 --out="$WORK/hit.json"

# Sequential: the miss, the direct GET, and (to show where the difference goes) a hit and the
# bare server.
"$LOADGEN" miss --gateway="$gateway_addr" --bare="$bare_addr" --sandbox="$sandbox_url" \
  --calls="${BENCH_MISS_CALLS:-2000}" --out="$WORK/miss.json"
stop "$bare_pid" "$gateway_pid" "$sandbox_pid"
fi

# ---- 3: three replicas sharing one budget through redis, sandbox with respond.io's limits ----
if [[ -z ${BENCH_ONLY:-} || ${BENCH_ONLY:-} == budget ]]; then
echo "== 3. budget: 3 replicas + redis-server + sandbox, 10x overload" >&2
redis_port=
for _ in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 30000))
  if start redis "Ready to accept connections" redis-server --port "$port" --bind 127.0.0.1 \
    --save "" --appendonly no; then
    redis_port=$port
    break
  fi
done
[[ -n $redis_port ]] || { echo "bench: could not start redis-server" >&2; exit 1; }
start sandbox-limited "sandbox listening on" "$SANDBOX" --listen=127.0.0.1:0
sandbox_url=http://127.0.0.1:$STARTED_PORT
replicas=()
for i in 1 2 3; do
  start "replica$i" " RPCs)" "$GATEWAY" --listen=127.0.0.1:0 --respondio_base_url="$sandbox_url" \
    --redis_url="redis://127.0.0.1:$redis_port" --log_calls=false --shutdown_grace=2s
  replicas+=("127.0.0.1:$STARTED_PORT")
done
# Every command Redis runs, to count the limiter's script calls (keys gw:rl:...) per admitted
# call: counted on the wire, so the figure does not depend on the gateway's own counters.
: >"$WORK/monitor.log"
redis-cli -p "$redis_port" monitor >"$WORK/monitor.log" 2>&1 &
monitor_pid=$!
PIDS+=("$monitor_pid")
sleep 0.2
# GetContact's bucket is 10/s in respond.io's guide (and in the sandbox): offer 100/s for 5 s.
# The limiter's script calls of the run are added to its result for the report.
"$LOADGEN" budget --gateways="$(IFS=,; echo "${replicas[*]}")" --sandbox="$sandbox_url" \
  --limit=10 --overload=10 --duration=5s --deadline=1500ms --out="$WORK/budget.raw.json"
sleep 0.5
limiter_commands=$(grep -E '"(EVAL|EVALSHA)" ' "$WORK/monitor.log" | grep -c '"gw:rl:' || true)
python3 - "$WORK/budget.raw.json" "$WORK/budget.json" "$limiter_commands" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
j["limiter_commands"] = int(sys.argv[3])
json.dump(j, open(sys.argv[2], "w"))
PY
stop "${PIDS[@]}"
PIDS=()
fi

# ---- 4: identical cold reads over three replicas sharing one redis-server ----
if [[ -z ${BENCH_ONLY:-} || ${BENCH_ONLY:-} == coalesce ]]; then
echo "== 4. coalescing: 3 replicas + redis-server + sandbox (200 ms upstream), identical cold reads" >&2
redis_port=
for _ in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 30000))
  if start redis-coalesce "Ready to accept connections" redis-server --port "$port" \
    --bind 127.0.0.1 --save "" --appendonly no; then
    redis_port=$port
    break
  fi
done
[[ -n $redis_port ]] || { echo "bench: could not start redis-server" >&2; exit 1; }
start sandbox-coalesce "sandbox listening on" "$SANDBOX" --listen=127.0.0.1:0 --rate_limits=false
sandbox_url=http://127.0.0.1:$STARTED_PORT
replicas=()
for i in 1 2 3; do
  start "coalesce$i" " RPCs)" "$GATEWAY" --listen=127.0.0.1:0 --respondio_base_url="$sandbox_url" \
    --redis_url="redis://127.0.0.1:$redis_port" --log_calls=false --shutdown_grace=2s
  replicas+=("127.0.0.1:$STARTED_PORT")
done
# Every GetContact takes 200 ms upstream, so all the calls are in flight together.
curl -sf -X POST -d '{"fault":"delay","delay_ms":200,"endpoint":"get_contact","count":-1}' \
  "$sandbox_url/__admin/faults" >/dev/null
"$LOADGEN" coalesce --gateways="$(IFS=,; echo "${replicas[*]}")" --sandbox="$sandbox_url" \
  --coalesce_calls=100 --out="$WORK/coalesce.json"
stop "${PIDS[@]}"
PIDS=()
fi

# ---- summary ----
echo >&2
"$LOADGEN" report --hit="$WORK/hit.json" --miss="$WORK/miss.json" --budget="$WORK/budget.json" \
  --coalesce="$WORK/coalesce.json" \
  --commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" --out=bench/results.txt
echo "(also written to bench/results.txt)"

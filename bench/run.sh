#!/usr/bin/env bash
# `make bench`: a benchmark, not a test. Builds, starts every process on free 127.0.0.1 ports,
# measures, stops everything, and prints a summary (also written to bench/results.txt).
#
#   1. cache-hit path: the gateway (default flags, and call log off) vs a bare C++ gRPC server
#      returning the same reply bytes: h2load throughput pinned (servers on core 0, load on core
#      1, alternating reps), instructions per call under callgrind, and the loadgen's closed and
#      open loops
#   2. miss path: gateway with `cache-control: no-cache` vs a direct HTTP GET on the sandbox
#   3. budget: 1 then 3 replicas + redis-server + sandbox (rate limits on), 10x overload on one
#      bucket
#   4. coalescing: 3 replicas + sandbox (200 ms upstream), 100 identical cold reads: without
#      Redis (the baseline), then sharing one redis-server
#
# Everything shares the machine's cores (2 here) with the load generator, so every figure is
# read against a baseline measured in the same run; the summary ends with issue 10's table.
# About 4.5 minutes after the build.
#
# Knobs (environment; bench/README.md): BENCH_H2_REPS (9), BENCH_H2_DURATION (2 s),
# BENCH_H2_CONNECTIONS (2), BENCH_H2_STREAMS (32), BENCH_CALLGRIND (1; 0 skips it),
# BENCH_CALLGRIND_CALLS (2000), BENCH_SERVER_CORE (0), BENCH_LOAD_CORE (1), BENCH_CONCURRENCY
# (loadgen closed loop, "64"; a list like "32,64" runs each), BENCH_CHANNELS (2), BENCH_REPS (2),
# BENCH_DURATION (3 s), BENCH_OPEN_REPS (1), BENCH_OPEN_DURATION (4 s), BENCH_MISS_CALLS (2000),
# BENCH_BUDGET_DURATION (5 s), BAZEL, BENCH_ONLY ("budget": phase 3 alone; "hit": phases 1 and 2;
# "coalesce": phase 4; the others print "no result").
set -euo pipefail
# Bash reads a script as it runs: an edit, checkout or rebase of this file mid-run would
# break it, so it runs from a private copy.
if [[ -z ${BENCH_SCRIPT_COPY:-} ]]; then
  root=$(cd "$(dirname "$0")/.." && pwd)
  copy=$(mktemp "${TMPDIR:-/tmp}/gateway-bench-run.XXXXXX")
  cp "$0" "$copy"
  BENCH_SCRIPT_COPY=$copy BENCH_ROOT=$root exec bash "$copy" "$@"
fi
cd "$BENCH_ROOT"

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
  rm -rf "$WORK" "$BENCH_SCRIPT_COPY"
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
  for _ in $(seq 600); do
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
  echo "bench: $name was not ready after 60 s:" >&2
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

# ---- 1 and 2: gateways in front of a sandbox without rate limits, and the bare server ----
# Pinned for fairness on 2 cores: every server under test on core 0, the load (h2load, the
# loadgen) and the sandbox on core 1. Only one server is loaded at a time.
SERVER_CORE=${BENCH_SERVER_CORE:-0}
LOAD_CORE=${BENCH_LOAD_CORE:-1}
METHOD=/respondio.v2.ContactService/GetContact
# h2load speaks HTTP/2 but not gRPC: the framed request and the headers gRPC needs. It counts
# every HTTP 200 as success (gRPC errors come in trailers), so outcomes are checked separately.
H2_HEADERS=(-H "content-type: application/grpc" -H "te: trailers" -H "x-caller: bench")
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# h2run LABEL PORT PID REP: one pinned closed-loop h2load run; appends a JSON line to
# $WORK/h2load.jsonl (rate over the measured seconds, server cores used, outcome counts).
h2run() {
  local label=$1 port=$2 pid=$3 rep=$4 out c0 c1 t0 t1
  c0=$(cpu_ticks "$pid")
  t0=$(date +%s.%N)
  out=$(taskset -c "$LOAD_CORE" h2load -c "${BENCH_H2_CONNECTIONS:-2}" -m "${BENCH_H2_STREAMS:-32}" \
    -D "${BENCH_H2_DURATION:-2}" --warm-up-time=1 -d "$WORK/request.grpc" "${H2_HEADERS[@]}" \
    "http://127.0.0.1:$port$METHOD" 2>&1) || true
  t1=$(date +%s.%N)
  c1=$(cpu_ticks "$pid")
  python3 - "$label" "$rep" "$c0" "$c1" "$t0" "$t1" "$(getconf CLK_TCK)" "$out" \
    >>"$WORK/h2load.jsonl" <<'PY'
import json, re, sys
label, rep, c0, c1, t0, t1, tck, out = sys.argv[1:]
rate = re.search(r"finished in [0-9.]+\w*, ([0-9.]+) req/s", out)
req = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed", out)
r = float(rate.group(1)) if rate else 0.0
cpu_s = (float(c1) - float(c0)) / float(tck)
wall_s = float(t1) - float(t0)
# CPU per call over the whole run (warm-up included, at about the same rate): the server's own
# cost, which other processes on its core do not inflate the way they cut its throughput.
print(json.dumps({"server": label, "rep": int(rep), "rate": r,
                  "requests": int(req.group(1)) if req else 0,
                  "succeeded": int(req.group(2)) if req else 0,
                  "failed": int(req.group(3)) if req else -1,
                  "server_cores": cpu_s / wall_s,
                  "server_cpu_us_per_call": cpu_s / (r * wall_s) * 1e6 if r > 0 else 0.0}))
PY
  tail -1 "$WORK/h2load.jsonl" | python3 -c 'import json,sys; j=json.load(sys.stdin); print("  h2load %-16s rep %d: %8.0f calls/s, server %.2f cores, %5.1f us CPU per call, %d failed" % (j["server"], j["rep"], j["rate"], j["server_cores"], j["server_cpu_us_per_call"], j["failed"]))' >&2
}

# cgrun LABEL PORT PID [HEADER]: instructions the process (every thread, gRPC included) runs per
# call over 2000 sequential-ish calls (one connection, 8 streams) after 200 warm-up calls, from
# callgrind's counters zeroed and dumped around them; HEADER (e.g. "cache-control: no-cache") is
# added to every call. Appends a JSON line to callgrind.jsonl.
cgrun() {
  local label=$1 port=$2 pid=$3 n=${BENCH_CALLGRIND_CALLS:-2000} out dump
  local url="http://127.0.0.1:$port$METHOD"
  local headers=("${H2_HEADERS[@]}")
  [[ -n ${4:-} ]] && headers+=(-H "$4")
  taskset -c "$LOAD_CORE" h2load -n 200 -c 1 -m 8 -d "$WORK/request.grpc" "${headers[@]}" \
    "$url" >/dev/null 2>&1 || true
  callgrind_control -z "$pid" >/dev/null 2>&1
  out=$(taskset -c "$LOAD_CORE" h2load -n "$n" -c 1 -m 8 -d "$WORK/request.grpc" \
    "${headers[@]}" "$url" 2>&1) || true
  callgrind_control -d "$pid" >/dev/null 2>&1
  # The newest dump of this process (callgrind.NAME.PID.N): a second cgrun on it dumps again.
  dump=$(ls -t "$WORK"/callgrind.*."$pid".[0-9]* 2>/dev/null | head -1)
  python3 - "$label" "$n" "$dump" "$out" >>"$WORK/callgrind.jsonl" <<'PY'
import json, re, sys
label, n, dump, out = sys.argv[1:]
total = 0
for line in open(dump):
    if line.startswith("totals:") or (line.startswith("summary:") and total == 0):
        total = int(line.split()[1])
req = re.search(r"(\d+) succeeded, (\d+) failed", out)
print(json.dumps({"server": label, "calls": int(n), "instructions": total,
                  "per_call": total / int(n), "succeeded": int(req.group(1)) if req else 0}))
PY
  tail -1 "$WORK/callgrind.jsonl" | python3 -c 'import json,sys; j=json.load(sys.stdin); print("  callgrind %-16s %7.0f instructions per call (%d calls, %d succeeded)" % (j["server"], j["per_call"], j["calls"], j["succeeded"]))' >&2
}

if [[ -z ${BENCH_ONLY:-} || ${BENCH_ONLY:-} == hit ]]; then
echo "== 1. cache-hit path, 2. miss path" >&2
command -v h2load >/dev/null || { echo "bench: h2load is missing (nghttp2-client)" >&2; exit 1; }
start sandbox "sandbox listening on" taskset -c "$LOAD_CORE" "$SANDBOX" --listen=127.0.0.1:0 \
  --rate_limits=false
sandbox_pid=$STARTED_PID
sandbox_url=http://127.0.0.1:$STARTED_PORT
# bench/gateway_bench.json: GetContact's bucket far above anything sent (the miss path measures
# latency, not queueing) and a TTL longer than the run (every hit-path call is a hit). One
# gateway with default flags (call log on, to a file), one with the call log off.
start gateway "gateway listening on" taskset -c "$SERVER_CORE" "$GATEWAY" --listen=127.0.0.1:0 \
  --respondio_base_url="$sandbox_url" --config=bench/gateway_bench.json --shutdown_grace=2s
gateway_pid=$STARTED_PID
gateway_addr=127.0.0.1:$STARTED_PORT
start gateway-nolog "gateway listening on" taskset -c "$SERVER_CORE" "$GATEWAY" \
  --listen=127.0.0.1:0 --respondio_base_url="$sandbox_url" --config=bench/gateway_bench.json \
  --log_calls=false --shutdown_grace=2s
nolog_pid=$STARTED_PID
nolog_addr=127.0.0.1:$STARTED_PORT
# The bare server returns exactly what the gateway returns for GetContact(id:12345); these
# first calls also fill the gateways' caches.
"$LOADGEN" fetch --target="$gateway_addr" --out="$WORK/reply.bin" --request_out="$WORK/request.grpc"
"$LOADGEN" fetch --target="$nolog_addr" --out="$WORK/reply-nolog.bin"
start bare "bare server listening on" taskset -c "$SERVER_CORE" "$BARE" --listen=127.0.0.1:0 \
  --reply_file="$WORK/reply.bin"
bare_pid=$STARTED_PID
bare_addr=127.0.0.1:$STARTED_PORT

# 1a. Throughput, h2load pinned, alternating: each rep runs the three servers, in reverse order
# every other rep; the ratios are taken within a rep (gateway run / the bare run of that rep).
: >"$WORK/h2load.jsonl"
for rep in $(seq "${BENCH_H2_REPS:-9}"); do
  if ((rep % 2)); then order=(bare default nolog); else order=(nolog default bare); fi
  for who in "${order[@]}"; do
    case $who in
      bare) h2run bare "${bare_addr##*:}" "$bare_pid" "$rep" ;;
      default) h2run gateway-default "${gateway_addr##*:}" "$gateway_pid" "$rep" ;;
      nolog) h2run gateway-nolog "${nolog_addr##*:}" "$nolog_pid" "$rep" ;;
    esac
  done
done

# 1b. The loadgen's closed and open loops (latency at fixed rates) against the call-log-off
# gateway, the loadgen pinned like h2load.
taskset -c "$LOAD_CORE" "$LOADGEN" hit --gateway="$nolog_addr" --gateway_pid="$nolog_pid" \
  --bare="$bare_addr" --bare_pid="$bare_pid" --sandbox="$sandbox_url" \
  --concurrency="${BENCH_CONCURRENCY:-64}" --channels="${BENCH_CHANNELS:-2}" \
  --reps="${BENCH_REPS:-2}" --duration="${BENCH_DURATION:-3}s" --open_reps="${BENCH_OPEN_REPS:-1}" \
  --open_duration="${BENCH_OPEN_DURATION:-4}s" --open_fractions=0.5,0.25 --out="$WORK/hit.json"

# 2. Sequential: the miss (default flags), the direct GET, and (to show where the difference
# goes) a hit and the bare server.
# The direct GET is also timed from the server's core (reference): the gateway's own upstream
# request goes from there to the sandbox on the load core.
taskset -c "$LOAD_CORE" "$LOADGEN" miss --gateway="$gateway_addr" --bare="$bare_addr" \
  --sandbox="$sandbox_url" --calls="${BENCH_MISS_CALLS:-2000}" --server_core="$SERVER_CORE" \
  --out="$WORK/miss.json"
stop "$bare_pid" "$nolog_pid" "$gateway_pid"
# The gateway's own time for each miss (its call log, flushed at exit: arrival to status), to
# split the miss path's latency into the gRPC transport and what the gateway does.
python3 - "$WORK/gateway.log" "$WORK/miss.json" <<'PY'
import json, sys
us = sorted(json.loads(l)["latency_ms"] * 1000 for l in open(sys.argv[1], errors="replace")
            if l.startswith('{"ts"') and '"cache_hit":false' in l and '"code":"OK"' in l)
miss = json.load(open(sys.argv[2]))
if us:
    miss["gateway_internal"] = {"p50_us": us[len(us) // 2], "p99_us": us[int(len(us) * 0.99)],
                                "mean_us": sum(us) / len(us), "calls": len(us)}
json.dump(miss, open(sys.argv[2], "w"))
PY
# h2load counts HTTP 200s; the default gateway's call log (flushed at exit) has one line per
# call with its gRPC code: every one must be OK, except the streams h2load resets when a timed
# run ends (the gateway then sees no request message: INVALID_ARGUMENT MISSING_REQUEST, or
# CANCELLED), at most its streams in flight per run.
python3 - "$WORK/h2load.jsonl" "$WORK/h2load.json" "$WORK/gateway.log" \
  "$(( ${BENCH_H2_CONNECTIONS:-2} * ${BENCH_H2_STREAMS:-32} ))" <<'PY'
import json, re, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
in_flight = int(sys.argv[4])
codes, reset, other = {}, 0, 0
for line in open(sys.argv[3], errors="replace"):
    if not line.startswith('{"ts"'):
        continue
    m = re.search(r'"code":"([A-Z_]+)"', line)
    code = m.group(1) if m else "?"
    codes[code] = codes.get(code, 0) + 1
    if code == "CANCELLED" or '"reason":"MISSING_REQUEST"' in line:
        reset += 1
    elif code != "OK":
        other += 1
allowed = in_flight * sum(1 for r in runs if r["server"] == "gateway-default")
not_ok = other + max(0, reset - allowed)
json.dump({"runs": runs, "default_gateway_codes": codes, "default_gateway_not_ok": not_ok},
          open(sys.argv[2], "w"))
print("  default gateway's call log: %s (streams reset at the end of timed runs: %d, at most %d;"
      " other failures %d)" % (", ".join("%s %d" % kv for kv in sorted(codes.items())), reset,
                               allowed, other), file=sys.stderr)
PY

# 1c. Instructions per hit under callgrind (the same request, server and load pinned as above):
# the bare server, the gateway with default flags, and with the call log off.
if command -v valgrind >/dev/null && [[ ${BENCH_CALLGRIND:-1} != 0 ]]; then
  : >"$WORK/callgrind.jsonl"
  start cg-bare "bare server listening on" taskset -c "$SERVER_CORE" valgrind --tool=callgrind \
    --callgrind-out-file="$WORK/callgrind.bare.%p" "$BARE" --listen=127.0.0.1:0 \
    --reply_file="$WORK/reply.bin"
  cgrun bare "$STARTED_PORT" "$STARTED_PID"
  stop "$STARTED_PID"
  for who in default nolog; do
    extra=()
    [[ $who == nolog ]] && extra=(--log_calls=false)
    start "cg-$who" "gateway listening on" taskset -c "$SERVER_CORE" valgrind --tool=callgrind \
      --callgrind-out-file="$WORK/callgrind.gateway-$who.%p" "$GATEWAY" --listen=127.0.0.1:0 \
      --respondio_base_url="$sandbox_url" --config=bench/gateway_bench.json --shutdown_grace=2s \
      "${extra[@]}"
    cg_pid=$STARTED_PID
    "$LOADGEN" fetch --target="127.0.0.1:$STARTED_PORT" --out="$WORK/reply-cg.bin" 2>/dev/null
    cgrun "gateway-$who" "$STARTED_PORT" "$cg_pid"
    # The same gateway's misses (every call sent upstream), for the miss path's instructions.
    [[ $who == default ]] && cgrun "gateway-$who-miss" "$STARTED_PORT" "$cg_pid" "cache-control: no-cache"
    stop "$cg_pid"
  done
  python3 - "$WORK/callgrind.jsonl" "$WORK/callgrind.json" <<'PY'
import json, sys
json.dump({"runs": [json.loads(l) for l in open(sys.argv[1]) if l.strip()]}, open(sys.argv[2], "w"))
PY
else
  echo "  callgrind: skipped (valgrind missing or BENCH_CALLGRIND=0)" >&2
fi
stop "$sandbox_pid"
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
redis-cli -p "$redis_port" monitor >>"$WORK/monitor.log" 2>&1 &
monitor_pid=$!
PIDS+=("$monitor_pid")
sleep 0.2
limiter_count() { grep -E '"(EVAL|EVALSHA)" ' "$WORK/monitor.log" | grep -c '"gw:rl:' || true; }
# GetContact's bucket is 10/s in respond.io's guide (and in the sandbox): offer 100/s for 5 s,
# first to one replica alone (the baseline: Redis commands per admission must not grow with
# replicas), then spread over the three. The limiter's script calls of each run are added to
# its result for the report.
budget_run() {  # budget_run NAME GATEWAYS
  local before after
  before=$(limiter_count)
  "$LOADGEN" budget --gateways="$2" --sandbox="$sandbox_url" \
    --limit=10 --overload=10 --duration="${BENCH_BUDGET_DURATION:-5}s" --deadline=1500ms \
    --out="$WORK/$1.raw.json"
  sleep 0.5
  after=$(limiter_count)
  python3 - "$WORK/$1.raw.json" "$WORK/$1.json" "$((after - before))" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
j["limiter_commands"] = int(sys.argv[3])
json.dump(j, open(sys.argv[2], "w"))
PY
}
budget_run budget1 "${replicas[0]}"
sleep 2  # the sandbox's one-second windows and the bucket's schedule empty out
budget_run budget "$(IFS=,; echo "${replicas[*]}")"
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
# Every GetContact takes 200 ms upstream, so all the calls are in flight together.
curl -sf -X POST -d '{"fault":"delay","delay_ms":200,"endpoint":"get_contact","count":-1}' \
  "$sandbox_url/__admin/faults" >/dev/null
# The baseline: three replicas that share no Redis (each coalesces only its own calls).
replicas=()
alone=()
for i in 1 2 3; do
  start "alone$i" " RPCs)" "$GATEWAY" --listen=127.0.0.1:0 --respondio_base_url="$sandbox_url" \
    --log_calls=false --shutdown_grace=2s
  replicas+=("127.0.0.1:$STARTED_PORT")
  alone+=("$STARTED_PID")
done
"$LOADGEN" coalesce --gateways="$(IFS=,; echo "${replicas[*]}")" --sandbox="$sandbox_url" \
  --coalesce_calls=100 --out="$WORK/coalesce_base.json"
stop "${alone[@]}"
replicas=()
for i in 1 2 3; do
  start "coalesce$i" " RPCs)" "$GATEWAY" --listen=127.0.0.1:0 --respondio_base_url="$sandbox_url" \
    --redis_url="redis://127.0.0.1:$redis_port" --log_calls=false --shutdown_grace=2s
  replicas+=("127.0.0.1:$STARTED_PORT")
done
"$LOADGEN" coalesce --gateways="$(IFS=,; echo "${replicas[*]}")" --sandbox="$sandbox_url" \
  --coalesce_calls=100 --out="$WORK/coalesce.json"
stop "${PIDS[@]}"
PIDS=()
fi

# ---- summary ----
echo >&2
"$LOADGEN" report --hit="$WORK/hit.json" --miss="$WORK/miss.json" --budget="$WORK/budget.json" \
  --budget1="$WORK/budget1.json" --coalesce="$WORK/coalesce.json" \
  --coalesce_base="$WORK/coalesce_base.json" --h2load="$WORK/h2load.json" \
  --callgrind="$WORK/callgrind.json" \
  --commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" --out=bench/results.txt
echo "(also written to bench/results.txt)"

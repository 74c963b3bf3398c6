#!/usr/bin/env bash
# The machine checks, run by tools/test.sh (so by `make test` and CI) after `bazel test //...`:
# they move bazel-bin and bazel-testlogs to the sanitizer configuration. Prints one
# "PASSED: name" / "FAILED: name" line per check, and exits non-zero when any failed:
#   - the clang build of the whole tree with thread-safety errors and ASan+UBSan
#     (--config=asan, which includes --config=clang): one line;
#   - each unit test, and a few integration tests, under ASan+UBSan: one line per target;
#   - each libFuzzer target in tests/fuzz, run for FUZZ_SECONDS (default 30) from its seed
#     corpus: one line per fuzzer. A crash leaves its input in $FUZZ_ARTIFACTS (default
#     /tmp/gateway-fuzz); add it to the corpus (tests/fuzz/corpus/NAME/) as a regression case.
# Usage: tools/machine_checks.sh [--no-fuzz]
set -uo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-30}
FUZZ_ARTIFACTS=${FUZZ_ARTIFACTS:-/tmp/gateway-fuzz}
fuzz=1
[ "${1:-}" = "--no-fuzz" ] && fuzz=0

fuzzers=(json_codec decode_reply route page_token validation)
# Integration tests that exercise the gateway binary end to end (the gateway and sandbox they
# start are the ASan+UBSan builds too): both upstreams' RPCs, the call pipeline's cancel,
# shutdown and coalescing paths, and SIGTERM. The others mostly repeat these code paths under
# other configurations and would add their (sanitizer-slowed) time to CI's budget.
integration=(//tests/integration:respondio_test //tests/integration:chatwoot_test
             //tests/integration:pipeline_test //tests/integration:lifecycle_test)

mapfile -t unit < <(bazel query 'tests(//...) except tests(//tests/integration/...)' 2>/dev/null)

failures=0
start=$SECONDS
fuzz_targets=()
for f in "${fuzzers[@]}"; do fuzz_targets+=("//tests/fuzz:${f}_fuzzer"); done
# Bazel's own output is indented: its "FAILED: Build did NOT complete" must not count as a check.
# Every source file of //... is compiled (so the thread-safety errors cover all code), but only
# what runs below is linked: the sanitizer tests link their own binaries (and the gateway and
# sandbox they start) in the next step; the integration tests not run under the sanitizers and
# the bench tools are compiled, not linked.
clang_build() {
  bazel build --config=asan --output_groups=compilation_outputs //... &&
    bazel build --config=asan "${fuzz_targets[@]}"
}
clang_build 2>&1 | sed 's/^/  /'
if [ "${PIPESTATUS[0]}" -eq 0 ]; then
  echo "PASSED: clang build (-Wthread-safety errors, ASan+UBSan) of //..."
else
  echo "FAILED: clang build (-Wthread-safety errors, ASan+UBSan) of //..."
  exit 1
fi
echo "machine_checks: clang build took $((SECONDS - start)) s"

start=$SECONDS
out=$(bazel test --config=asan --test_summary=short "${unit[@]}" "${integration[@]}" 2>&1)
echo "$out" | tail -n 60 | sed 's/^/  /'
for t in "${unit[@]}" "${integration[@]}"; do
  if grep -qE "^${t}[[:space:]]+(\(cached\) )?PASSED" <<<"$out"; then
    echo "PASSED: asan+ubsan ${t}"
  else
    echo "FAILED: asan+ubsan ${t}"; failures=$((failures + 1))
  fi
done
echo "machine_checks: sanitizer tests took $((SECONDS - start)) s"

[ "$fuzz" -eq 1 ] || exit $((failures > 0))
mkdir -p "$FUZZ_ARTIFACTS"
export ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-/usr/lib/llvm-14/bin/llvm-symbolizer}
for f in "${fuzzers[@]}"; do
  start=$SECONDS
  work=$(mktemp -d)
  # New inputs go to $work; the committed seed corpus is only read.
  if bazel-bin/tests/fuzz/${f}_fuzzer -max_total_time="$FUZZ_SECONDS" -timeout=10 \
       -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$FUZZ_ARTIFACTS/${f}-" \
       "$work" "tests/fuzz/corpus/$f" >"$work.log" 2>&1; then
    echo "PASSED: fuzz ${f} for ${FUZZ_SECONDS} s ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$work.log" | grep -o '[0-9]*$') runs)"
  else
    tail -n 40 "$work.log" | sed 's/^/  /'
    echo "FAILED: fuzz ${f} (input kept in $FUZZ_ARTIFACTS/${f}-*)"; failures=$((failures + 1))
  fi
  rm -rf "$work" "$work.log"
  echo "machine_checks: fuzz ${f} took $((SECONDS - start)) s"
done
exit $((failures > 0))

#!/usr/bin/env bash
# Runs every test: `bazel test //...`, the proto lint, the k8s/Dockerfile checks, the client
# checks (tools/k8s_check.js, tools/client_checks.sh) and the machine checks
# (tools/machine_checks.sh: the clang-14 thread-safety build, the ASan+UBSan test runs and the
# bounded libFuzzer runs). Ends with one line "N passed, N failed" counting individual test
# cases (GoogleTest cases from Bazel's XML reports, plus one case per non-Bazel check and one
# per machine check line). MACHINE_CHECKS=0 leaves the machine checks out (a quicker local
# run; CI always runs them).
set -uo pipefail
cd "$(dirname "$0")/.."

extra_passed=0
extra_failed=0
check() {  # check NAME COMMAND...
  local name=$1; shift
  if "$@"; then
    echo "PASSED: $name"; extra_passed=$((extra_passed + 1))
  else
    echo "FAILED: $name"; extra_failed=$((extra_failed + 1))
  fi
}

check "buf lint (STANDARD)" bash -c 'cd proto && ../tools/node_modules/.bin/buf lint'

bazel test //... "$@"
bazel_rc=$?

# Scripts that print one "PASSED: name" / "FAILED: name" line per check; each line counts.
# Their output is shown as it comes (the machine checks run for a long while).
check_many() {  # check_many NAME COMMAND...
  local name=$1; shift
  local log rc p f
  log=$(mktemp)
  "$@" 2>&1 | tee "$log"; rc=${PIPESTATUS[0]}
  p=$(grep -c '^PASSED: ' "$log"); f=$(grep -c '^FAILED: ' "$log")
  rm -f "$log"
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then echo "FAILED: $name (exit $rc)"; f=1; fi
  extra_passed=$((extra_passed + p)); extra_failed=$((extra_failed + f))
}
# k8s/ and the Dockerfile against the binary; clients, reflection and buf breaking against a
# live gateway. Both need the binaries `bazel test //...` built.
check_many "k8s manifests and Dockerfile" node tools/k8s_check.js bazel-bin/service/gateway
check_many "clients, reflection, buf generate and breaking" bash tools/client_checks.sh

mapfile -t targets < <(bazel query 'tests(//...)' 2>/dev/null)
read -r passed failed < <(/usr/bin/python3 tools/count_tests.py bazel-testlogs "${targets[@]}")

# Last: they move bazel-bin and bazel-testlogs to the sanitizer configuration (the reports of
# `bazel test //...` were read just above).
if [ "${MACHINE_CHECKS:-1}" != 0 ]; then
  check_many "machine checks (clang, ASan+UBSan, libFuzzer)" bash tools/machine_checks.sh
fi

passed=$((passed + extra_passed))
failed=$((failed + extra_failed))
if [ "$bazel_rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
  # Bazel failed without a failing test case (build error, crash before XML): count it.
  failed=1
fi
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]

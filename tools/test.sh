#!/usr/bin/env bash
# Runs every test: `bazel test //...`, the proto lint, the k8s/Dockerfile checks and the client
# checks (tools/k8s_check.js, tools/client_checks.sh). Ends with one line
# "N passed, N failed" counting individual test cases (GoogleTest cases from Bazel's XML
# reports, plus one case per non-Bazel check).
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
check_many() {  # check_many NAME COMMAND...
  local name=$1; shift
  local out rc p f
  out=$("$@" 2>&1); rc=$?
  echo "$out"
  p=$(grep -c '^PASSED: ' <<<"$out"); f=$(grep -c '^FAILED: ' <<<"$out")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then echo "FAILED: $name (exit $rc)"; f=1; fi
  extra_passed=$((extra_passed + p)); extra_failed=$((extra_failed + f))
}
# k8s/ and the Dockerfile against the binary; clients, reflection and buf breaking against a
# live gateway. Both need the binaries `bazel test //...` built.
check_many "k8s manifests and Dockerfile" node tools/k8s_check.js bazel-bin/service/gateway
check_many "clients, reflection, buf generate and breaking" bash tools/client_checks.sh

mapfile -t targets < <(bazel query 'tests(//...)' 2>/dev/null)
read -r passed failed < <(/usr/bin/python3 tools/count_tests.py bazel-testlogs "${targets[@]}")
passed=$((passed + extra_passed))
failed=$((failed + extra_failed))
if [ "$bazel_rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
  # Bazel failed without a failing test case (build error, crash before XML): count it.
  failed=1
fi
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]

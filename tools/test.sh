#!/usr/bin/env bash
# Runs every test: `bazel test //...` plus the proto lint. Ends with one line
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

read -r passed failed < <(/usr/bin/python3 tools/count_tests.py bazel-testlogs)
passed=$((passed + extra_passed))
failed=$((failed + extra_failed))
if [ "$bazel_rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
  # Bazel failed without a failing test case (build error, crash before XML): count it.
  failed=1
fi
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]

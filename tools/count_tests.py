"""Counts GoogleTest cases of the given Bazel test targets: prints "PASSED FAILED".

    count_tests.py bazel-testlogs //tests/upstream:route_test //sandbox:sandbox_test ...

Only the targets named are read (so logs left behind by other runs, e.g. --runs_per_test
directories or deleted targets, never count). A target without a readable report (build error,
crash, timeout before any case ran) counts as one failure.
"""
import os
import sys
import xml.etree.ElementTree as ET


def report_path(root, label):
    package, _, name = label.lstrip("/").partition(":")
    return os.path.join(root, package, name, "test.xml")


def main():
    root, labels = sys.argv[1], sys.argv[2:]
    passed = failed = 0
    for label in labels:
        path = report_path(root, label)
        try:
            tree = ET.parse(path)
        except (OSError, ET.ParseError):
            failed += 1
            continue
        cases = list(tree.iter("testcase"))
        if not cases:
            suite_failed = any(s.get("failures", "0") != "0" or s.get("errors", "0") != "0"
                               for s in tree.iter("testsuite"))
            failed += 1 if suite_failed else 0
            continue
        for case in cases:
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
            elif case.get("status", "run") == "run" and case.get("result", "completed") != "skipped":
                passed += 1
    print(passed, failed)


if __name__ == "__main__":
    main()

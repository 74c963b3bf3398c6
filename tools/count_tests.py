"""Counts GoogleTest cases in Bazel's test.xml reports: prints "PASSED FAILED".

A test target that failed without writing cases (crash, timeout) counts as one failure.
"""
import os
import sys
import xml.etree.ElementTree as ET

root = sys.argv[1]
passed = failed = 0
for dirpath, _, files in os.walk(root, followlinks=True):
    if "test.xml" not in files:
        continue
    try:
        tree = ET.parse(os.path.join(dirpath, "test.xml"))
    except ET.ParseError:
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

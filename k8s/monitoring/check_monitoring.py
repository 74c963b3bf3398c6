#!/usr/bin/env python3
"""Checks k8s/monitoring against promtool and a live gateway's scrape.

    check_monitoring.py --scrape SCRAPE.txt [--dir k8s/monitoring] [--promtool promtool]

Prints one "PASSED: name" / "FAILED: name" line per check and exits 1 when any failed:
  - `promtool check rules` on the PrometheusRule's spec;
  - `promtool test rules` (alerts_test.yaml: each alert fires on its situation);
  - every metric an alert, recording rule or dashboard panel names is exposed by the gateway
    (a family's HELP/TYPE in SCRAPE, even without series; histograms via _bucket/_sum/_count),
    and every expression names at least one of them or a rule recorded from them.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

METRIC = re.compile(r"\bgateway_[a-z0-9_]+\b")
failures = 0


def report(ok, name, detail=""):
    global failures
    print(("PASSED: " if ok else "FAILED: ") + name)
    if not ok:
        failures += 1
        if detail:
            print(detail.rstrip())


def exposed_families(scrape_text):
    families = {}
    for line in scrape_text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            families[m.group(1)] = m.group(2)
    return families


def resolves(name, families):
    if name in families:
        return True
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[: -len(suffix)] if name.endswith(suffix) else None
        if base and families.get(base) in ("histogram", "summary"):
            return True
    return False


def dashboard_exprs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from dashboard_exprs(value)
    elif isinstance(node, list):
        for value in node:
            yield from dashboard_exprs(value)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--scrape", required=True)
    parser.add_argument("--dir", default=os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--promtool", default="promtool")
    args = parser.parse_args()

    with open(os.path.join(args.dir, "prometheus-rule.yaml")) as f:
        rule = yaml.safe_load(f)
    with open(os.path.join(args.dir, "grafana-dashboard.json")) as f:
        dashboard = json.load(f)
    with open(args.scrape) as f:
        families = exposed_families(f.read())

    work = tempfile.mkdtemp(prefix="monitoring_check.")
    rules_file = os.path.join(work, "rules.yaml")
    with open(rules_file, "w") as f:
        yaml.safe_dump(rule["spec"], f)
    r = subprocess.run([args.promtool, "check", "rules", rules_file], capture_output=True, text=True)
    report(r.returncode == 0, "promtool check rules k8s/monitoring/prometheus-rule.yaml",
           r.stdout + r.stderr)

    # Unit tests compare labels; annotations are checked (templates parse) by `check rules`.
    bare = yaml.safe_load(yaml.safe_dump(rule["spec"]))
    for group in bare["groups"]:
        for item in group["rules"]:
            item.pop("annotations", None)
    test_dir = os.path.join(work, "test")
    os.mkdir(test_dir)
    with open(os.path.join(test_dir, "rules.yaml"), "w") as f:
        yaml.safe_dump(bare, f)
    with open(os.path.join(args.dir, "alerts_test.yaml")) as src, \
            open(os.path.join(test_dir, "alerts_test.yaml"), "w") as dst:
        dst.write(src.read())
    r = subprocess.run([args.promtool, "test", "rules", "alerts_test.yaml"], cwd=test_dir,
                       capture_output=True, text=True)
    report(r.returncode == 0, "promtool test rules k8s/monitoring/alerts_test.yaml",
           r.stdout + r.stderr)

    exprs = [("rule " + (item.get("alert") or item.get("record")), item["expr"])
             for group in rule["spec"]["groups"] for item in group["rules"]]
    exprs += [("dashboard", e) for e in dashboard_exprs(dashboard)]
    recorded = {item["record"] for group in rule["spec"]["groups"] for item in group["rules"]
                if "record" in item}
    missing = []
    for where, expr in exprs:
        names = METRIC.findall(expr)
        if not names and not any(r in expr for r in recorded):
            missing.append(f"{where}: names no gateway metric: {expr}")
        for name in names:
            if not resolves(name, families):
                missing.append(f"{where}: {name} is not on /metrics")
    report(not missing, f"alerts and dashboard name only exposed metrics ({len(exprs)} expressions)",
           "\n".join(missing))
    panels = dashboard.get("panels", [])
    report(bool(panels) and all(p.get("targets") for p in panels),
           f"dashboard: {len(panels)} panels, each with a query")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

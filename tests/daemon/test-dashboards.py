#!/usr/bin/python3
"""integration (TAP): the Grafana dashboard (data/grafana/) and the
Prometheus alerting rules (data/prometheus/) name only metrics memtided
really exports.

The names come from a running memtided's /metrics (libvirt's test
driver, one domain, a fake /proc), not from a list: every sample name it
serves, and for every family its TYPE line declares the sample names
PromQL sees (a counter's _total, a histogram's _bucket/_sum/_count, an
info's _info), so per-VM families without a value here count too.
Each query is read as PromQL enough to find its metric names: strings,
label matchers, range durations, grouping clauses and Grafana variables
are taken out, and every identifier left that is not a PromQL function,
aggregation or keyword is a metric name; it must be one memtided
exports, and every query must name at least one.

The JSON is parsed with Python's json, the YAML with PyYAML (Debian:
python3-yaml; missing, the test bails out, it does not skip), and both
are checked for the structure Grafana and Prometheus read. promtool is
not run: it is not installed here (Debian package prometheus).
Environment: MEMTIDE_DAEMON, MEMTIDE_SRCDIR.
"""

import functools
import http.client
import json
import os
import re
import sys

import daemonlib
from daemonlib import WAIT, finish, running, require_daemon

try:
    import yaml
except ImportError:
    print("Bail out! PyYAML is missing (Debian package python3-yaml)", flush=True)
    sys.exit(1)

DAEMON = require_daemon()
SRC = daemonlib.require_srcdir()
tap = functools.partial(daemonlib.tap, limit=40)
DASHBOARD = os.path.join(SRC, "data", "grafana", "memtide-dashboard.json")
ALERTS = os.path.join(SRC, "data", "prometheus", "memtide-alerts.yml")

# PromQL's functions, aggregations and keywords (those a query here may use).
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "rate", "irate", "increase", "delta", "idelta",
    "deriv", "changes", "resets", "abs", "absent", "absent_over_time", "ceil", "floor",
    "round", "clamp", "clamp_min", "clamp_max", "histogram_quantile", "label_replace",
    "label_join", "vector", "scalar", "time", "timestamp", "sort", "sort_desc",
    "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
    "last_over_time", "quantile_over_time", "predict_linear", "inf", "nan",
}


def metric_names(expr):
    """The metric names a PromQL expression (or a Grafana label_values()
    query) selects."""
    e = re.sub(r"\$\{[^}]*\}|\$\w+", "", expr)              # Grafana variables
    e = re.sub(r'"(?:[^"\\]|\\.)*"', "", e)                # strings
    e = re.sub(r"\{[^}]*\}", "", e)                         # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                        # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r" ", e)
    m = re.fullmatch(r"\s*label_values\(\s*(.*?)\s*(?:,\s*\w+\s*)?\)\s*", e, re.S)
    if m:
        e = m.group(1)
    words = re.findall(r"(?<![\w.])[A-Za-z_:][\w:]*", e)
    return {w for w in words if w not in PROMQL_WORDS}


def exported(body):
    """Every name PromQL can select in this exposition."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", body, re.M):
        names.update({
            "counter": [name + "_total"],
            "histogram": [name + "_bucket", name + "_sum", name + "_count"],
            "info": [name + "_info"],
        }.get(kind, [name]))
    names.update(re.findall(r"^([A-Za-z_:][\w:]*)[{ ]", body, re.M))
    return names


# ---- the reading of PromQL finds what a query names, and only that ------------------------------
for q, want in (('sum by (le) (rate(memtide_grow_reaction_seconds_bucket{le!="+Inf"}[5m]))',
                 {"memtide_grow_reaction_seconds_bucket"}),
                ("up == 0", {"up"}),
                ("libvirt_domain_info_maximum_memory_bytes / on (domain) memtide_vm_size_bytes",
                 {"libvirt_domain_info_maximum_memory_bytes", "memtide_vm_size_bytes"}),
                ('label_values(memtide_vm_size_bytes{instance="$instance"}, domain)',
                 {"memtide_vm_size_bytes"}),
                ("histogram_quantile(0.95, x_bucket) * 1e3", {"x_bucket"})):
    got = metric_names(q)
    tap(got == want, f"PromQL reading: {q} names {sorted(want)}", got)

# ---- the files parse, with the structure their readers need -----------------------------------
with open(DASHBOARD) as f:
    try:
        dash = json.load(f)
    except ValueError as e:
        dash = None
        tap(False, f"the dashboard is JSON: {e}")
if dash is not None:
    tap(isinstance(dash.get("panels"), list) and dash["panels"] and dash.get("title")
        and dash.get("uid"), "the dashboard parses: a title, a uid, panels")
    queries = []   # (where, PromQL)
    for p in dash.get("panels", []):
        targets = p.get("targets") or []
        tap(targets and all(t.get("expr") and t.get("refId") for t in targets),
            f"panel '{p.get('title')}': every target has a refId and an expr", targets)
        queries += [(f"panel '{p.get('title')}'", t.get("expr", "")) for t in targets]
    ids = [p.get("id") for p in dash.get("panels", [])]
    tap(len(ids) == len(set(ids)) and None not in ids, f"panel ids are unique ({ids})")
    variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    tap({"datasource", "instance", "domain"} <= set(variables),
        f"variables datasource, instance and domain ({sorted(variables)})")
    for name, v in variables.items():
        if v.get("type") == "query":
            q = v.get("query")
            queries.append((f"variable ${name}", q.get("query") if isinstance(q, dict) else q))
    tap(re.search(r"\bdomain\)\s*$", variables.get("domain", {}).get("definition", "")),
        "the VM variable takes the domain label's values")
else:
    queries = []

with open(ALERTS) as f:
    try:
        alerts = yaml.safe_load(f)
    except yaml.YAMLError as e:
        alerts = None
        tap(False, f"the alerting rules are YAML: {e}")
if alerts is not None:
    groups = alerts.get("groups") if isinstance(alerts, dict) else None
    tap(isinstance(groups, list) and groups and all(g.get("name") and g.get("rules")
                                                    for g in groups),
        "the alerting rules parse: groups, each with a name and rules")
    names = []
    for g in groups or []:
        for r in g["rules"]:
            names.append(r.get("alert"))
            tap(r.get("alert") and isinstance(r.get("expr"), str)
                and re.fullmatch(r"\d+[smh]", str(r.get("for", "")))
                and r.get("labels", {}).get("severity") in ("warning", "critical")
                and r.get("annotations", {}).get("summary")
                and set(r) <= {"alert", "expr", "for", "labels", "annotations"},
                f"rule {r.get('alert')}: alert, expr, for, a severity, a summary, nothing else",
                r)
            queries.append((f"rule {r.get('alert')}", r.get("expr", "")))
    tap({"MemtideVMStuck", "MemtideVMPressureAboveTarget", "MemtideHostBudgetExhausted"}
        <= set(names) and len(names) == len(set(names)),
        f"the rules: a VM stuck, a VM stalled above its target, the budget exhausted ({names})")

# ---- what memtided exports ---------------------------------------------------------------------
tmp, conf = daemonlib.scratch("memtide-dashboards-")
proc_root = os.path.join(SRC, "tests", "unit", "data", "host", "proc")
d = running([DAEMON, "--connect", "test:///default", "--config", conf,
             "--policies-dir", os.path.join(tmp, "none"), "--state-dir", os.path.join(tmp, "st"),
             "--proc-root", proc_root, "--cgroup", os.path.join(tmp, "no-cgroup"),
             "--bus", "none", "--metrics-port", "0", "-v"],
            dict(os.environ, G_DEBUG="fatal-criticals"))
try:
    hit = d.wait(r"Metrics on http://localhost:(\d+)/metrics", WAIT)
    tap(hit and d.wait(r"tick 2 took", WAIT), "memtided serves metrics and ticks", d.text())
    body = ""
    if hit:
        c = http.client.HTTPConnection("127.0.0.1", int(hit[1].group(1)), timeout=WAIT)
        c.request("GET", "/metrics")
        body = c.getresponse().read().decode()
    have = exported(body)
    tap(len(have) >= 30 and "memtide_build_info" in have,
        f"/metrics: {len(have)} names, memtide_build_info among them", body[:1500])
finally:
    rc = d.stop()
tap(rc == 0, f"SIGTERM: exit 0 (got {rc})", d.tail(20))

# ---- every query names metrics memtided exports -----------------------------------------------
tap(len(queries) >= 10, f"{len(queries)} queries to check")
for where, q in queries:
    named = metric_names(q or "")
    unknown = sorted(n for n in named if n not in have)
    tap(named and not unknown,
        f"{where}: names {', '.join(sorted(named)) or 'no metric'}"
        + (f"; not exported: {', '.join(unknown)}" if unknown else ""), q)
finish()

#!/usr/bin/python3
"""e2e (TAP): a short run of the real-guest benchmark (bench/real/real-bench).

Runs real-bench with 2 guests for 60 s per run (static, then memtide) into
a temporary results directory and checks that it completes and produces a
sane table: both runs, positive host GiB*min, a sample every second, an
RSS for every guest, the plot, memtided exiting cleanly, and nothing left
behind (no domain of its runs, no memtided or dbus-daemon it started).
The cache guest reads 150 MiB of files early (CACHE_SCHEDULE) and then
sleeps: its cold page cache must leave the host. On a quiet host
memtided asks the guest to reclaim it, and its QEMU RSS falls (free page
reporting) within a few seconds of the request; on a busy one the guest
may be shrunk step by step first, which pushes the cache out before it
has been quiet long enough for a cold reclaim (its resident cache then
at most half of the static run's); a FIGURE says which.
No timing or ratio assertions: this host is shared and TCG is slow; the
figures are printed as notes.
Environment: MEMTIDE_DAEMON, MEMTIDECTL, MEMTIDE_WORKLOAD, MEMTIDE_AGENT.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile

import e2elib
from e2elib import bail, finish, note, tap

testbed = e2elib.import_testbed()

DAEMON = e2elib.require_env_file("MEMTIDE_DAEMON", "the built memtided")
e2elib.require_env_file("MEMTIDECTL", "the built memtidectl")
e2elib.require_env_file("MEMTIDE_WORKLOAD", "the built memtide-workload")
e2elib.require_env_file("MEMTIDE_AGENT", "the built static memtide-agent")
if not shutil.which("dbus-daemon"):
    bail("dbus-daemon missing (Debian package dbus)")

BUILD = os.path.dirname(os.path.dirname(os.path.abspath(DAEMON)))
BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                     "bench", "real", "real-bench")
DURATION = 60
GUESTS = 2
CACHE_SCHEDULE = "sleep:5s,cache:150M,sleep:10m"
RSS_WINDOW = 6.0              # s after a cold-cache request to see the RSS fall

results = tempfile.mkdtemp(prefix="memtide-bench-real-")
try:
    r = subprocess.run([sys.executable, BENCH, "--build", BUILD, "--results", results,
                        "--duration", str(DURATION), "--guests", str(GUESTS), "--quiet",
                        "--schedule", f"cache={CACHE_SCHEDULE}"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=540)
    tap(r.returncode == 0, f"real-bench completes (exit {r.returncode})",
        None if r.returncode == 0 else r.stdout[-4000:])
    out = os.path.join(results, "real")
    md_path = os.path.join(out, "results.md")
    js_path = os.path.join(out, "results.json")
    if not (os.path.isfile(md_path) and os.path.isfile(js_path)):
        tap(False, "real-bench wrote results.md and results.json", r.stdout[-4000:])
        finish()
    md = open(md_path).read()
    data = json.load(open(js_path))
    runs = {x["kind"]: x for x in data["runs"]}
    note(md)

    tap(set(runs) == {"static", "memtide"}, "both runs measured (static, memtide)",
        f"runs: {sorted(runs)}")
    rows = [l for l in md.splitlines() if l.startswith("| static |") or l.startswith("| memtide |")]
    tap(len(rows) == 2, "the table has a static and a memtide row", md)
    for kind, x in sorted(runs.items()):
        tap(x["gib_min"] > 0 and x["mean_gib"] > 0 and x["peak_gib"] >= x["mean_gib"],
            f"{kind}: positive host GiB·min, peak ≥ mean "
            f"({x['gib_min']:.2f} GiB·min, mean {x['mean_gib']:.2f}, peak {x['peak_gib']:.2f})")
        tap(x["samples"] >= DURATION * 0.8 and x["duration_s"] >= DURATION - 2,
            f"{kind}: about one sample a second ({x['samples']} in {x['duration_s']:.0f} s)")
        tap(len(x["per_guest_gib_min"]) == GUESTS and all(v > 0 for v in x["per_guest_gib_min"]),
            f"{kind}: an RSS for each of the {GUESTS} guests", str(x["per_guest_gib_min"]))
        tap(all(f is not None and f > 0 for f in x["floor_mib"]),
            f"{kind}: an idle floor for each guest ({x['floor_mib']})")
        tap(all(x["psi_known"]), f"{kind}: guest pressure (PSI) known for every guest "
            "through memtidectl", str(x["psi_known"]))
        tap(len(x.get("breakdown_gib_min") or []) == GUESTS
            and all(abs(sum(b[k] for k in ("qemu_own", "anon", "cache", "other")) - g) < 0.01
                    for b, g in zip(x["breakdown_gib_min"], x["per_guest_gib_min"])),
            f"{kind}: the breakdown of each guest's RSS adds up to its GiB·min",
            str(x.get("breakdown_gib_min")))
        tap(x["memtided_rc"] == 0, f"{kind}: memtided exited 0 (got {x['memtided_rc']})")
        alive = [p for p in (x.get("memtided_pid"), x.get("bus_pid"))
                 if p and os.path.exists(f"/proc/{p}")]
        tap(not alive, f"{kind}: its memtided and dbus-daemon are gone", str(alive))
    tap(runs["static"]["grows"] + runs["static"]["shrinks"] == 0,
        "static run: memtided resized nothing")
    tap(runs["memtide"]["shrinks"] > 0, "memtide run: memtided shrank the full-size guests",
        f"{runs['memtide']['shrinks']} shrinks")
    # Cold page cache: a request for the cache guest, and its RSS falls.
    cache_i = runs["memtide"]["labels"].index("cache")
    cache_name = runs["memtide"]["names"][cache_i]
    colds = [c for c in runs["memtide"]["cold_reclaims"] if c[1] == cache_name]
    # The outcome: the cache guest's cold page cache left the host. On a
    # quiet host memtided asks for it once it has been quiet long enough
    # (a cold reclaim); on a busy one the guest may be shrunk first, step
    # by step, and the shrinks push the cache out before it is quiet
    # long enough (a busy CI run: 9 shrinks, resident cache 0.03 GiB*min
    # against 0.12 static, no cold request in 60 s).
    cache_gm = {k: runs[k]["breakdown_gib_min"][cache_i]["cache"] for k in ("memtide", "static")}
    given_back = cache_gm["memtide"] <= cache_gm["static"] / 2
    tap((colds or given_back) and not runs["static"]["cold_reclaims"],
        "memtide run: the quiet cache guest's cold page cache left the host: "
        + (f"memtided asked it to reclaim ({len(colds)} requests, "
           f"{sum(c[2] for c in colds):.0f} MiB)" if colds else
           f"shrunk before a cold reclaim was due, its resident cache "
           f"{cache_gm['memtide']:.2f} GiB*min against {cache_gm['static']:.2f} static")
        + "; static run: no request",
        str(runs["memtide"]["cold_reclaims"]))
    note(f"FIGURE cold page cache: {'cold reclaim' if colds else 'pushed out by shrinks'}, "
         f"resident cache {cache_gm['memtide']:.2f} GiB*min (static {cache_gm['static']:.2f})")
    if colds:
        with open(os.path.join(out, "memtide.csv")) as f:
            rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
        t, _, asked = colds[0]
        before = [r[f"rss{cache_i}"] for r in rows if r["t"] <= t]
        after = [r[f"rss{cache_i}"] for r in rows if t < r["t"] <= t + RSS_WINDOW]
        fell = before[-1] - min(after) if before and after else float("nan")
        tap(fell >= asked / 2,
            f"... and the cache guest's QEMU RSS fell by {fell:.0f} MiB within {RSS_WINDOW:.0f} s "
            f"of the first request ({asked:.0f} MiB asked at t={t:.0f} s)")
        if fell == fell:
            note(f"FIGURE cold page cache: {asked:.0f} MiB asked, QEMU RSS "
                 f"{before[-1]:.0f} -> {min(after):.0f} MiB within {RSS_WINDOW:.0f} s")
    # The metrics endpoint counts what the log says: every request asked
    # (all guests) answered or failed, but the last may still be on its
    # way when real-bench reads the counters; none in the dry run.
    mr, sr = runs["memtide"].get("metrics_reclaims"), runs["static"].get("metrics_reclaims")
    all_colds = len(runs["memtide"]["cold_reclaims"])
    answered = sum(mr.get(f"cold/{o}", 0) for o in ("done", "refused", "failed")) if mr else -1
    tap(mr is not None and all_colds - 1 <= answered <= all_colds
        and (mr.get("cold/done", 0) >= 1 or not colds)
        and sr is not None and not any(sr.values()),
        f"metrics: memtide_guest_reclaims_total counts the cold requests ({answered} answered of "
        f"{all_colds} asked, {mr.get('cold/done') if mr else None} done; static run: "
        f"{sum(sr.values()) if sr else None})", f"memtide: {mr}\nstatic: {sr}")
    tap(os.path.isfile(os.path.join(out, "plot.png")) or not shutil.which("gnuplot"),
        "plot.png written (gnuplot)")

    conn = testbed.connect()
    left = [dom.name() for dom, meta in testbed.testbed_domains(conn)
            if meta.get("prefix") in {x["prefix"] for x in runs.values()}]
    tap(not left, "no domain of the benchmark's runs is left", " ".join(left))
    rundirs = [p for p in (os.path.join(testbed.RUN_ROOT, x["prefix"]) for x in runs.values())
               if os.path.exists(p)]
    tap(not rundirs, "no run directory is left", " ".join(rundirs))
    if r.returncode == 0:
        for kind, x in sorted(runs.items()):
            note(f"FIGURE {kind}: {x['gib_min']:.2f} GiB·min, OOM kills {sum(x['oom_kills'])}, "
                 f"stall {sum(x['stall_s']):.1f} s, actions {x['grows'] + x['shrinks']}")
except subprocess.TimeoutExpired as e:
    tap(False, "real-bench completes within 540 s", (e.stdout or "")[-4000:]
        if isinstance(e.stdout, str) else None)
finally:
    shutil.rmtree(results, ignore_errors=True)

finish()

"""A scripted memtide-agent for the integration tests: it listens on a
VM's agent channel (the fake driver's `agent=PATH`), sends a hello and
then a report every 200 ms with what the test sets (PSI, the patched
kernel's page reporting tunables), records every request memtided sends
and answers it as the test says.  docs/agent-protocol.md is the protocol.
"""

import json
import os
import socket
import threading
import time

MiB = 1 << 20


class FakeAgent:
    def __init__(self, path, total=900 * MiB, used=300 * MiB):
        self.path = path
        self.lock = threading.Lock()
        self.total = total
        self.used = used
        self.psi = 0.0
        # PSI some total (µs stalled since boot), and how much each
        # report adds to it (µs): the stall budget's measure.
        self.stall_total_us = 0
        self.stall_per_report_us = 0
        # The patched kernel's tunables; None: a stock kernel (not reported).
        self.delay_ms = 2000
        self.budget_divisor = 16
        # How tune_reporting is answered: "ok" (written, read back),
        # or an error code ("unavailable", "failed").
        self.tune_answer = "ok"
        self.requests = []   # (time.monotonic(), parsed request)
        self.seq = 0
        self.connections = 0
        self.stopped = False
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def set(self, **kw):
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, v)

    def requests_of(self, op):
        with self.lock:
            return [r for _, r in self.requests if r.get("op") == op]

    def stop(self):
        self.stopped = True
        self.thread.join(5)
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    # ---- the protocol ----

    def _report(self, reason="tick", hello=False, req_id=None):
        with self.lock:
            self.seq += 1
            r = {"v": 1, "type": "report", "seq": self.seq, "reason": reason,
                 "mono_us": int(time.monotonic() * 1e6)}
            if req_id is not None:
                r["id"] = req_id
            if hello:
                r.update({"hello": True, "agent": "fakeagent 1", "kernel": "6.1.0-memtide",
                          "boot_id": "4e562c1d-d924-4f51-a8ee-656ec09ce4a7",
                          "page_size": 4096, "interval_ms": 200, "psi_mode": "trigger",
                          "psi_trigger": "some 150000 1000000", "reclaim_methods": [],
                          "root": True, "unavailable": ["memory.reclaim", "drop_caches"]})
            self.stall_total_us += self.stall_per_report_us
            avail = self.total - self.used
            r["mem"] = {"total": self.total, "free": avail, "available": avail,
                        "cached": 0, "shmem": 0, "anon": self.used,
                        "slab_reclaimable": 0, "inactive_file": 0,
                        "swap_total": 0, "swap_free": 0}
            r["vmstat"] = {"pgmajfault": 0, "pswpin_bytes": 0, "pswpout_bytes": 0,
                           "oom_kill": 0}
            r["psi"] = {"some": {"avg10": round(self.psi, 2), "avg60": 0.0,
                                 "total_us": self.stall_total_us},
                        "full": {"avg10": 0.0, "avg60": 0.0, "total_us": 0}}
            pr = {"order": 9}
            if self.delay_ms is not None:
                pr.update({"reported_bytes": 0, "reported_total_bytes": 0,
                           "reused_total_bytes": 0, "passes": 0, "budget_exhausted": 0,
                           "delay_ms": self.delay_ms, "budget_divisor": self.budget_divisor})
            r["page_reporting"] = pr
            r["dropped"] = 0
        return json.dumps(r, separators=(",", ":")) + "\n"

    def _answer(self, req):
        rid, op = req.get("id"), req.get("op")
        if op in ("hello", "report"):
            return self._report("reply", hello=op == "hello", req_id=rid)
        reply = {"v": 1, "type": "reply", "id": rid, "op": op}
        with self.lock:
            answer = self.tune_answer
            if op == "tune_reporting" and answer == "ok" and self.delay_ms is not None:
                self.delay_ms = req.get("delay_ms", self.delay_ms)
                self.budget_divisor = req.get("budget_divisor", self.budget_divisor)
                reply.update({"ok": True, "delay_ms": self.delay_ms,
                              "budget_divisor": self.budget_divisor})
            elif op == "tune_reporting":
                code = "unavailable" if self.delay_ms is None else answer
                reply.update({"ok": False, "error": code, "message": f"fake agent: {code}"})
            else:
                reply.update({"ok": False, "error": "unavailable",
                              "message": "fake agent: not this op"})
        return json.dumps(reply, separators=(",", ":")) + "\n"

    def _serve(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
            self._session(conn)

    def _session(self, conn):
        conn.settimeout(0.05)
        buf = b""
        next_report = 0.0
        try:
            conn.sendall(self._report("connect", hello=True).encode())
            while not self.stopped:
                now = time.monotonic()
                if now >= next_report:
                    conn.sendall(self._report().encode())
                    next_report = now + 0.2
                try:
                    data = conn.recv(4096)
                    if not data:
                        return
                    buf += data
                except socket.timeout:
                    pass
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if not line.strip():
                        continue
                    req = json.loads(line)
                    with self.lock:
                        self.requests.append((time.monotonic(), req))
                    conn.sendall(self._answer(req).encode())
        except OSError:
            return
        finally:
            conn.close()

"""The processes of a benchmark run: gunicorn servers, the Medplum memory peer, and what /proc tells about them.

Servers are stopped by their own pid (never by name). `cpu_ticks`/`foreign_since` measure how much CPU
other processes on the machine used during a measurement (it may be shared), `rss_kb`/`peak_rss`
sample the resident memory of gunicorn workers.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

PEER_SCRIPT = Path("/work/shared/tools/medplum-memory-server.mjs")


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(base: str, path: str, seconds: float = 90) -> None:
    """Wait until the server answers `path` with any HTTP status below 500."""
    url = urlsplit(base)
    deadline = time.time() + seconds
    while time.time() < deadline:
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=5)
            conn.request("GET", path)
            if conn.getresponse().status < 500:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{base}{path} did not answer within {seconds:.0f}s")


class Gunicorn:
    """A gunicorn master with 2 workers serving `app` from `cwd`; stopped by its own pid."""

    def __init__(self, app: str, cwd: Path, env: dict, worker_args: list[str], logdir: Path, ready_path: str):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.cmd = ["gunicorn", "-w", "2", "-b", f"127.0.0.1:{self.port}", *worker_args, app]
        self.log = logdir / f"{app.split(':')[0]}-{self.port}.log"
        exe = [sys.executable, "-m"]  # the gunicorn of this interpreter's environment
        self.proc = subprocess.Popen(exe + self.cmd, cwd=cwd, env={**os.environ, **env},
                                     stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        try:
            wait_http(self.base, ready_path)
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"gunicorn {app} did not start; see {self.log}") from None

    def workers(self) -> list[int]:
        """The pids of the master's worker processes."""
        return [int(p) for p in Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Peer:
    """The Medplum memory peer (Node), seeded from a collection Bundle file."""

    def __init__(self, modules: Path, seed_file: Path, logdir: Path):
        self.log = logdir / "peer.log"
        cmd = ["node", str(PEER_SCRIPT), "--modules", str(modules), "--port", "0", "--record", "0", "--quiet", "--seed", str(seed_file)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log.open("w"), text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("LISTENING "):
            self.stop()
            raise RuntimeError(f"the Medplum peer did not start: {line!r}; see {self.log}")
        url = urlsplit(line.split()[1])
        self.base, self.prefix = f"{url.scheme}://{url.netloc}", url.path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)


def request(base: str, method: str, path: str, body: str | None = None) -> tuple[int, dict]:
    """One FHIR JSON request on a fresh connection: (status, parsed body or {})."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=600)
    headers = {"Accept": "application/fhir+json", **({"Content-Type": "application/fhir+json"} if body else {})}
    conn.request(method, path, body=body.encode() if body else None, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, (json.loads(data) if data else {})


def foreign_cores(dbname: str, seconds: float) -> float:
    """Cores used outside the benchmark over the next `seconds`."""
    start = cpu_ticks(dbname)
    time.sleep(seconds)
    return foreign_since(start, dbname)


def cpu_ticks(dbname: str) -> tuple[float, dict[int, int]]:
    """(now, {pid: CPU ticks used so far}) of processes outside this benchmark: others' processes and their postgres backends.

    Ours are this process's descendants (servers, workers, wrk), postgres backends of our database and
    postgres's own background processes. The machine may be shared; this shows how much it was.
    """
    me, parents, foreign = os.getpid(), {}, {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        pid = int(d.name)
        parents[pid] = int(fields[1])
        backend = cmd.startswith("postgres: ") and ("127.0.0.1(" in cmd or "[local]" in cmd)
        if not (cmd.startswith("postgres") and (not backend or f" {dbname} " in cmd)):
            foreign[pid] = int(fields[11]) + int(fields[12])
    for pid in list(foreign):
        p = pid
        while p > 1:
            if p == me:
                del foreign[pid]
                break
            p = parents.get(p, 0)
    return time.time(), foreign


def foreign_since(start: tuple[float, dict[int, int]], dbname: str) -> float:
    """Cores used outside the benchmark since `start` (a cpu_ticks snapshot); processes that ended meanwhile are missed."""
    (t0, before), (t1, after) = start, cpu_ticks(dbname)
    ticks = sum(max(0, v - before.get(pid, 0)) for pid, v in after.items())
    return ticks / os.sysconf("SC_CLK_TCK") / (t1 - t0)


def rss_kb(pid: int) -> int:
    """The resident set size of a process in kB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def peak_rss(pids: list[int], done: threading.Event, peak: dict[int, int]) -> None:
    """Raise peak[pid] to the largest VmRSS (kB) seen every 2 ms until `done` is set."""
    while not done.is_set():
        for p in pids:
            peak[p] = max(peak[p], rss_kb(p))
        time.sleep(0.002)

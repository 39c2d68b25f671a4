"""Load generation: closed-loop HTTP/1.1 clients (keep-alive when the server allows) against one server, for a fixed duration.

With `wrk` installed (C, event loop: not the bottleneck) every workload runs through
bench/wrk/workload.lua; without it, a Python fallback runs `connections` clients spread over
several processes (threads with one keep-alive http.client connection each). Both report the same
dict: requests, requests/s, p50/p90/p99/max latency in ms and the error count (non-2xx/3xx or
transport errors). Latency is measured per request by the client, from send to full response.

Percentiles are corrected for coordinated omission as wrk does (its stats_correct, applied before
a script's done()): a closed-loop client sends nothing while it waits, so each latency above twice
the mean per-connection interval also counts the requests that would have been sent meanwhile.
A rare long stall therefore shows in p99, as real clients would feel it; `max` is uncorrected.
"""
from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from payloads import TOKEN

LUA = Path(__file__).with_name("wrk") / "workload.lua"
FHIR = "application/fhir+json"


@dataclass(frozen=True)
class Workload:
    """One kind of request: `method` on a path drawn at random from `paths`, with an optional body template."""

    name: str
    method: str
    paths: tuple[str, ...]
    body: str | None = None  # TOKEN in it is replaced by a unique value per request
    headers: tuple[tuple[str, str], ...] = ()  # sent with every request (e.g. Authorization)


def engine(requested: str | None = None) -> str:
    """The load generator to use: the one requested, else wrk when installed, else the Python fallback."""
    return requested or ("wrk" if shutil.which("wrk") else "python")


def run(base: str, w: Workload, *, seconds: float, connections: int, warmup: float = 0.0, engine_name: str | None = None) -> dict:
    """Drive `w` against the server at `base` (scheme://host:port) and return its figures."""
    drive = _wrk if engine(engine_name) == "wrk" else _python
    if warmup > 0:
        drive(base, w, warmup, connections)
    result = drive(base, w, seconds, connections)
    result["workload"] = w.name
    return result


def _summary(engine_name: str, requests: int, seconds: float, errors: int, p50: float, p90: float, p99: float,
             top: float, connections: int) -> dict:
    return {"engine": engine_name, "connections": connections, "requests": requests, "seconds": round(seconds, 2),
            "rps": round(requests / seconds, 1) if seconds else 0.0, "p50_ms": round(p50, 2), "p90_ms": round(p90, 2),
            "p99_ms": round(p99, 2), "max_ms": round(top, 2), "errors": errors}


# ------------------------------------------------------------------------------- wrk
def _wrk(base: str, w: Workload, seconds: float, connections: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        paths, body = Path(tmp, "paths"), Path(tmp, "body")
        paths.write_text("\n".join(w.paths) + "\n")
        env = dict(os.environ, BENCH_METHOD=w.method, BENCH_PATHS=str(paths), BENCH_RUN=f"{w.name}{random.randrange(10**9)}",
                   BENCH_BODY="", BENCH_HEADERS="\n".join(f"{k}: {v}" for k, v in w.headers))
        if w.body is not None:
            body.write_text(w.body)
            env["BENCH_BODY"] = str(body)
        threads = max(1, min(2, connections))
        cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
               "--timeout", "30s", "-s", str(LUA), base]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("BENCH_JSON "))
    doc = json.loads(line[len("BENCH_JSON "):])
    errors = sum(doc["errors"].values())
    ms = 1000.0
    return _summary("wrk", doc["requests"], doc["duration_us"] / 1e6, errors, doc["p50_us"] / ms, doc["p90_us"] / ms,
                    doc["p99_us"] / ms, doc["max_us"] / ms, connections)


# ------------------------------------------------------------------------------- Python fallback
def _python(base: str, w: Workload, seconds: float, connections: int) -> dict:
    procs = max(1, min(connections, os.cpu_count() or 1))
    shares = [connections // procs + (1 if k < connections % procs else 0) for k in range(procs)]
    deadline = time.time() + 0.5 + seconds  # processes start first, then all run until the deadline
    jobs = [(base, w, n, deadline - seconds, deadline, k) for k, n in enumerate(shares)]
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        parts = pool.map(_client_process, jobs)
    latencies = sorted(x for lat, _ in parts for x in lat)
    errors = sum(e for _, e in parts)
    if not latencies:
        return _summary("python", 0, seconds, errors, 0, 0, 0, 0, connections)
    corrected = sorted(_corrected(latencies, seconds * 1000 / (len(latencies) / connections)))

    def pct(p: float) -> float:
        return corrected[min(len(corrected) - 1, int(p / 100 * len(corrected)))]
    return _summary("python", len(latencies), seconds, errors, pct(50), pct(90), pct(99), latencies[-1], connections)


def _corrected(latencies: list[float], interval: float) -> list[float]:
    """wrk's stats_correct: a latency v >= 2*interval adds samples v-interval, v-2*interval, ... above interval."""
    out = list(latencies)
    for v in latencies:
        if v >= 2 * interval:
            m = v - interval
            while m > interval:
                out.append(m)
                m -= interval
    return out


def _client_process(job: tuple) -> tuple[list[float], int]:
    base, w, threads, start, deadline, k = job
    results: list[tuple[list[float], int]] = [([], 0) for _ in range(threads)]

    def client(t: int) -> None:
        url = urlsplit(base)
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
        rnd, lat, errors, n = random.Random(), [], 0, 0
        prefix = f"py{k}x{t}x{random.randrange(10**9)}-"
        headers = {"Accept": "application/fhir+json", **dict(w.headers)}
        if w.body is not None:
            headers["Content-Type"] = "application/fhir+json"
        while time.time() < start:
            time.sleep(0.005)
        while time.time() < deadline:
            n += 1
            body = w.body.replace(TOKEN, f"{prefix}{n}").encode() if w.body is not None else None
            t0 = time.perf_counter()
            try:
                conn.request(w.method, rnd.choice(w.paths), body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException):
                conn.close()
                status = 599
            lat.append((time.perf_counter() - t0) * 1000)
            errors += status >= 400
        conn.close()
        results[t] = (lat, errors)

    pool = [threading.Thread(target=client, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    return [x for lat, _ in results for x in lat], sum(e for _, e in results)


def posting(base: str, next_request, seconds: float, connections: int, expect: int) -> dict:
    """Closed-loop clients (threads, one keep-alive connection each) POSTing `next_request()` -> (path, body) until
    `seconds` pass or it returns None (then "ran out of work" is an error): elapsed s, latencies ms, errors. For
    workloads whose every request differs (wrk's one template does not fit), e.g. one session's attendance each."""
    url = urlsplit(base)
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.perf_counter() + seconds
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=120)
        while time.perf_counter() < deadline:
            with lock:
                item = next_request()
            if item is None:
                errors.append("ran out of work")
                break
            t0 = time.perf_counter()
            conn.request("POST", item[0], body=item[1].encode(), headers={"Content-Type": FHIR, "Accept": FHIR})
            resp = conn.getresponse()
            data = resp.read()
            with lock:
                latencies.append((time.perf_counter() - t0) * 1000)
                if resp.status != expect:
                    errors.append(f"{resp.status} {data[:300]!r}")
        conn.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"elapsed": time.perf_counter() - start, "latencies": latencies, "errors": errors}

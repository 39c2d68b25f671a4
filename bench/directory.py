"""Directory near-search: Location?near=… over 5,000 program sites against a plain Location search of the same
size (same database, same result sizes), on PostgreSQL, in the same run.

    python bench/directory.py                          # 20 s per workload, 2 rounds each, 4 connections
    python bench/directory.py --seconds 5 --rounds 1   # a smoke check

Seeds N sites (default 5,000) spread evenly at random over a 500 km x 500 km box in the US Midwest, each a
Location with a position and a postal code shared by about 40 sites, and one HealthcareService per site
(track, payer, seat capacity). Workloads, each over 200 random points or postal codes:
  plain             Location?address-postalcode=<code>                 (about 40 matches, first page of 20)
  near              Location?near=<lat>|<lng>|25|km                   (about 40 matches in the circle, nearest 20)
  near-revinclude   the same with _revinclude=HealthcareService:location
Target (issue 9): near p99 <= 20 ms.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import requests

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [p for p in (str(ROOT), str(BENCH)) if p not in sys.path]

import load  # noqa: E402
import servers  # noqa: E402
from run import database, log  # noqa: E402

SD = "https://iop.example.org/fhir/StructureDefinition"
CS = "https://iop.example.org/fhir/CodeSystem"
CENTER = (40.0, -89.0)
HALF_KM = 250.0
PER_CODE = 40
TRACKS = ("women", "men", "veterans", "adolescents", "co-occurring", "general-mh", "substance-use", "lgbtq-plus")


def box_point(rnd: random.Random) -> tuple[float, float]:
    """A uniform random point in the 500 km square around CENTER (equirectangular: fine at this size)."""
    dlat = HALF_KM / 111.195
    dlng = dlat / math.cos(math.radians(CENTER[0]))
    return round(CENTER[0] + rnd.uniform(-dlat, dlat), 5), round(CENTER[1] + rnd.uniform(-dlng, dlng), 5)


def site(n: int, rnd: random.Random) -> list[dict]:
    """The Location and HealthcareService of site n."""
    lat, lng = box_point(rnd)
    code = f"6{n % (5000 // PER_CODE):04d}"
    loc = {"resourceType": "Location", "id": f"bench-loc-{n}", "status": "active", "name": f"Bench site {n}",
           "address": {"line": [f"{n} Example St"], "city": "Benchville", "postalCode": code, "country": "US"},
           "position": {"latitude": lat, "longitude": lng}}
    track = TRACKS[n % len(TRACKS)]
    hs = {"resourceType": "HealthcareService", "id": f"bench-hs-{n}", "active": True, "name": f"Bench track {n}",
          "extension": [{"url": f"{SD}/specialized-track", "valueCodeableConcept": {
                            "coding": [{"system": f"{CS}/iop-specialized-track", "code": track}]}},
                        {"url": f"{SD}/seat-capacity", "valueUnsignedInt": 12}],
          "location": [{"reference": f"Location/bench-loc-{n}"}]}
    return [loc, hs]


def seed(base: str, count: int, rnd: random.Random) -> None:
    """count sites through transaction Bundles of 100 sites (200 PUTs)."""
    for start in range(0, count, 100):
        resources = [r for n in range(start, min(count, start + 100)) for r in site(n, rnd)]
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources]}
        resp = requests.post(f"{base}/fhir", data=json.dumps(bundle), headers={"Content-Type": "application/fhir+json"}, timeout=120)
        if resp.status_code != 200:
            raise SystemExit(f"seeding failed: {resp.status_code} {resp.text[:500]}")


def workloads(count: int, rnd: random.Random) -> dict[str, load.Workload]:
    points = [box_point(rnd) for _ in range(200)]
    codes = [f"6{rnd.randrange(count // PER_CODE):04d}" for _ in range(200)]
    near = tuple(f"/fhir/Location?near={lat}|{lng}|25|km" for lat, lng in points)
    return {"plain": load.Workload("plain", "GET", tuple(f"/fhir/Location?address-postalcode={c}" for c in codes)),
            "near": load.Workload("near", "GET", near),
            "near-revinclude": load.Workload("near-revinclude", "GET",
                                             tuple(p + "&_revinclude=HealthcareService:location" for p in near))}


def sizes(base: str, ws: dict[str, load.Workload]) -> dict[str, float]:
    """Mean Bundle.total over the first 20 paths of each workload (the result sizes compared)."""
    out = {}
    for name, w in ws.items():
        totals = []
        for path in w.paths[:20]:
            r = requests.get(base + path, timeout=30)
            if r.status_code != 200:
                raise SystemExit(f"smoke {name} failed: {r.status_code} {r.text[:300]}")
            totals.append(r.json()["total"])
        out[name] = sum(totals) / len(totals)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, default=5000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds of each workload (the best of each is kept)")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--engine", choices=("wrk", "python"))
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--db", default="iop_bench_directory")
    args = ap.parse_args()
    rnd = random.Random(9)
    logdir = Path(tempfile.mkdtemp(prefix="iop-bench-directory-"))
    runs: dict[str, list[dict]] = {}
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(database(args.pg, args.db, False))
        server = servers.Gunicorn("wsgi:app", ROOT, {"IOP_DATABASE_URL": url, "IOP_AUTH": "off"}, [], logdir, "/fhir/metadata")
        stack.callback(server.stop)
        seed(server.base, args.sites, rnd)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")
        ws = workloads(args.sites, rnd)
        found = sizes(server.base, ws)
        log(f"{args.sites} sites; mean matches: " + ", ".join(f"{k} {v:.1f}" for k, v in found.items()))
        for round_ in range(args.rounds):
            for name, w in ws.items():
                result = load.run(server.base, w, seconds=args.seconds, connections=args.connections, warmup=args.warmup,
                                  engine_name=args.engine)
                runs.setdefault(name, []).append(result)
                log(f"round {round_ + 1} {name}: {result['rps']:.1f}/s, p50 {result['p50_ms']:.1f} ms, "
                    f"p99 {result['p99_ms']:.1f} ms, errors {result['errors']}")
    print(report(runs, found, args))


def report(runs: dict[str, list[dict]], found: dict[str, float], args) -> str:
    best = {name: min(r, key=lambda x: x["p99_ms"]) for name, r in runs.items()}
    lines = ["", f"directory near-search over {args.sites} sites vs plain Location search (PostgreSQL, gunicorn -w 2, "
                 f"{args.connections} connections)", f"{'':16} {'matches':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"]
    for name, b in best.items():
        lines.append(f"{name:16} {found[name]:8.1f} {b['rps']:8.1f} {b['p50_ms']:8.1f} {b['p99_ms']:8.1f}")
    ok = best["near"]["p99_ms"] <= 20
    lines += [f"near p99 <= 20 ms: {best['near']['p99_ms']:.1f} -> {'PASS' if ok else 'FAIL'}",
              f"near p99 / plain p99: {best['near']['p99_ms'] / best['plain']['p99_ms']:.2f}",
              f"errors: {sum(r['errors'] for rs in runs.values() for r in rs)}"]
    out = BENCH / "results" / f"directory-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"when": datetime.now(UTC).isoformat(timespec="seconds"), "argv": sys.argv[1:],
                               "sites": args.sites, "matches": found, "runs": runs}, indent=2))
    lines.append(f"results: {out.relative_to(ROOT)}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

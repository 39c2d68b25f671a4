"""Profile validation cost per resource, against the bare fhir.resources parse, in the same run.

For every examples/ resource (and every entry resource of the examples' Bundles) that claims one of
our profiles: the median time of (a) the bare R4B parse, (b) our profile checks alone
(service.conformance), (c) the whole write-path validation (base R4 walk + parse + profiles).
Target: (b) at most 1 ms per resource.

    python bench/profiles.py [--rounds 200]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service import conformance, fhir, references, validation  # noqa: E402
from service.interactions import profile_issues  # noqa: E402

TARGET_MS = 1.0


def instances() -> list[dict]:
    """Example resources that claim a profile of ours (Bundle entries included, references resolved as a transaction would)."""
    registry = conformance.registry()
    found = []
    for path in sorted((ROOT / "examples").glob("*.json")):
        doc = json.loads(path.read_text())
        found += [d for d in _resources(doc) if registry.claimed(d)]
    return found


def _resources(doc: dict) -> list[dict]:
    if doc["resourceType"] != "Bundle":
        return [doc]
    entries = [e for e in doc.get("entry", []) if "resource" in e]
    ids = {e["fullUrl"]: f"{e['resource']['resourceType']}/{e['fullUrl'].rsplit(':', 1)[-1]}" for e in entries if "fullUrl" in e}

    def resolve(ref: str) -> str | None:
        if ref in ids:
            return ids[ref]
        return ref.split("?", 1)[0] + "/resolved" if "?" in ref else None  # a conditional reference, as resolved

    return [references.rewrite(e["resource"], resolve) for e in entries]


def median_ms(fn, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args()
    registry = conformance.registry()
    rows = []
    for resource in instances():
        claimed = registry.claimed(resource)
        parse = median_ms(lambda r=resource: fhir.model_class(r["resourceType"]).model_validate(r), args.rounds)
        profile = median_ms(lambda r=resource, c=claimed: registry.validate(r, c), args.rounds)
        whole = median_ms(lambda r=resource: (validation.validate(r), profile_issues(r, {})), args.rounds)
        name = registry.profiles[claimed[0]].id
        rows.append((name, resource["resourceType"], parse, profile, whole))
    print(f"{'profile':34} {'type':22} {'parse ms':>9} {'profiles ms':>12} {'write-path ms':>14} {'profiles ÷ parse':>17}")
    for name, rtype, parse, profile, whole in sorted(rows, key=lambda r: -r[3]):
        print(f"{name:34} {rtype:22} {parse:9.3f} {profile:12.3f} {whole:14.3f} {profile / parse:16.2f}x")
    costs = sorted(r[3] for r in rows)
    mean = statistics.mean(costs) if costs else 0.0
    p95 = costs[int(0.95 * (len(costs) - 1))] if costs else 0.0
    over = [(r[0], round(r[3], 3), round(r[2], 3)) for r in rows if r[3] > TARGET_MS]
    verdict = "PASS" if mean <= TARGET_MS else "FAIL"
    print(f"\n{len(rows)} resources; profile checks per resource: mean {mean:.3f} ms, p95 {p95:.3f} ms, worst {costs[-1]:.3f} ms")
    print(f"target ≤ {TARGET_MS} ms per resource (mean): {verdict}; above it: {over or 'none'} (profile ms, bare parse ms)")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())

"""Bulk seeder: store Patients through the service's own write path, in-process, ~1000 per transaction.

Each unit of work is `service.interactions.run(db, work)` where `work` calls `interactions.create`
for `chunk` Patients (validation, meta, version rows and search index rows exactly as a REST create,
one database transaction per chunk). Chunks are spread over several processes. Seeding tops up:
Patients 0..n-1 that are already stored (counted by their seed identifier) are kept.

The write path stores ~2,000 Patients/s with 2 processes on 2 cores (a million in ~8 minutes).
`method="copy"` is a faster option for quick turnarounds (~3,500/s): the stored JSON is built as
`interactions.prepare` builds it (checked against it for the first Patient of every chunk), index
rows come from `service.indexer.index_rows`, and all rows go in with PostgreSQL COPY, still one
transaction per chunk; validation is skipped.

    python bench/seed.py postgresql://postgres@127.0.0.1:5432/iop_bench 100000 [--processes 2] [--method copy]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "bench")) if p not in sys.path]

import payloads  # noqa: E402
import psycopg  # noqa: E402
from sqlalchemy import text  # noqa: E402

from service import dates, indexer, interactions  # noqa: E402
from service.db import Database  # noqa: E402
from service.tables import INDEX_TABLES  # noqa: E402

_db: Database | None = None  # one per seeding process
_pg: psycopg.Connection | None = None


def _store_chunk(bounds: tuple[int, int, str]) -> int:
    """Create Patients first..last-1 in one unit of work (runs in a pool process)."""
    global _db
    first, last, url = bounds
    if _db is None:
        _db = Database(url, pool_size=1)

    def work(unit: interactions.Unit) -> None:
        for i in range(first, last):
            interactions.create(unit, payloads.patient(i), rid=payloads.patient_id(i))

    interactions.run(_db, work)
    return last - first


def _final(resource: dict, rid: str, instant: str) -> dict:
    """Version 1 of `resource` as interactions.prepare shapes it (id and meta first), without validating."""
    meta = {"versionId": "1", "lastUpdated": instant, **{k: v for k, v in resource.get("meta", {}).items()
                                                         if k not in ("versionId", "lastUpdated")}}
    return {"resourceType": resource["resourceType"], "id": rid, "meta": meta,
            **{k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")}}


def _copy_chunk(bounds: tuple[int, int, str]) -> int:
    """COPY the rows the write path would store for Patients first..last-1, in one transaction."""
    global _pg
    first, last, url = bounds
    if _pg is None:
        _pg = psycopg.connect(url)
    now = dates.utcnow()
    instant = dates.instant(now)
    resources, versions = [], []
    index: dict[str, list[dict]] = {kind: [] for kind in INDEX_TABLES}
    with _pg.transaction():
        pks = [r[0] for r in _pg.execute("SELECT nextval(pg_get_serial_sequence('resource', 'pk')) "
                                         "FROM generate_series(1, %s)", (last - first,))]
        for pk, i in zip(pks, range(first, last), strict=True):
            rid, source = payloads.patient_id(i), payloads.patient(i)
            final = _final(source, rid, instant)
            content = json.dumps(final, ensure_ascii=False, separators=(",", ":"))
            if i == first:  # the same bytes as the write path, which also validates
                assert (content, final) == interactions.prepare(interactions.Unit(None, now), source, rid, 1)  # type: ignore[arg-type]
            resources.append((pk, "Patient", rid, 1, now, False, content))
            versions.append((pk, "Patient", rid, 1, now, "POST", content))
            for kind, rows in indexer.index_rows(final).items():
                index[kind].extend({**row, "resource_pk": pk} for row in rows)
        _copy(_pg, "resource", ("pk", "type", "id", "version", "last_updated", "deleted", "content"), resources)
        _copy(_pg, "resource_version", ("resource_pk", "type", "id", "version", "last_updated", "method", "content"), versions)
        for kind, rows in index.items():
            cols = tuple(c.name for c in INDEX_TABLES[kind].columns)
            _copy(_pg, INDEX_TABLES[kind].name, cols, [tuple(row.get(c) for c in cols) for row in rows])
    return last - first


def _copy(conn: psycopg.Connection, table: str, cols: tuple[str, ...], rows: list[tuple]) -> None:
    if rows:
        with conn.cursor().copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def seeded_count(db: Database) -> int:
    """How many seed Patients are stored (chunks commit whole, in order of their first index)."""
    with db.read() as conn:
        return conn.execute(text("SELECT count(DISTINCT resource_pk) FROM sp_token WHERE type = 'Patient' "
                                 "AND name = 'identifier' AND system = :s"), {"s": payloads.SEED_SYSTEM}).scalar_one()


def seed(url: str, target: int, *, processes: int = 2, chunk: int = 1000, method: str = "write", progress=None) -> dict:
    """Top the database up to `target` seed Patients (method write | copy), then VACUUM ANALYZE and CHECKPOINT.

    Returns the counts, the seeding rate and the time VACUUM ANALYZE + CHECKPOINT took.
    """
    db = Database(url, pool_size=1)
    db.upgrade()
    have = seeded_count(db)
    chunks = [(a, min(a + chunk, target), url) for a in range(have, target, chunk)]
    started = time.perf_counter()
    done = 0
    if chunks:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            for n in pool.imap_unordered(_copy_chunk if method == "copy" else _store_chunk, chunks):
                done += n
                if progress and (done // chunk) % 50 == 0:
                    progress(f"seeded {have + done:,}/{target:,} ({done / (time.perf_counter() - started):,.0f}/s)")
    seconds = time.perf_counter() - started
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        t = time.perf_counter()
        conn.exec_driver_sql("VACUUM ANALYZE")  # as autovacuum would, eventually: statistics and visibility map
        conn.exec_driver_sql("CHECKPOINT")  # the bulk load's dirty pages are written now, not during measurements
        vacuum = time.perf_counter() - t
    stored = seeded_count(db)
    db.dispose()
    if stored != target and have <= target:
        raise RuntimeError(f"expected {target} seed Patients, found {stored}")
    return {"target": target, "already": have, "seeded": done, "method": method, "seconds": round(seconds, 1),
            "per_second": round(done / seconds, 1) if done else None, "processes": processes, "chunk": chunk,
            "vacuum_analyze_seconds": round(vacuum, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url")
    ap.add_argument("target", type=int)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=1000)
    ap.add_argument("--method", choices=("write", "copy"), default="write")
    args = ap.parse_args()
    print(seed(args.url, args.target, processes=args.processes, chunk=args.chunk, method=args.method, progress=print))


if __name__ == "__main__":
    main()

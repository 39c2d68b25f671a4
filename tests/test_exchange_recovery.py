"""Crash and outage proofs of the outbound sync: a real `flask outbox run` process, the Medplum peer over HTTP.

- kill -9 of the worker while a delivery is in flight (the peer delays it), restart: every change is on the
  peer exactly once (versions on the peer = changes here, one PUT each);
- a 60-second outage (every request answered 503 with Retry-After) with 1,000 queued changes: all delivered
  afterwards, none twice, each resource's versions on the peer in our order.
"""
from __future__ import annotations

import os
import signal
import time

import pytest
from exchange_helpers import careplan, endpoint, peer_history, peer_writes, start_worker, stop, sync_rows, wait_for
from subscription_helpers import clear_faults, fault

from helpers import patient, post, put
from service import interactions


def _changes(app, pid: str, resources: int, versions: int, *, per_unit: int = 100) -> list[str]:
    """`resources` CarePlans with `versions` versions each (titles v1..vN), written in units of `per_unit` writes."""
    db = app.extensions["iop.db"]
    ids: list[str] = []

    def create(unit):
        for _ in range(resources):
            ids.append(interactions.create(unit, careplan(pid, "v1")).stored.id)

    interactions.run(db, create)
    for v in range(2, versions + 1):
        for start in range(0, resources, per_unit):
            def update(unit, v=v, chunk=ids[start:start + per_unit]):
                for rid in chunk:
                    interactions.update(unit, "CarePlan", rid, careplan(pid, f"v{v}", id=rid))
            interactions.run(db, update)
    return ids


def _all_delivered(app, total: int):
    return lambda: len(sync_rows(app, "delivered")) == total


@pytest.mark.slow
def test_kill_9_mid_delivery_then_restart_delivers_every_change_exactly_once(client, app, peer, database_url, tmp_path):
    put(client, "Endpoint/partner", endpoint(peer, push=["CarePlan"]))
    pid = post(client, "Patient", patient()).get_json()["id"]
    ids = _changes(app, pid, resources=5, versions=3)
    fault(peer, status=0, count=1, delayMs=2500, match="PUT ")  # the first PUT stays in flight for 2.5 s
    worker = start_worker(database_url, tmp_path / "worker.log", OUTBOX_LEASE_SECONDS=4, OUTBOX_BACKOFF_SECONDS=0.1, OUTBOX_MAX_BACKOFF_SECONDS=1)
    try:
        in_flight = wait_for(lambda: [r for r in sync_rows(app, "pending") if r.attempts == 1], 30, "the first claim")
        time.sleep(0.5)  # the PUT is at the peer, waiting
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=5)
        assert len(sync_rows(app, "delivered")) == 0 and in_flight[0].status == "pending"
        worker = start_worker(database_url, tmp_path / "worker.log", OUTBOX_LEASE_SECONDS=4, OUTBOX_BACKOFF_SECONDS=0.1, OUTBOX_MAX_BACKOFF_SECONDS=1)
        wait_for(_all_delivered(app, 15), 60, "every change delivered after the restart")
    finally:
        errors = stop(worker, tmp_path / "worker.log")
    assert "Traceback" not in errors, errors
    redelivered = [r for r in sync_rows(app) if r.attempts > 1]
    assert [r.pk for r in redelivered] == [in_flight[0].pk]  # only the message in flight was tried again
    for rid in ids:
        assert [v["title"] for v in peer_history(peer, f"CarePlan/{rid}")] == ["v1", "v2", "v3"]  # exactly once, in order
    assert len(peer_writes(peer)) == 15  # one accepted PUT per change: the retry found its version there and wrote nothing


@pytest.mark.slow
def test_1000_changes_through_a_60_second_outage_arrive_once_and_in_order(client, app, peer, database_url, tmp_path):
    put(client, "Endpoint/partner", endpoint(peer, push=["CarePlan"]))
    pid = post(client, "Patient", patient()).get_json()["id"]
    fault(peer, status=503, count=1_000_000, retryAfter="1")  # the partner is down
    down_at = time.monotonic()
    settings = {"OUTBOX_BACKOFF_SECONDS": 0.5, "OUTBOX_MAX_BACKOFF_SECONDS": 2, "OUTBOX_MAX_ATTEMPTS": 100, "OUTBOX_BATCH": 200}
    workers = [start_worker(database_url, tmp_path / "worker.log", **settings)
               for _ in range(2 if database_url.startswith("postgresql") else 1)]  # PostgreSQL: two share the queue
    try:
        ids = _changes(app, pid, resources=100, versions=10)
        assert len(sync_rows(app)) == 1000
        time.sleep(max(0.0, 60 - (time.monotonic() - down_at)))
        assert len(sync_rows(app, "delivered")) == 0 and len(sync_rows(app, "dead")) == 0
        assert all(w.poll() is None for w in workers), (tmp_path / "worker.log").read_text()[-3000:]
        clear_faults(peer)
        up_at = time.monotonic()
        wait_for(_all_delivered(app, 1000), 120, "all 1,000 changes delivered after the outage", every=0.5)
        recovery = time.monotonic() - up_at
    finally:
        errors = "".join(stop(w, tmp_path / "worker.log") for w in workers)
    assert "Traceback" not in errors, errors
    for rid in ids:
        assert [v["title"] for v in peer_history(peer, f"CarePlan/{rid}")] == [f"v{n}" for n in range(1, 11)]
    print(f"recovered in {recovery:.1f} s")

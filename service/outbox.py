"""The durable outbox: side effects written as rows in the unit's transaction, delivered after commit by a worker.

Delivery is at least once. A worker leases a batch of due rows in one statement (PostgreSQL: `FOR UPDATE
SKIP LOCKED`, so several workers share the queue; SQLite serialises claims through its write lock) by moving
their `next_attempt_at` past the longest possible delivery; just before it sends one, it counts the attempt and
renews that row's lease (`start`, one round trip). If the worker dies before recording the result, the lease runs
out and the row is claimed again; a row leased but never started is not counted as tried. The batch's results are
recorded in one transaction (one UPDATE on PostgreSQL), fenced by the attempt number, so a worker whose lease ran
out cannot overwrite a newer attempt's result. A batch holds at most one row per `ordering_key` (the oldest
pending one), so rows that share it are delivered one after the other in `pk` order; a dead row no longer holds
back the rows behind it (docs/subscriptions.md).

Retryable failures (connection error, timeout, 5xx, 408, 429) are retried with exponential backoff
and full jitter, at least Retry-After, at most IOP_OUTBOX_MAX_BACKOFF_SECONDS; other 4xx answers, and
the IOP_OUTBOX_MAX_ATTEMPTS-th failure, make the row dead with the last error. See
https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/ and RFC 9110 §10.2.3.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import requests
from flask import Flask
from sqlalchemy import Connection, Table, exists, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from . import __version__, dates, interactions
from .db import Database
from .tables import outbox_message

log = logging.getLogger(__name__)

PENDING, DELIVERED, DEAD, CANCELLED = "pending", "delivered", "dead", "cancelled"
HELD = "held"  # not sent and not retried: a condition outside the queue (a 42 CFR Part 2 consent) is missing; last_error says which
STATUSES = (PENDING, DELIVERED, DEAD, CANCELLED, HELD)
CONNECT_TIMEOUT = 3.05  # seconds; a little over a multiple of 3 s, the TCP retransmission window (requests' advice)
MAX_TIMEOUT = 60  # the longest read timeout a channel may ask for
LEASE_MARGIN = 30  # seconds a claim outlives the longest possible delivery
CLAIM_BATCH = 50  # rows leased by one statement (at most one per ordering_key)
BATCH_SECONDS = 2.0  # a batch starts no new send after this; its rest goes back to the queue (a slow receiver)
MAX_RESPONSE_BYTES = 65536  # of an error response kept for the message's last_error
FHIR_JSON = "application/fhir+json"


@dataclass(frozen=True)
class Message:
    """One outbox row."""

    pk: int
    channel: str
    target: str
    kind: str
    ordering_key: str
    dedupe_key: str
    payload: str
    status: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    delivered_at: datetime | None
    last_error: str | None
    later_delivered: int | None = None  # a later row with this ordering_key delivered already (known when leased)


@dataclass(frozen=True)
class Destination:
    """Where and how to send a message (POST unless the channel says otherwise)."""

    url: str
    headers: dict[str, str]
    timeout: float | None = None  # read timeout; the setting when None
    method: str = "POST"


@dataclass(frozen=True)
class Attempt:
    """What one POST did."""

    ok: bool
    retryable: bool = False
    error: str | None = None
    retry_after: float | None = None  # seconds the receiver asked us to wait


@dataclass(frozen=True)
class Outcome:
    """What becomes of a message after an attempt: its new status, the error, when to try again."""

    status: str
    error: str | None = None
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class Channel:
    """A kind of destination: `destination` resolves a row (or says why it is cancelled), `after` acts on a
    result in the same transaction that records it, `due` queues periodic rows (heartbeats) before a round.
    `attempt`, when given, replaces the plain send of one started message (a channel that reads before it writes);
    its last argument is a dict shared by the round's attempts, for what it reads once per round."""

    destination: Callable[[Connection, Message], Destination | str]
    after: Callable[[interactions.Unit, Message, Outcome], None]
    due: Callable[[Database, datetime, interactions.Options], None]
    attempt: Callable[[Database, requests.Session, Message, dict, datetime, dict], Outcome] | None = None


def channels() -> dict[str, Channel]:
    """The channels by name (a plain table; imported late because channels build their rows with this module)."""
    from . import resthook, sync_outbound

    return {resthook.NAME: resthook.CHANNEL, sync_outbound.NAME: sync_outbound.CHANNEL}


# ------------------------------------------------------------------------------- writing rows (inside a unit)
def row(channel: str, target: str, kind: str, ordering_key: str, dedupe_key: str, payload: str, now: datetime) -> dict:
    """A new pending outbox row, due now."""
    return {"channel": channel, "target": target, "kind": kind, "ordering_key": ordering_key, "dedupe_key": dedupe_key,
            "payload": payload, "status": PENDING, "attempts": 0, "next_attempt_at": now, "created_at": now}


def enqueue(conn: Connection, rows: list[dict]) -> None:
    """Insert rows in the caller's transaction; a row whose dedupe_key exists already is skipped."""
    if rows:
        conn.execute(_insert(conn, outbox_message).on_conflict_do_nothing(index_elements=["dedupe_key"]), rows)


def _insert(conn: Connection, table: Table):
    return (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)


def upsert(conn: Connection, table: Table, values: dict, keys: list[str], updates: dict):
    """INSERT … ON CONFLICT (keys) DO UPDATE SET updates, on either database."""
    return _insert(conn, table).values(**values).on_conflict_do_update(index_elements=keys, set_=updates)


# ------------------------------------------------------------------------------- claiming and recording
def lease(settings: dict) -> timedelta:
    """How long a claimed row is left alone: longer than any delivery attempt can take (IOP_OUTBOX_LEASE_SECONDS overrides)."""
    if settings.get("OUTBOX_LEASE_SECONDS"):
        return timedelta(seconds=settings["OUTBOX_LEASE_SECONDS"])
    return timedelta(seconds=CONNECT_TIMEOUT + max(settings["OUTBOX_TIMEOUT_SECONDS"], MAX_TIMEOUT) + LEASE_MARGIN)


def lease_due(db: Database, now: datetime, lease_for: timedelta, limit: int, skip: Collection[int] = ()) -> list[Message]:
    """Lease up to `limit` due rows (not in `skip`), oldest first, each the first pending row of its ordering_key.

    One UPDATE … WHERE pk IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED) RETURNING statement, so several workers
    share the queue; a row stays pending while leased, so the rows behind it (same ordering_key) wait. Every row
    of the batch gets the same `next_attempt_at` (now + lease_for): the token `start` checks; `later_delivered`
    comes with each row (a channel that must not send an older version over a newer one asks no more). No attempt is
    counted here: `start` counts it just before the row is sent, so a row leased but never sent (its worker died
    first) is not treated as a redelivery. On PostgreSQL the commit does not wait for the WAL flush
    (synchronous_commit off for this transaction only): a lease lost in a database crash only means the row is
    leased again.
    """
    M, C, E = outbox_message, outbox_message.alias("candidate"), outbox_message.alias("earlier")
    earlier = select(E.c.pk).where(E.c.ordering_key == C.c.ordering_key, E.c.status == PENDING, E.c.pk < C.c.pk)
    pick = select(C.c.pk).where(C.c.status == PENDING, C.c.next_attempt_at <= now, ~exists(earlier)).order_by(C.c.pk).limit(limit)
    if skip:
        pick = pick.where(C.c.pk.not_in(list(skip)))
    if db.dialect == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    picked = pick.cte("picked").prefix_with("MATERIALIZED", dialect="postgresql")  # evaluated once, whatever the plan
    L = outbox_message.alias("later")
    later = select(L.c.pk).where(L.c.ordering_key == M.c.ordering_key, L.c.pk > M.c.pk, L.c.status == DELIVERED).limit(1)
    stmt = (update(M).where(M.c.pk.in_(select(picked.c.pk)), M.c.status == PENDING)
            .values(next_attempt_at=now + lease_for).returning(*M.c, later.scalar_subquery().label("later_delivered")))
    with db.write() as conn:
        if db.dialect == "postgresql":
            conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
        found = conn.execute(stmt).all()
    return sorted((Message(**r._mapping) for r in found), key=lambda m: m.pk)


def start(conn: Connection, msg: Message, now: datetime, lease_for: timedelta) -> Message | None:
    """Count one attempt of a leased row just before it is sent and renew its lease from now; None when the lease
    was lost (it ran out and another worker leased the row, or the row is no longer pending).

    The counted attempt is what makes a later claim of the row a redelivery (a channel may then read before it
    writes) and what `record` is fenced by."""
    M = outbox_message
    renewed = now + lease_for
    stmt = (update(M).where(M.c.pk == msg.pk, M.c.status == PENDING, M.c.attempts == msg.attempts,
                            M.c.next_attempt_at == msg.next_attempt_at)
            .values(attempts=M.c.attempts + 1, next_attempt_at=renewed))
    if conn.execute(stmt).rowcount != 1:
        return None
    return dataclasses.replace(msg, attempts=msg.attempts + 1, next_attempt_at=renewed)


@contextlib.contextmanager
def starting(db: Database) -> Iterator[Callable[[Message, datetime, timedelta], Message | None]]:
    """`start` for a round: on PostgreSQL one connection in autocommit whose commits do not wait for the WAL flush
    (each start is one round trip; a start lost in a database crash is the lost claim of `lease_due`); on SQLite a
    write transaction per start (its write lock)."""
    if db.dialect != "postgresql":
        def start_one(msg: Message, now: datetime, lease_for: timedelta) -> Message | None:
            with db.write() as conn:
                return start(conn, msg, now, lease_for)
        yield start_one
        return
    with db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("SET synchronous_commit TO OFF")
        try:
            yield lambda msg, now, lease_for: start(conn, msg, now, lease_for)
        finally:
            conn.exec_driver_sql("RESET synchronous_commit")


def claim(db: Database, now: datetime, lease_for: timedelta, skip: Collection[int] = ()) -> Message | None:
    """Lease and start the oldest due row (not in `skip`): one attempt counted, as a worker does just before sending."""
    with starting(db) as start_one:
        for msg in lease_due(db, now, lease_for, 1, skip):
            return start_one(msg, now, lease_for)
    return None


@dataclass(frozen=True)
class Result:
    """A started message, what became of it and when the attempt ended."""

    msg: Message
    outcome: Outcome
    at: datetime


def record(db: Database, msg: Message, outcome: Outcome, options: interactions.Options, now: datetime) -> bool:
    """Store one attempt's outcome (see `record_all`); False when the claim was lost."""
    return bool(record_all(db, [Result(msg, outcome, now)], options))


def record_all(db: Database, results: list[Result], options: interactions.Options,
               unstarted: Collection[Message] = (), now: datetime | None = None) -> list[Result]:
    """Store a batch's outcomes and let each channel act on them, in one transaction; returns the results recorded
    (a result whose claim was lost, fenced by the attempt number, is not). Leased rows that were not started go
    back to the queue, due at `now`."""
    chans = channels()
    recorded: list[Result] = []

    def work(unit: interactions.Unit) -> None:
        recorded[:] = _mark_all(unit.conn, results)
        _release(unit.conn, unstarted, now or unit.now)
        for r in recorded:
            channel = chans.get(r.msg.channel)
            if channel:
                channel.after(unit, r.msg, r.outcome)

    if results or unstarted:
        interactions.run(db, work, dataclasses.replace(options, server_write=True))
    return recorded


_MARK_PG = text("""
UPDATE outbox_message AS m SET status = v.status, last_error = coalesce(v.error, m.last_error),
       delivered_at = coalesce(v.delivered_at, m.delivered_at), next_attempt_at = coalesce(v.next_at, m.next_attempt_at)
FROM unnest(CAST(:pk AS bigint[]), CAST(:attempts AS integer[]), CAST(:status AS text[]), CAST(:error AS text[]),
            CAST(:delivered_at AS timestamp[]), CAST(:next_at AS timestamp[])) AS v(pk, attempts, status, error, delivered_at, next_at)
WHERE m.pk = v.pk AND m.attempts = v.attempts AND m.status = 'pending'
RETURNING m.pk""")


def _mark_all(conn: Connection, results: list[Result]) -> list[Result]:
    """The outcomes written, fenced by attempt number and status; on PostgreSQL one statement for the batch."""
    if conn.dialect.name != "postgresql":
        return [r for r in results if _mark(conn, r.msg, r.outcome, r.at)]
    if not results:
        return []
    columns = {"pk": [r.msg.pk for r in results], "attempts": [r.msg.attempts for r in results],
               "status": [r.outcome.status for r in results], "error": [r.outcome.error for r in results],
               "delivered_at": [r.at if r.outcome.status == DELIVERED else None for r in results],
               "next_at": [r.outcome.next_attempt_at for r in results]}
    written = set(conn.execute(_MARK_PG, columns).scalars())
    return [r for r in results if r.msg.pk in written]


def _mark(conn: Connection, msg: Message, outcome: Outcome, now: datetime) -> bool:
    values: dict = {"status": outcome.status}
    if outcome.error is not None:
        values["last_error"] = outcome.error
    if outcome.status == DELIVERED:
        values["delivered_at"] = now
    if outcome.next_attempt_at is not None:
        values["next_attempt_at"] = outcome.next_attempt_at
    M = outbox_message
    fenced = update(M).where(M.c.pk == msg.pk, M.c.attempts == msg.attempts, M.c.status == PENDING).values(**values)
    return conn.execute(fenced).rowcount == 1


def _release(conn: Connection, msgs: Collection[Message], now: datetime) -> None:
    """Leased rows not started: due again at once (unless their lease was lost meanwhile)."""
    M = outbox_message
    for token, group in _by_token(msgs).items():
        conn.execute(update(M).where(M.c.pk.in_([m.pk for m in group]), M.c.status == PENDING, M.c.next_attempt_at == token)
                     .values(next_attempt_at=now))


def _by_token(msgs: Collection[Message]) -> dict[datetime, list[Message]]:
    groups: dict[datetime, list[Message]] = {}
    for m in msgs:
        groups.setdefault(m.next_attempt_at, []).append(m)
    return groups


# ------------------------------------------------------------------------------- one delivery round
def deliver_due(app: Flask, *, now: datetime | None = None, limit: int | None = None,
                session: requests.Session | None = None, settings: dict | None = None,
                stopping: threading.Event | None = None) -> dict[str, int]:
    """Queue due periodic rows, then deliver up to `limit` due messages; returns how many ended in each status.

    Batches of up to CLAIM_BATCH rows are leased by one statement, sent one after the other on one HTTP session
    (keep-alive), and their outcomes recorded by one transaction. `now` fixes the clock (tests); `settings`
    replaces the app's IOP settings (tests use short backoffs); `stopping` ends the round after the message in flight.
    """
    settings = settings or app.config["IOP"]
    db: Database = app.extensions["iop.db"]
    options = interactions.Options(settings["BASE_URL"] or "", settings["MAX_JSON_DEPTH"], app.extensions.get("iop.required_profiles", {}))
    counts: Counter[str] = Counter()
    own = session is None
    session = session or requests.Session()
    try:
        for channel in channels().values():
            channel.due(db, now or dates.utcnow(), options)
        retried: set[int] = set()  # one attempt per message and round, however short its backoff
        left = limit or settings["OUTBOX_BATCH"]
        memo: dict = {}  # what channels read once per round (an Endpoint's settings)
        with starting(db) as start_one:
            while left > 0 and not (stopping and stopping.is_set()):
                leased = lease_due(db, now or dates.utcnow(), lease(settings), min(left, CLAIM_BATCH), retried)
                if not leased:
                    break
                left -= len(leased)
                results, unstarted = _send_batch(db, session, leased, start_one, settings, now, stopping, memo)
                for r in record_all(db, results, options, unstarted, now):
                    counts[r.outcome.status] += 1
                retried.update(r.msg.pk for r in results if r.outcome.status == PENDING)  # back in the queue
    finally:
        if own:
            session.close()
    return dict(counts)


def _send_batch(db: Database, session: requests.Session, leased: list[Message], start_one: Callable, settings: dict,
                now: datetime | None, stopping: threading.Event | None, memo: dict) -> tuple[list[Result], list[Message]]:
    """Start and send the leased messages in order; those not started (stopping, or the batch ran BATCH_SECONDS) are
    returned to be released, so a slow receiver does not keep the rest of the batch leased."""
    results: list[Result] = []
    began = time.monotonic()
    for i, msg in enumerate(leased):
        if (stopping and stopping.is_set()) or time.monotonic() - began > BATCH_SECONDS:
            return results, leased[i:]
        at = now or dates.utcnow()
        started = start_one(msg, at, lease(settings))
        if started is None:  # the lease ran out and another worker has the row
            continue
        outcome = attempt(db, session, started, settings, at, memo)
        results.append(Result(started, outcome, now or dates.utcnow()))
    return results, []


def attempt(db: Database, session: requests.Session, msg: Message, settings: dict, now: datetime,
            memo: dict | None = None) -> Outcome:
    """Send one started message and decide what becomes of it (`memo`: the round's cache, see Channel)."""
    channel = channels().get(msg.channel)
    if channel is None:
        return Outcome(DEAD, f"unknown channel '{msg.channel}'")
    if channel.attempt is not None:
        return channel.attempt(db, session, msg, settings, now, {} if memo is None else memo)
    with db.read() as conn:
        destination = channel.destination(conn, msg)
    if isinstance(destination, str):
        return Outcome(CANCELLED, destination)
    return decide(send(session, destination, msg.payload, settings), msg.attempts, settings, now)


def decide(result: Attempt, attempts: int, settings: dict, now: datetime, rng: Callable[[], float] = random.random) -> Outcome:
    """Delivered, retried later (backoff), or dead (permanent failure, or the last attempt allowed)."""
    if result.ok:
        return Outcome(DELIVERED)
    if not result.retryable:
        return Outcome(DEAD, result.error)
    if attempts >= settings["OUTBOX_MAX_ATTEMPTS"]:
        return Outcome(DEAD, f"{result.error} (gave up after {attempts} attempts)")
    delay = backoff(attempts, result.retry_after, settings["OUTBOX_BACKOFF_SECONDS"], settings["OUTBOX_MAX_BACKOFF_SECONDS"], rng)
    return Outcome(PENDING, result.error, now + timedelta(seconds=delay))


def backoff(attempts: int, retry_after: float | None, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Seconds before the next attempt: full jitter over base·2^(attempts-1), at least Retry-After, at most `cap`."""
    ceiling = min(cap, base * 2.0 ** min(attempts - 1, 64))
    delay = rng() * ceiling
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, cap)


def retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds from `now`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3); None when absent or invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return max(0.0, (when - now).total_seconds())


# ------------------------------------------------------------------------------- the HTTP POST
def send(session: requests.Session, destination: Destination, payload: str, settings: dict) -> Attempt:
    """Send the payload once (POST unless the destination says otherwise), with connect and read timeouts, following no redirect."""
    read = float(destination.timeout or settings["OUTBOX_TIMEOUT_SECONDS"])
    headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON, "User-Agent": f"iop-fhir-service/{__version__}", **destination.headers}
    try:
        response = session.request(destination.method, destination.url, data=payload.encode(), headers=headers,
                                   timeout=(min(CONNECT_TIMEOUT, read), read), allow_redirects=False, stream=True)
    except requests.ConnectTimeout:
        return Attempt(False, True, f"could not connect to {destination.url} within {min(CONNECT_TIMEOUT, read):g} s")
    except requests.Timeout:
        return Attempt(False, True, f"no response from {destination.url} within {read:g} s")
    except requests.ConnectionError as err:
        return Attempt(False, True, f"connection to {destination.url} failed: {_first_line(err)}")
    except requests.RequestException as err:
        return Attempt(False, False, f"request to {destination.url} failed: {_first_line(err)}")
    with response:
        if 200 <= response.status_code < 300:
            return Attempt(True)
        body = _read_some(response)
    retryable = response.status_code >= 500 or response.status_code in (408, 429)
    return Attempt(False, retryable, _describe(response, body), retry_after(response.headers.get("Retry-After"), dates.utcnow()))


def _read_some(response: requests.Response) -> bytes:
    try:
        return response.raw.read(MAX_RESPONSE_BYTES, decode_content=True) or b""
    except (requests.RequestException, OSError, ValueError):
        return b""


def _describe(response: requests.Response, body: bytes) -> str:
    """'HTTP 400 Bad Request: <the OperationOutcome's text>' (or the start of the body)."""
    head = f"HTTP {response.status_code} {response.reason or ''}".rstrip()
    text = body.decode("utf-8", "replace")
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and doc.get("resourceType") == "OperationOutcome":
        issues = [i for i in doc.get("issue") or [] if isinstance(i, dict)]
        texts = [i.get("diagnostics") or (i.get("details") or {}).get("text") or i.get("code") for i in issues]
        text = "; ".join(str(t) for t in texts if t)
    text = " ".join(text.split())[:500]
    if response.is_redirect:
        text = f"redirect to {response.headers.get('Location')} not followed"
    return f"{head}: {text}" if text else head


def _first_line(err: Exception) -> str:
    return str(err).splitlines()[0][:300] if str(err) else type(err).__name__


# ------------------------------------------------------------------------------- operators
def messages(db: Database, status: str | None = None, limit: int = 100) -> list[Message]:
    """Rows in queue order (oldest first), optionally of one status."""
    stmt = select(outbox_message).order_by(outbox_message.c.pk).limit(limit)
    if status:
        stmt = stmt.where(outbox_message.c.status == status)
    with db.read() as conn:
        return [Message(**r._mapping) for r in conn.execute(stmt)]


def get(db: Database, pk: int) -> Message | None:
    with db.read() as conn:
        found = conn.execute(select(outbox_message).where(outbox_message.c.pk == pk)).first()
    return Message(**found._mapping) if found else None


def retry(db: Database, now: datetime, pk: int | None = None) -> int:
    """Make a dead, cancelled or held row (or, without `pk`, every dead row) pending again with fresh attempts; returns how many.

    A held row's condition is checked again when it is sent: still unmet, it is held again."""
    M = outbox_message
    where = (M.c.pk == pk, M.c.status.in_((DEAD, CANCELLED, HELD))) if pk is not None else (M.c.status == DEAD,)
    with db.write() as conn:
        return conn.execute(update(M).where(*where).values(status=PENDING, attempts=0, next_attempt_at=now)).rowcount


# ------------------------------------------------------------------------------- the worker loop
def run(app: Flask, stopping: threading.Event, *, batch: int | None = None) -> None:
    """Deliver until `stopping` is set: straight on while rows are due, otherwise every IOP_OUTBOX_POLL_SECONDS."""
    settings = app.config["IOP"]
    with requests.Session() as s:  # one connection pool for the worker's life
        while not stopping.is_set():
            try:
                with app.app_context():
                    done = sum(deliver_due(app, limit=batch, session=s, stopping=stopping).values())
            except Exception:  # a database outage must not end the worker; the rows wait in the table
                log.exception("outbox round failed; trying again in %s s", settings["OUTBOX_POLL_SECONDS"])
                done = 0
            if done < (batch or settings["OUTBOX_BATCH"]):
                stopping.wait(settings["OUTBOX_POLL_SECONDS"])


class Worker(threading.Thread):
    """The delivery loop as a daemon thread of the service (IOP_OUTBOX_WORKER=on)."""

    def __init__(self, app: Flask):
        super().__init__(name="iop-outbox-worker", daemon=True)
        self.app = app
        self.stopping = threading.Event()

    def run(self) -> None:
        run(self.app, self.stopping)

    def stop(self, timeout: float | None = None) -> None:
        self.stopping.set()
        self.join(timeout)


def init_app(app: Flask) -> None:
    """Start the background worker when IOP_OUTBOX_WORKER is on (production runs `flask outbox run` instead)."""
    if app.config["IOP"]["OUTBOX_WORKER"] == "on":
        worker = Worker(app)
        app.extensions["iop.outbox_worker"] = worker
        worker.start()

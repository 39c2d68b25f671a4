"""The durable outbox: side effects written as rows in the unit's transaction, delivered after commit by a worker.

Delivery is at least once. A worker claims one due row at a time (PostgreSQL: `FOR UPDATE SKIP
LOCKED`, so several workers share the queue; SQLite serialises claims through its write lock): the
claim counts an attempt and leases the row by moving `next_attempt_at` past the longest possible
delivery. If the worker dies before recording the result, the lease runs out and the row is claimed
again. Results are recorded fenced by the attempt number, so a worker whose lease ran out cannot
overwrite a newer attempt's result. Rows that share an `ordering_key` are delivered one after the
other in `pk` order; a dead row no longer holds back the rows behind it (docs/subscriptions.md).

Retryable failures (connection error, timeout, 5xx, 408, 429) are retried with exponential backoff
and full jitter, at least Retry-After, at most IOP_OUTBOX_MAX_BACKOFF_SECONDS; other 4xx answers, and
the IOP_OUTBOX_MAX_ATTEMPTS-th failure, make the row dead with the last error. See
https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/ and RFC 9110 §10.2.3.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import random
import threading
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import requests
from flask import Flask
from sqlalchemy import Connection, Table, exists, select, update
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
    `attempt`, when given, replaces the plain send of one claimed message (a channel that reads before it writes)."""

    destination: Callable[[Connection, Message], Destination | str]
    after: Callable[[interactions.Unit, Message, Outcome], None]
    due: Callable[[Database, datetime, interactions.Options], None]
    attempt: Callable[[Database, requests.Session, Message, dict, datetime], Outcome] | None = None


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


def claim(db: Database, now: datetime, lease_for: timedelta, skip: Collection[int] = ()) -> Message | None:
    """Claim the oldest due row (not in `skip`) that no earlier pending row with its ordering_key holds back (one attempt).

    One UPDATE … WHERE pk = (SELECT … FOR UPDATE SKIP LOCKED) RETURNING statement. On PostgreSQL its commit does not
    wait for the WAL flush (synchronous_commit off for this transaction only): a claim lost in a database crash only
    means the row is claimed again, which at-least-once delivery allows; results are recorded durably (`record`).
    """
    M, C, E = outbox_message, outbox_message.alias("candidate"), outbox_message.alias("earlier")
    earlier = select(E.c.pk).where(E.c.ordering_key == C.c.ordering_key, E.c.status == PENDING, E.c.pk < C.c.pk)
    pick = select(C.c.pk).where(C.c.status == PENDING, C.c.next_attempt_at <= now, ~exists(earlier)).order_by(C.c.pk).limit(1)
    if skip:
        pick = pick.where(C.c.pk.not_in(list(skip)))
    if db.dialect == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    stmt = (update(M).where(M.c.pk == pick.scalar_subquery(), M.c.status == PENDING)
            .values(attempts=M.c.attempts + 1, next_attempt_at=now + lease_for).returning(*M.c))
    with db.write() as conn:
        if db.dialect == "postgresql":
            conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
        found = conn.execute(stmt).first()
    return Message(**found._mapping) if found is not None else None


def record(db: Database, msg: Message, outcome: Outcome, options: interactions.Options, now: datetime) -> bool:
    """Store an attempt's outcome and let the channel act on it, in one transaction; False when the claim was lost."""
    channel = channels().get(msg.channel)
    recorded: list[bool] = []

    def work(unit: interactions.Unit) -> None:
        recorded.clear()
        if _mark(unit.conn, msg, outcome, now):
            recorded.append(True)
            if channel:
                channel.after(unit, msg, outcome)

    interactions.run(db, work, dataclasses.replace(options, server_write=True))
    return bool(recorded)


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


# ------------------------------------------------------------------------------- one delivery round
def deliver_due(app: Flask, *, now: datetime | None = None, limit: int | None = None,
                session: requests.Session | None = None, settings: dict | None = None) -> dict[str, int]:
    """Queue due periodic rows, then deliver up to `limit` due messages; returns how many ended in each status.

    `now` fixes the clock (tests); `settings` replaces the app's IOP settings (tests use short backoffs).
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
        for _ in range(limit or settings["OUTBOX_BATCH"]):
            at = now or dates.utcnow()
            msg = claim(db, at, lease(settings), retried)
            if msg is None:
                break
            outcome = attempt(db, session, msg, settings, at)
            if record(db, msg, outcome, options, now or dates.utcnow()):
                counts[outcome.status] += 1
            if outcome.status == PENDING:  # only a row back in the queue could be claimed again this round
                retried.add(msg.pk)
    finally:
        if own:
            session.close()
    return dict(counts)


def attempt(db: Database, session: requests.Session, msg: Message, settings: dict, now: datetime) -> Outcome:
    """Send one claimed message and decide what becomes of it."""
    channel = channels().get(msg.channel)
    if channel is None:
        return Outcome(DEAD, f"unknown channel '{msg.channel}'")
    if channel.attempt is not None:
        return channel.attempt(db, session, msg, settings, now)
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
                    done = sum(deliver_due(app, limit=batch, session=s).values())
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

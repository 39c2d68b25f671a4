"""The rest-hook channel of topic-based Subscriptions: where a notification goes, what its delivery does, heartbeats.

The endpoint and headers are read from the Subscription's current version when a notification is
sent (an endpoint the client fixed is used for what is still queued; its secrets are not copied into
the outbox). What a result does to the Subscription, written through the normal write path:
- a delivered handshake makes a `requested` Subscription `active`;
- a dead handshake makes it `error`, and a dead event or heartbeat makes an `active` one `error`
  (the IG: the server updates the status, the client re-activates it after recovering);
- a Subscription that is `off` or deleted gets nothing more: its queued rows are cancelled.
See: https://hl7.org/fhir/uv/subscriptions-backport/channels.html#rest-hook and errors.html
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from sqlalchemy import Connection

from . import interactions, notifications, outbox, repository, subscriptions
from .db import Database
from .errors import FhirError, Unprocessable

log = logging.getLogger(__name__)

NAME = subscriptions.CHANNEL
EPOCH = datetime(1970, 1, 1)


def destination(conn: Connection, msg: outbox.Message) -> outbox.Destination | str:
    """The Subscription's endpoint now, or why the message is not sent."""
    sid = msg.target.removeprefix("Subscription/")
    stored = repository.current(conn, "Subscription", sid)
    if stored is None or stored.deleted:
        return f"Subscription/{sid} has been deleted; not sent"
    try:
        sub = subscriptions.read(json.loads(stored.content or "{}"))
    except Unprocessable as err:
        return f"Subscription/{sid} can no longer be served: {err}"
    if sub.status == "off":
        return f"Subscription/{sid} is off; not sent"
    return outbox.Destination(sub.endpoint, dict(sub.headers), sub.timeout)


def after(unit: interactions.Unit, msg: outbox.Message, outcome: outbox.Outcome) -> None:
    """Activate a Subscription on a delivered handshake; put it in error when a notification is dead."""
    sid = msg.target.removeprefix("Subscription/")
    handshake = msg.kind == "handshake"
    if handshake and outcome.status == outbox.DELIVERED:
        _set_status(unit, sid, "active", when="requested")
    elif outcome.status == outbox.DEAD:
        what = "handshake" if handshake else f"{msg.kind} (outbox message {msg.pk})"
        _set_status(unit, sid, "error", when="requested" if handshake else "active",
                    error=f"{what} could not be delivered: {outcome.error}")


def _set_status(unit: interactions.Unit, sid: str, status: str, *, when: str, error: str | None = None) -> None:
    stored = unit.current("Subscription", sid, lock=True)
    if stored is None or stored.deleted:
        return
    res = json.loads(stored.content or "{}")
    if res.get("status") != when:  # the client changed it meanwhile: its choice stands
        return
    res["status"] = status
    res.pop("error", None)
    if error:
        res["error"] = error[:2000]
    try:
        interactions.update(unit, "Subscription", sid, res)
    except FhirError as err:  # refused before anything was written (e.g. a profile now required): the result still counts
        log.warning("could not set Subscription/%s to %s: %s", sid, status, err)


# ------------------------------------------------------------------------------- heartbeats
def due(db: Database, now: datetime, options: interactions.Options) -> None:
    """Queue a heartbeat for each active Subscription with a heartbeat period that was not notified within it.

    "Notified" means a notification was queued for it (events, handshake, heartbeat); a heartbeat
    queued by two workers at once is one row (its dedupe key names the period it belongs to).
    """
    with db.read() as conn:
        subs = [s for s in subscriptions.current(conn) if s.status == "active" and s.heartbeat and s.live(now)]
        if not subs:
            return
        states = subscriptions.state(conn, [s.id for s in subs])
    late = [s for s in subs if _late(states.get(s.id), s.heartbeat or 0, now)]
    if not late:
        return
    with db.write() as conn:
        for sub in late:
            events, _, base_url = states.get(sub.id) or (0, None, None)
            _heartbeat(conn, sub, events, base_url or options.base_url, now)


def _late(state: tuple | None, period: int, now: datetime) -> bool:
    last = state[1] if state else None
    return last is None or now - last >= timedelta(seconds=period)


def _heartbeat(conn: Connection, sub: subscriptions.Subscription, events: int, base_url: str, now: datetime) -> None:
    status = notifications.Status(base_url, sub.id, sub.topic.url, "active", events, sub.content)
    payload = notifications.notification(status, "heartbeat", now)
    slot = int((now - EPOCH).total_seconds() // (sub.heartbeat or 1))
    key = f"Subscription/{sub.id}|heartbeat"
    outbox.enqueue(conn, [outbox.row(NAME, f"Subscription/{sub.id}", "heartbeat", key, f"{key}|{slot}", payload, now)])
    subscriptions.notified(conn, sub.id, now)


CHANNEL = outbox.Channel(destination, after, due)

"""Topic-based Subscriptions (R5 backport on R4): what a Subscription asks for, which are live, and the pre-commit stage.

A client creates a Subscription through the normal REST API with `criteria` = a topic canonical
(or plain R4 criteria `Task?…`, taken as the Gravity Task topic with that filter), filters in
`_criteria.extension` (backport-filter-criteria), a rest-hook channel and a payload content code.
The pre-commit stage (`precommit`) refuses what we cannot honour (422 naming the element), queues
a handshake for a `requested` Subscription, and turns each Task change that an active Subscription
matches into a numbered notification in the outbox, in the same transaction as the change.
See: https://hl7.org/fhir/uv/subscriptions-backport/ (STU 1.1) and docs/subscriptions.md.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import Connection, select

from . import dates, notifications, outbox, privacy, scopes, topics
from .errors import Unprocessable
from .interactions import Change, Unit
from .repository import Stored
from .search.params import Criterion
from .tables import subscription_state
from .type_cache import TypeCache

log = logging.getLogger(__name__)

EXT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
FILTER_EXT = EXT + "backport-filter-criteria"
CONTENT_EXT = EXT + "backport-payload-content"
HEARTBEAT_EXT = EXT + "backport-heartbeat-period"
TIMEOUT_EXT = EXT + "backport-timeout"
CHANNEL_TYPE_EXT = EXT + "backport-channel-type"
PROFILE = EXT + "backport-subscription"
STATUS_OPERATION = "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status"
TOPIC_EXT = EXT + "capabilitystatement-subscriptiontopic-canonical"

CHANNEL = "rest-hook"
CONTENTS = ("empty", "id-only", "full-resource")
DEFAULT_CONTENT = "id-only"  # what Gravity requires every client and server to support
PAYLOAD_TYPES = ("application/fhir+json", "application/json")
MIN_HEARTBEAT = 60  # seconds; a shorter period would mostly flood the receiver
MAX_TIMEOUT = 60  # seconds a client may ask us to wait for its endpoint (backport-timeout)
# Headers the channel sets itself, or that would change how the request is framed or routed.
RESERVED_HEADERS = {"host", "content-type", "content-length", "transfer-encoding", "connection", "te", "upgrade", "expect"}
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP field name (RFC 9110 §5.1)


@dataclass(frozen=True)
class Subscription:
    """A Subscription resource as this server acts on it."""

    id: str
    version: int
    status: str
    topic: topics.Topic
    filters: tuple[Criterion, ...]
    endpoint: str
    headers: tuple[tuple[str, str], ...]
    content: str
    heartbeat: int | None
    timeout: int | None
    end: datetime | None
    source: str | None = None  # meta.source: who created it (privacy.payload_content)

    def live(self, at: datetime) -> bool:
        """Whether events count for it (active, or in error: the IG keeps counting while delivery is broken)."""
        return self.status in ("active", "error") and (self.end is None or at < self.end)


# ------------------------------------------------------------------------------- reading a Subscription
def read(res: dict) -> Subscription:
    """The Subscription as we act on it; 422 naming the element for anything we cannot honour."""
    topic, filters = _criteria(res)
    given = res.get("channel")
    channel: dict = given if isinstance(given, dict) else {}
    _channel_type(channel)
    end = res.get("end")
    return Subscription(res["id"], int(res.get("meta", {}).get("versionId", 1)), res.get("status", ""), topic, filters,
                        _endpoint(channel), _headers(channel), _content(channel),
                        _seconds(channel, HEARTBEAT_EXT, "heartbeat period", MIN_HEARTBEAT, 2**31 - 1),
                        _seconds(channel, TIMEOUT_EXT, "timeout", 1, MAX_TIMEOUT),
                        dates.parse_range(end)[0] if isinstance(end, str) else None, (res.get("meta") or {}).get("source"))


def _criteria(res: dict) -> tuple[topics.Topic, tuple[Criterion, ...]]:
    given = res.get("criteria")
    criteria: str = given if isinstance(given, str) else ""
    known = topics.topics()
    topic = known.get(criteria.split("|")[0])
    filters: tuple[Criterion, ...] = ()
    if topic is None and criteria.split("?")[0] == "Task":  # plain R4 criteria: the Task topic, filtered by the query
        topic = known[topics.GRAVITY_TASK]
        filters = topics.parse_filter(topic, criteria, "Subscription.criteria")
    if topic is None:
        raise Unprocessable(f"Subscription.criteria '{criteria}' is not a topic this server supports; use {', '.join(known)}",
                            expression="Subscription.criteria", code="not-supported")
    for i, ext in enumerate(_extensions(res.get("_criteria"))):
        if ext.get("url") == FILTER_EXT:
            filters += topics.parse_filter(topic, ext.get("valueString"), f"Subscription.criteria.extension[{i}]")
    return topic, filters


def _extensions(element: object) -> list[dict]:
    exts = element.get("extension") if isinstance(element, dict) else None
    return [e for e in exts if isinstance(e, dict)] if isinstance(exts, list) else []


def _channel_type(channel: dict) -> None:
    if channel.get("type") != CHANNEL:
        raise Unprocessable(f"Channel type '{channel.get('type')}' is not supported; this server sends {CHANNEL} notifications",
                            expression="Subscription.channel.type", code="not-supported")
    for i, ext in enumerate(_extensions(channel.get("_type"))):
        if ext.get("url") == CHANNEL_TYPE_EXT:
            raise Unprocessable("Custom channel types are not supported", expression=f"Subscription.channel.type.extension[{i}]",
                                code="not-supported")


def _endpoint(channel: dict) -> str:
    """An absolute https URL (http only to a loopback host: Gravity requires TLS for anything that leaves the machine)."""
    endpoint = channel.get("endpoint")
    where = "Subscription.channel.endpoint"
    if not isinstance(endpoint, str) or not endpoint:
        raise Unprocessable("A rest-hook Subscription needs channel.endpoint", expression=where, code="required")
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
    except ValueError:
        parts, host = None, ""
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise Unprocessable(f"channel.endpoint '{endpoint}' is not an absolute http(s) URL", expression=where)
    if parts.scheme == "http" and not _loopback(host):
        raise Unprocessable(f"channel.endpoint '{endpoint}' must use https (plain http only to a loopback host)",
                            expression=where, code="security")
    return endpoint


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _headers(channel: dict) -> tuple[tuple[str, str], ...]:
    """channel.header: "Name: value" lines sent with every notification (e.g. Authorization for the receiver)."""
    out = []
    for i, line in enumerate(channel.get("header") or []):
        name, sep, value = line.partition(":") if isinstance(line, str) else ("", "", "")
        bad_value = any(ch in value for ch in "\r\n\x00")
        if not sep or not _TOKEN.match(name) or bad_value or name.lower() in RESERVED_HEADERS:
            raise Unprocessable(f"channel.header '{line}' must be 'Name: value' with a field name other than "
                                f"{', '.join(sorted(RESERVED_HEADERS))}, on one line", expression=f"Subscription.channel.header[{i}]")
        out.append((name, value.strip()))
    return tuple(out)


def _content(channel: dict) -> str:
    payload = channel.get("payload")
    mime = payload.split(";")[0].strip().lower() if isinstance(payload, str) else None
    if mime not in PAYLOAD_TYPES:
        raise Unprocessable(f"channel.payload '{payload}' is not supported; use application/fhir+json",
                            expression="Subscription.channel.payload", code="not-supported")
    for i, ext in enumerate(_extensions(channel.get("_payload"))):
        if ext.get("url") == CONTENT_EXT:
            if ext.get("valueCode") not in CONTENTS:
                raise Unprocessable(f"Payload content '{ext.get('valueCode')}' is not one of {', '.join(CONTENTS)}",
                                    expression=f"Subscription.channel.payload.extension[{i}]", code="not-supported")
            return ext["valueCode"]
    return DEFAULT_CONTENT


def _seconds(channel: dict, url: str, what: str, low: int, high: int) -> int | None:
    for i, ext in enumerate(_extensions(channel)):
        if ext.get("url") == url:
            value = ext.get("valueUnsignedInt")
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise Unprocessable(f"The {what} must be valueUnsignedInt between {low} and {high} seconds",
                                    expression=f"Subscription.channel.extension[{i}]")
            return value
    return None


# ------------------------------------------------------------------------------- the live set, per process
def current(conn: Connection) -> list[Subscription]:
    """Every stored Subscription we can act on, cached per process until any Subscription is written (type_cache)."""
    return _live.get(conn)


def _acted_on(contents: Iterable[str | None]) -> list[Subscription]:
    return [s for s in (_readable(text) for text in contents) if s is not None]


def _readable(text: str | None) -> Subscription | None:
    try:
        return read(json.loads(text or "{}"))
    except (Unprocessable, KeyError, ValueError) as err:  # stored before a rule existed: it gets no notifications
        log.warning("ignoring a stored Subscription we cannot act on: %s", err)
        return None


_live = TypeCache("Subscription", _acted_on)


def forget() -> None:
    """Drop the cached set (this process wrote a Subscription)."""
    _live.forget()


# ------------------------------------------------------------------------------- the pre-commit stage
def precommit(unit: Unit) -> None:
    """Check written Subscriptions and queue their handshakes; turn matched Task changes into notifications.

    A unit that wrote neither a Subscription nor a resource of a topic's type runs no query at all.
    """
    written = [c for c in unit.changes if c.stored.type == "Subscription"]
    if written:
        _subscriptions_written(unit, written)
    watched = {t.resource_type for t in topics.topics().values()}
    changed = [c for c in unit.changes if c.stored.type in watched]
    if changed:
        _events(unit, changed)


def _subscriptions_written(unit: Unit, written: list[Change]) -> None:
    forget()
    for change in written:
        if change.stored.deleted:
            continue  # notifications still queued for it are cancelled at delivery
        sub = read(json.loads(change.stored.content or "{}"))
        if not unit.options.server_write:
            _check_status(sub, change.previous)
        if change.interaction == "create":  # a new Subscription (or one created again after a delete) starts at 0
            _state_reset(unit.conn, sub.id, unit.options.base_url, unit.now)
            scopes.subscription_created(unit.conn, sub.id, unit.options.access)
        if sub.status == "requested" and not unit.options.server_write:
            _handshake(unit, sub)


def _check_status(sub: Subscription, previous: Stored | None) -> None:
    """Clients request (requested), stop (off) or re-activate after an error (active); the server sets the rest."""
    prior = None if previous is None or previous.deleted else json.loads(previous.content or "{}").get("status")
    allowed = {"requested", "off"} | ({"active"} if prior in ("active", "error", "off") else set()) | ({prior} - {None})
    if sub.status not in allowed:
        raise Unprocessable(f"A client cannot set a Subscription's status to '{sub.status}'"
                            f"{'' if prior is None else f' from {prior}'}: create it as 'requested' (the server activates it "
                            "after a successful handshake), set 'off' to stop it, or 'active' to resume it after an error",
                            expression="Subscription.status", code="business-rule")


def _handshake(unit: Unit, sub: Subscription) -> None:
    events = _state_events(unit.conn, sub.id)
    status = notifications.Status(unit.options.base_url, sub.id, sub.topic.url, "requested", events, sub.content)
    payload = notifications.notification(status, "handshake", unit.now)
    key = f"Subscription/{sub.id}"
    outbox.enqueue(unit.conn, [outbox.row(CHANNEL, key, "handshake", key, f"{key}/_history/{sub.version}|handshake", payload, unit.now)])
    notified(unit.conn, sub.id, unit.now, unit.options.base_url)


def _events(unit: Unit, changed: list[Change]) -> None:
    """Number every event of a live Subscription in this transaction; queue the active ones' notifications."""
    unit.flush()  # a Subscription written in this unit counts too
    live = [s for s in current(unit.conn) if s.live(unit.now)]
    if not live:
        return
    matched = [(sub, change) for change in changed for sub in _matching(unit, live, change)]
    if not matched:
        return
    added = Counter(sub.id for sub, _ in matched)
    totals = _count_events(unit.conn, added, unit.now)
    numbers = {sid: total - added[sid] for sid, (total, _) in totals.items()}
    rows = []
    for sub, change in matched:
        numbers[sub.id] += 1
        if sub.status == "active":  # in error the event is counted, not sent (the client sees the gap)
            base_url = totals[sub.id][1] or unit.options.base_url
            rows.append(_event_row(unit, sub, change, numbers[sub.id], base_url))
    outbox.enqueue(unit.conn, rows)


def _matching(unit: Unit, live: list[Subscription], change: Change) -> Iterable[Subscription]:
    version = change.previous if change.interaction == "delete" else change.stored
    if version is None or version.content is None:
        return []
    facts = topics.Facts(json.loads(version.content), change.stored.last_updated)
    return [s for s in live if s.topic.resource_type == change.stored.type
            and topics.triggers(s.topic, change.interaction, facts, s.filters, unit.options.base_url)]


def _event_row(unit: Unit, sub: Subscription, change: Change, number: int, base_url: str) -> dict:
    event = notifications.Event(number, change.interaction, change.stored)
    content = privacy.payload_content(unit.conn, sub.source, change.stored, sub.content)  # an outside subscriber's view
    content = scopes.payload_content(unit.conn, sub.id, content)  # full-resource while its client may read Tasks
    status = notifications.Status(base_url, sub.id, sub.topic.url, sub.status, number, content)
    payload = notifications.notification(status, "event-notification", unit.now, event)
    focus = f"{change.stored.type}/{change.stored.id}"
    return outbox.row(CHANNEL, f"Subscription/{sub.id}", "event-notification", f"Subscription/{sub.id}|{focus}",
                      f"Subscription/{sub.id}|{focus}/_history/{change.stored.version}", payload, unit.now)


# ------------------------------------------------------------------------------- subscription_state
def _count_events(conn: Connection, added: Counter[str], now: datetime) -> dict[str, tuple[int, str | None]]:
    """Add each Subscription's new events to its counter; (new total, the base URL its subscriber knows us by) per id.

    The upsert holds the counter row's lock until commit, so concurrent writers number one
    Subscription's events one after the other (in id order: two units never wait on each other in turn).
    """
    S, totals = subscription_state, {}
    for sid in sorted(added):
        stmt = outbox.upsert(conn, S, {"subscription_id": sid, "events": added[sid], "last_notified_at": now},
                             ["subscription_id"], {"events": S.c.events + added[sid], "last_notified_at": now})
        total, base_url = conn.execute(stmt.returning(S.c.events, S.c.base_url)).one()
        totals[sid] = (total, base_url)
    return totals


def _state_reset(conn: Connection, sid: str, base_url: str, now: datetime) -> None:
    fresh = {"events": 0, "last_notified_at": now, "base_url": base_url}
    conn.execute(outbox.upsert(conn, subscription_state, {"subscription_id": sid, **fresh}, ["subscription_id"], fresh))


def notified(conn: Connection, sid: str, now: datetime, base_url: str | None = None) -> None:
    """Record that a notification for the Subscription was just queued (heartbeats count from here)."""
    changes: dict = {"last_notified_at": now, **({"base_url": base_url} if base_url else {})}
    conn.execute(outbox.upsert(conn, subscription_state, {"subscription_id": sid, "events": 0, **changes}, ["subscription_id"], changes))


def _state_events(conn: Connection, sid: str) -> int:
    return conn.execute(select(subscription_state.c.events).where(subscription_state.c.subscription_id == sid)).scalar() or 0


def state(conn: Connection, sids: list[str]) -> dict[str, tuple[int, datetime | None, str | None]]:
    """(events, last notified, base URL) per Subscription id."""
    S = subscription_state
    rows = conn.execute(select(S.c.subscription_id, S.c.events, S.c.last_notified_at, S.c.base_url).where(S.c.subscription_id.in_(sids)))
    return {r.subscription_id: (r.events, r.last_notified_at, r.base_url) for r in rows}

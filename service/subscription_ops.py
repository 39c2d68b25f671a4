"""Subscription/{id}/$status, and what the CapabilityStatement declares for topic-based subscriptions.

See: https://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition-backport-subscription-status.html
and CapabilityStatement-backport-subscription-server-r4.html (the backport-subscription profile, the
$status operation and the topics a server offers).
"""
from __future__ import annotations

import json

from flask import Response

from . import notifications, repository, subscriptions, topics, wire
from .db import get_db
from .errors import Gone, NotFound, Unprocessable


def status(rid: str) -> Response:
    """GET (or POST) Subscription/{id}/$status: a searchset Bundle with the Subscription's query-status Parameters."""
    with get_db().read() as conn:
        stored = repository.current(conn, "Subscription", rid)
        if stored is None:
            raise NotFound(f"Subscription/{rid} is not known")
        if stored.deleted:
            raise Gone(f"Subscription/{rid} has been deleted")
        events = subscriptions.state(conn, [rid]).get(rid, (0, None, None))[0]
    res = json.loads(stored.content or "{}")
    try:
        sub = subscriptions.read(res)
    except Unprocessable as err:
        raise Unprocessable(f"Subscription/{rid} is not a topic-based subscription this server serves: {err}") from None
    error = res.get("error") if isinstance(res.get("error"), str) else None
    one = notifications.Status(wire.base_url(), rid, sub.topic.url, sub.status, events, sub.content, error)
    return wire.respond(notifications.status_bundle([one]))


def declare(entry: dict) -> None:
    """Add the backport profile, the $status operation and our topics to the Subscription entry of the CapabilityStatement."""
    entry["supportedProfile"] = sorted(set(entry.get("supportedProfile", [])) | {subscriptions.PROFILE})
    entry["operation"] = entry.get("operation", []) + [{"name": "status", "definition": subscriptions.STATUS_OPERATION}]
    entry["extension"] = [{"url": subscriptions.TOPIC_EXT, "valueCanonical": url} for url in topics.topics()]

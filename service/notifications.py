"""Notification Bundles of the R4 Subscriptions Backport: a history Bundle whose first entry is the subscription-status Parameters.

See: https://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition-backport-subscription-notification-r4.html
and .../StructureDefinition-backport-subscription-status-r4.html (parameter names and types), and
.../payloads.html (what `empty`, `id-only` and `full-resource` put in the Bundle).
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from . import dates
from .repository import Stored

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport"
NOTIFICATION_PROFILE = f"{BACKPORT}/StructureDefinition/backport-subscription-notification-r4"
STATUS_PROFILE = f"{BACKPORT}/StructureDefinition/backport-subscription-status-r4"


@dataclass(frozen=True)
class Status:
    """What the subscription-status Parameters says about one Subscription."""

    base_url: str
    subscription_id: str
    topic: str
    status: str  # the Subscription's status: requested | active | error | off
    events: int  # events-since-subscription-start
    content: str  # empty | id-only | full-resource
    error: str | None = None

    @property
    def reference(self) -> str:
        return f"{self.base_url}/Subscription/{self.subscription_id}"


@dataclass(frozen=True)
class Event:
    """One event of a topic: its number and the resource version that caused it."""

    number: int
    interaction: str  # create | update | delete
    stored: Stored


def status_parameters(status: Status, type_: str, event: Event | None = None) -> dict:
    """The backport-subscription-status-r4 Parameters (`type`: handshake | heartbeat | event-notification | query-status)."""
    params: list[dict] = [{"name": "subscription", "valueReference": {"reference": status.reference}}]
    if status.content != "empty":  # the topic SHOULD NOT be present with empty payloads
        params.append({"name": "topic", "valueCanonical": status.topic})
    params += [{"name": "status", "valueCode": status.status}, {"name": "type", "valueCode": type_},
               {"name": "events-since-subscription-start", "valueString": str(status.events)}]
    if event is not None:
        params.append({"name": "notification-event", "part": _event_parts(status, event)})
    if status.error:
        params.append({"name": "error", "valueCodeableConcept": {"text": status.error}})
    pid = str(uuid.uuid4())
    return {"resourceType": "Parameters", "id": pid, "meta": {"profile": [STATUS_PROFILE]}, "parameter": params}


def _event_parts(status: Status, event: Event) -> list[dict]:
    parts: list[dict] = [{"name": "event-number", "valueString": str(event.number)},
                         {"name": "timestamp", "valueInstant": dates.instant(event.stored.last_updated)}]
    if status.content != "empty":  # empty payloads SHALL NOT reference resources
        parts.append({"name": "focus", "valueReference": {"reference": _url(status.base_url, event.stored)}})
    return parts


def notification(status: Status, type_: str, now: datetime, event: Event | None = None) -> str:
    """A notification Bundle as JSON text; its id stays the same on every delivery attempt (receivers dedupe by it)."""
    params = status_parameters(status, type_, event)
    entries = [{"fullUrl": f"urn:uuid:{params['id']}", "resource": params,
                "request": {"method": "GET", "url": f"{status.reference}/$status"}, "response": {"status": "200"}}]
    if event is not None and status.content != "empty":
        entries.append(_focus_entry(status, event))
    bundle = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "meta": {"profile": [NOTIFICATION_PROFILE]},
              "type": "history", "timestamp": dates.instant(now), "entry": entries}
    return json.dumps(bundle, ensure_ascii=False, separators=(",", ":"))


_RESPONSE = {"create": "201 Created", "update": "200 OK", "delete": "204 No Content"}
_METHOD = {"create": "POST", "update": "PUT", "delete": "DELETE"}


def _focus_entry(status: Status, event: Event) -> dict:
    """The focus resource's history entry: fullUrl and request always (bdl-3), the resource itself for full-resource."""
    stored = event.stored
    url = stored.type if event.interaction == "create" else f"{stored.type}/{stored.id}"
    entry: dict = {"fullUrl": _url(status.base_url, stored)}
    if status.content == "full-resource" and stored.content is not None:
        entry["resource"] = json.loads(stored.content)
    entry["request"] = {"method": _METHOD[event.interaction], "url": url}
    entry["response"] = {"status": _RESPONSE[event.interaction], "etag": stored.etag,
                         "lastModified": dates.instant(stored.last_updated)}
    return entry


def _url(base_url: str, stored: Stored) -> str:
    return f"{base_url}/{stored.type}/{stored.id}"


def status_bundle(statuses: list[Status]) -> str:
    """The $status result: a searchset Bundle of query-status Parameters, one per Subscription."""
    entries = []
    for status in statuses:
        params = status_parameters(status, "query-status")
        entries.append({"fullUrl": f"urn:uuid:{params['id']}", "resource": params, "search": {"mode": "match"}})
    bundle = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "searchset", "total": len(entries), "entry": entries}
    return json.dumps(bundle, ensure_ascii=False, separators=(",", ":"))

"""Builders and peer shortcuts for the subscription and outbox tests (the Medplum memory peer is the referrer's receiver)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import requests
from sqlalchemy import select

from helpers import post
from service import dates, outbox
from service.tables import outbox_message

TOPIC = "http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/Task"
EXT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"


def subscription(endpoint: str, *filters: str, content: str = "full-resource", status: str = "requested",
                 criteria: str = TOPIC, heartbeat: int | None = None, headers: list[str] | None = None, **extra) -> dict:
    """An R4 backport Subscription on the Gravity Task topic with a rest-hook channel."""
    channel: dict = {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
                     "_payload": {"extension": [{"url": EXT + "backport-payload-content", "valueCode": content}]}}
    if heartbeat is not None:
        channel["extension"] = [{"url": EXT + "backport-heartbeat-period", "valueUnsignedInt": heartbeat}]
    if headers:
        channel["header"] = headers
    sub = {"resourceType": "Subscription", "status": status, "reason": "Referral status for the referring hospital",
           "criteria": criteria, "channel": channel}
    if filters:
        sub["_criteria"] = {"extension": [{"url": EXT + "backport-filter-criteria", "valueString": f} for f in filters]}
    sub.update(extra)
    return sub


def task(status: str = "requested", requester: str = "Organization/hosp", owner: str = "Organization/iop", **extra) -> dict:
    """A referral fulfilment Task (Gravity TaskForReferralManagement shape, no focus)."""
    body = {"resourceType": "Task", "status": status, "intent": "order",
            "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
            "for": {"reference": "Patient/p1"}, "authoredOn": "2026-11-20", "requester": {"reference": requester},
            "owner": {"reference": owner}}
    body.update(extra)
    return body


def root(peer: str) -> str:
    """The peer's host root (its /_peer/ control endpoints live outside the FHIR base)."""
    return peer.rsplit("/fhir", 1)[0]


def reset(peer: str) -> None:
    requests.post(f"{root(peer)}/_peer/reset", timeout=5).raise_for_status()


def fault(peer: str, **spec) -> None:
    """Inject a fault on the peer: status, count, delayMs, retryAfter, match."""
    requests.post(f"{root(peer)}/_peer/faults", json=spec, timeout=5).raise_for_status()


def clear_faults(peer: str) -> None:
    requests.delete(f"{root(peer)}/_peer/faults", timeout=5).raise_for_status()


def received(peer: str) -> list[dict]:
    """Every notification POST the peer saw, in order: {status, headers, body}."""
    log = requests.get(f"{root(peer)}/_peer/requests", timeout=5).json()
    return [r for r in log if r["method"] == "POST" and r["url"] == "/fhir/Bundle"]


def delivered(peer: str) -> list[dict]:
    """The notification Bundles the peer accepted (2xx), in order."""
    return [r["body"] for r in received(peer) if 200 <= r["status"] < 300]


def status_params(bundle: dict) -> dict:
    """The subscription-status Parameters of a notification as {name: value-or-parts}."""
    out: dict = {}
    for p in bundle["entry"][0]["resource"]["parameter"]:
        if "part" in p:
            out[p["name"]] = {q["name"]: next(v for k, v in q.items() if k.startswith("value")) for q in p["part"]}
        else:
            out[p["name"]] = next(v for k, v in p.items() if k.startswith("value"))
    return out


def fast(app, **overrides) -> dict:
    """The app's settings with test-sized backoffs."""
    return {**app.config["IOP"], "OUTBOX_BACKOFF_SECONDS": 0.001, "OUTBOX_MAX_BACKOFF_SECONDS": 0.01, **overrides}


def deliver(app, *, now: datetime | None = None, limit: int | None = None, **overrides) -> dict:
    """One delivery round of the worker, driven directly (deterministic)."""
    with app.app_context():
        return outbox.deliver_due(app, now=now, limit=limit, settings=fast(app, **overrides))


def later(seconds: float) -> datetime:
    return dates.utcnow() + timedelta(seconds=seconds)


def rows(app, status: str | None = None) -> list:
    """Outbox rows in pk order."""
    stmt = select(outbox_message).order_by(outbox_message.c.pk)
    if status:
        stmt = stmt.where(outbox_message.c.status == status)
    with app.extensions["iop.db"].read() as conn:
        return list(conn.execute(stmt))


def subscribe(client, app, peer: str, *filters: str, **kw) -> str:
    """Create a Subscription to the peer, deliver its handshake; returns its id (now active)."""
    response = post(client, "Subscription", subscription(f"{peer}/Bundle", *filters, **kw))
    assert response.status_code == 201, response.get_data(as_text=True)
    sid = response.get_json()["id"]
    deliver(app)
    assert client.get(f"/fhir/Subscription/{sid}").get_json()["status"] == "active"
    return sid


def payload(row) -> dict:
    return json.loads(row.payload)

"""The referrer's view in its own system: a Subscription (R4 backport, rest-hook) on the referral Tasks, delivered
from the outbox to the Medplum memory peer standing in for the hospital's EHR, through an outage (503 with
Retry-After) and a restart of the service: every status change arrives once, in order."""
from __future__ import annotations

import time

from subscription_helpers import clear_faults, deliver, fault, received, reset, rows, status_params, subscribe
from test_referrals import attend_intake, decide, referral_bundle, search, step

from helpers import post, put
from service import create_app

REQUESTER = "Practitioner/hosp-pract-discharge-planner"


def drain(app, rounds: int = 40) -> None:
    """Run the delivery worker until nothing is pending (short test backoffs; Retry-After capped by them)."""
    for _ in range(rounds):
        deliver(app)
        if not rows(app, "pending"):
            return
        time.sleep(0.02)
    raise AssertionError(f"still pending: {rows(app, 'pending')}")


def task_events(peer: str) -> list[tuple[int, str, str]]:
    """(event number, Task status, referral step) of every event notification the peer accepted, in arrival order."""
    out = []
    for req in received(peer):
        if not 200 <= req["status"] < 300:
            continue
        params = status_params(req["body"])
        if params["type"] != "event-notification":
            continue
        task = next(e["resource"] for e in req["body"]["entry"][1:] if e.get("resource", {}).get("resourceType") == "Task")
        codes = [c["code"] for c in (task.get("businessStatus") or {}).get("coding", [])]
        out.append((int(params["notification-event"]["event-number"]), task["status"], step(task) if len(codes) > 1 else codes[0]))
    return out


def renamed(bundle: dict, suffix: str) -> dict:
    """The same referral for another patient: every business identifier (and conditional create) gets a suffix."""
    for entry in bundle["entry"]:
        for ident in entry["resource"].get("identifier", []):
            ident["value"] += suffix
        request = entry["request"]
        if request.get("ifNoneExist"):
            request["ifNoneExist"] += suffix
        if request["method"] == "PUT" and request["url"].startswith("Task/"):
            request["url"] += suffix.lower()
            entry["resource"]["id"] = request["url"].split("/")[1]
    return bundle


def test_every_status_change_reaches_the_referrer_once_and_in_order(program, app, peer_server, database_url):
    client = program
    reset(peer_server)
    subscribe(client, app, peer_server, f"Task?requester={REQUESTER}", content="full-resource")

    # the hospital refers; its EHR is down for the first two deliveries (503, Retry-After)
    assert post(client, "", referral_bundle()).status_code == 200
    fault(peer_server, status=503, count=2, retryAfter="1")
    drain(app)
    assert [r["status"] for r in received(peer_server)][-3:] == [503, 503, 201]

    # a resend changes nothing, so nothing is sent
    assert post(client, "", referral_bundle()).status_code == 200
    assert not rows(app, "pending")

    [task] = search(client, f"Task?requester={REQUESTER}")
    assert post(client, f"Task/{task['id']}/$triage", {"resourceType": "Parameters"}).status_code == 200
    resp = decide(client, task["id"], "accept", intakeStart={"valueDateTime": "2026-11-30T16:00:00-06:00"})
    assert resp.status_code == 200

    # queued while the receiver is down; delivered by a restarted service (a new app on the same database)
    fault(peer_server, status=503, count=50)
    deliver(app)
    [episode] = search(client, f"EpisodeOfCare?incoming-referral={task['focus']['reference']}")
    attend_intake(client, episode)
    episode = client.get(f"/fhir/EpisodeOfCare/{episode['id']}").get_json()
    episode.update(status="finished", period={"start": episode["period"]["start"], "end": "2026-12-18"})
    assert put(client, f"EpisodeOfCare/{episode['id']}", episode).status_code == 200
    assert rows(app, "pending")
    clear_faults(peer_server)
    restarted = create_app({"DATABASE_URL": database_url, "AUTH": "off", "LOG_LEVEL": "WARNING"})
    try:
        drain(restarted)
    finally:
        restarted.extensions["iop.db"].dispose()

    events = task_events(peer_server)
    assert [(status, s) for _, status, s in events] == [
        ("requested", "2.0"),  # the hospital's own Task, with its BSeR business status
        ("received", "eligibility-checked"), ("accepted", "accepted"), ("accepted", "intake-scheduled"),
        ("in-progress", "admitted"), ("completed", "completed")]
    numbers = [n for n, _, _ in events]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # each once, in order, no gap


def test_a_declined_referral_reaches_the_referrer_with_its_reason(program, app, peer_server):
    client = program
    reset(peer_server)
    subscribe(client, app, peer_server, f"Task?requester={REQUESTER}&status=rejected", content="full-resource")
    bundle = renamed(referral_bundle(), "-B")
    for entry in bundle["entry"]:
        if entry["resource"].get("code", {}).get("coding", [{}])[0].get("code") == "needs-24h-supervision":
            entry["resource"]["valueBoolean"] = True
    assert post(client, "", bundle).status_code == 200
    [task] = search(client, f"Task?requester={REQUESTER}")
    proposal = post(client, f"Task/{task['id']}/$triage", {"resourceType": "Parameters"}).get_json()
    reason = next(p["part"][2]["valueString"] for p in proposal["parameter"]
                  if p["name"] == "check" and p["part"][1]["valueCode"] == "fail")
    assert decide(client, task["id"], "decline", reason={"valueString": reason}).status_code == 200
    drain(app)
    events = task_events(peer_server)
    assert [(status, s) for _, status, s in events] == [("rejected", "declined")]
    sent = [r["body"] for r in received(peer_server) if status_params(r["body"])["type"] == "event-notification"]
    task = next(e["resource"] for e in sent[-1]["entry"][1:] if e["resource"]["resourceType"] == "Task")
    assert "24-hour supervision" in task["statusReason"]["text"]


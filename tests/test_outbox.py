"""The outbox worker: retries and backoff, dead letters, crash recovery, ordering per Task, heartbeats, operator commands."""
from __future__ import annotations

import time
from datetime import datetime, timedelta

import requests
import responses
from subscription_helpers import (
    deliver,
    delivered,
    fast,
    fault,
    later,
    payload,
    received,
    rows,
    status_params,
    subscribe,
    subscription,
    task,
)

from helpers import post, put
from service import dates, outbox


def event_numbers(bundles: list[dict]) -> list[str]:
    return [status_params(b)["notification-event"]["event-number"] for b in bundles if status_params(b)["type"] == "event-notification"]


def test_503_with_retry_after_is_retried_after_the_delay(client, app, peer):
    """The receiver says 503, Retry-After: 2 — the message waits at least 2 s, then is delivered."""
    subscribe(client, app, peer)
    post(client, "Task", task())
    fault(peer, status=503, count=1, retryAfter="2")
    start = dates.utcnow()
    assert deliver(app, now=start, OUTBOX_MAX_BACKOFF_SECONDS=60) == {"pending": 1}
    [row] = rows(app, "pending")
    assert row.attempts == 1 and "HTTP 503" in row.last_error and "injected fault 503" in row.last_error
    assert timedelta(seconds=2) <= row.next_attempt_at - start <= timedelta(seconds=2.1)
    assert deliver(app, now=start + timedelta(seconds=1.5)) == {}  # not yet
    assert deliver(app, now=start + timedelta(seconds=2.5)) == {"delivered": 1}
    assert event_numbers(delivered(peer)) == ["1"]


def test_a_timeout_is_retried(client, app, peer):
    """No answer within the read timeout counts as retryable; the same Bundle (same id) is sent again."""
    subscribe(client, app, peer)
    post(client, "Task", task())
    fault(peer, status=0, count=1, delayMs=700)  # only slow: the peer still stores it after the delay
    assert deliver(app, OUTBOX_TIMEOUT_SECONDS=0.2) == {"pending": 1}
    assert "within 0.2 s" in rows(app, "pending")[0].last_error
    assert deliver(app, now=later(1)) == {"delivered": 1}
    time.sleep(0.6)  # let the slow first request finish at the peer
    sent = [r["body"] for r in received(peer)][1:]
    assert len(sent) == 2 and sent[0]["id"] == sent[1]["id"]  # at least once: receivers dedupe by Bundle id / event number


def test_a_connection_error_is_retried(client, app, peer):
    """An endpoint that refuses connections is retried, and is dead after the last attempt allowed."""
    sid = subscribe(client, app, peer)
    current = client.get(f"/fhir/Subscription/{sid}").get_json()
    current["channel"]["endpoint"] = "http://127.0.0.1:9/fhir/Bundle"  # discard port: nothing listens
    put(client, f"Subscription/{sid}", current)
    post(client, "Task", task())
    assert deliver(app, OUTBOX_MAX_ATTEMPTS=2) == {"pending": 1}
    assert "connection to http://127.0.0.1:9/fhir/Bundle failed" in rows(app, "pending")[0].last_error
    assert deliver(app, now=later(1), OUTBOX_MAX_ATTEMPTS=2) == {"dead": 1}
    assert "gave up after 2 attempts" in rows(app, "dead")[0].last_error


def test_permanent_400_is_a_dead_letter_until_an_operator_retries_it(client, app, peer):
    """A 4xx is not retried: dead, with the receiver's OperationOutcome text, and the Subscription in error.
    `flask outbox retry PK` sends it again."""
    sid = subscribe(client, app, peer)
    post(client, "Task", task())
    fault(peer, status=400, count=1)
    assert deliver(app) == {"dead": 1}
    [dead] = rows(app, "dead")
    assert dead.last_error == "HTTP 400 Bad Request: injected fault 400"
    sub = client.get(f"/fhir/Subscription/{sid}").get_json()
    assert sub["status"] == "error" and "injected fault 400" in sub["error"]
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["outbox", "list", "--status", "dead"])
    assert listed.exit_code == 0 and f"{dead.pk}\tdead\t1\tevent-notification\tSubscription/{sid}" in listed.output
    shown = runner.invoke(args=["outbox", "show", str(dead.pk)])
    assert "last_error: HTTP 400 Bad Request: injected fault 400" in shown.output and '"type": "history"' in shown.output
    assert runner.invoke(args=["outbox", "retry", str(dead.pk)]).output.strip() == "1 message pending again"
    assert deliver(app) == {"delivered": 1}
    assert event_numbers(delivered(peer)) == ["1"]
    assert client.get(f"/fhir/Subscription/{sid}").get_json()["status"] == "error"  # the client re-activates it (IG errors.html)


def test_retry_all_dead_and_cli_errors(client, app, peer):
    """--all-dead makes every dead row pending; a PK that is not dead, or no argument, is an error."""
    subscribe(client, app, peer)
    post(client, "Task", task())
    post(client, "Task", task())
    fault(peer, status=410, count=2)
    assert deliver(app) == {"dead": 2}
    runner = app.test_cli_runner()
    assert runner.invoke(args=["outbox", "retry", "--all-dead"]).output.strip() == "2 messages pending again"
    handshake = rows(app)[0].pk
    refused = runner.invoke(args=["outbox", "retry", str(handshake)])
    assert refused.exit_code != 0 and "is not dead, cancelled or held" in refused.output
    assert runner.invoke(args=["outbox", "retry"]).exit_code != 0
    assert runner.invoke(args=["outbox", "show", "999999"]).exit_code != 0
    once = runner.invoke(args=["outbox", "run", "--once"])
    assert once.exit_code == 0 and once.output.strip() == "2 delivered"
    assert runner.invoke(args=["outbox", "list", "--status", "pending"]).output.strip() == "no messages with status pending"


def test_a_worker_that_dies_after_claiming_loses_nothing(client, app, peer):
    """Claimed, then the worker is killed before recording: the lease runs out and the message is delivered."""
    subscribe(client, app, peer)
    post(client, "Task", task())
    db, now = app.extensions["iop.db"], dates.utcnow()
    lease = outbox.lease(fast(app))
    claimed = outbox.claim(db, now, lease)
    assert claimed is not None and claimed.attempts == 1  # ... and the worker dies here
    assert deliver(app, now=now + timedelta(seconds=5)) == {}  # leased: no other worker takes it
    assert deliver(app, now=now + lease + timedelta(seconds=1)) == {"delivered": 1}
    assert rows(app)[-1].attempts == 2
    assert not outbox.record(db, claimed, outbox.Outcome(outbox.DEAD, "late"), outbox.interactions.Options(), now)  # fenced
    assert rows(app)[-1].status == "delivered"


def test_a_later_event_for_the_same_task_waits_for_the_earlier(client, app, peer):
    """While event 1 of a Task waits for its retry, event 2 of that Task is held; another Task's event is not."""
    subscribe(client, app, peer)
    first = post(client, "Task", task()).get_json()
    fault(peer, status=503, count=1, retryAfter="30")
    assert deliver(app, OUTBOX_MAX_BACKOFF_SECONDS=60) == {"pending": 1}
    put(client, f"Task/{first['id']}", dict(first, status="accepted"))
    post(client, "Task", task())  # another Task
    assert deliver(app, now=later(1)) == {"delivered": 1}
    assert event_numbers(delivered(peer)) == ["3"]
    assert deliver(app, now=later(31)) == {"delivered": 2}
    assert event_numbers(delivered(peer)) == ["3", "1", "2"]


def test_a_dead_message_does_not_hold_back_later_ones(client, app, peer):
    """Event 1 of a Task is dead; event 2 (queued before the Subscription went to error) is still delivered."""
    subscribe(client, app, peer)
    first = post(client, "Task", task()).get_json()
    put(client, f"Task/{first['id']}", dict(first, status="accepted"))
    fault(peer, status=422, count=1)
    assert deliver(app) == {"dead": 1, "delivered": 1}
    assert event_numbers(delivered(peer)) == ["2"]  # the receiver sees the gap and recovers by querying


def test_events_in_error_are_counted_not_sent(client, app, peer):
    """While a Subscription is in error its events are numbered but not sent; after re-activation the gap shows."""
    sid = subscribe(client, app, peer)
    post(client, "Task", task())
    fault(peer, status=400, count=1)
    deliver(app)
    post(client, "Task", task())  # event 2: counted only
    sub = client.get(f"/fhir/Subscription/{sid}").get_json()
    assert put(client, f"Subscription/{sid}", dict(sub, status="active")).status_code == 200
    post(client, "Task", task())
    deliver(app)
    assert event_numbers(delivered(peer)) == ["3"]


def test_handshake_that_finally_fails_puts_the_subscription_in_error(client, app, peer):
    """A handshake answered 400 ends dead, and the Subscription becomes error with the reason."""
    fault(peer, status=400, count=1)
    sid = post(client, "Subscription", subscription(f"{peer}/Bundle")).get_json()["id"]
    assert deliver(app) == {"dead": 1}
    sub = client.get(f"/fhir/Subscription/{sid}").get_json()
    assert sub["status"] == "error" and sub["error"].startswith("handshake could not be delivered: HTTP 400")
    post(client, "Task", task())
    assert [r.kind for r in rows(app)] == ["handshake"]


def test_deleted_subscription_cancels_what_is_queued(client, app, peer):
    sid = subscribe(client, app, peer)
    post(client, "Task", task())
    assert client.delete(f"/fhir/Subscription/{sid}").status_code == 204
    assert deliver(app) == {"cancelled": 1}
    assert "has been deleted" in rows(app, "cancelled")[0].last_error


def test_heartbeat_when_nothing_was_sent_within_the_period(client, app, peer):
    """A Subscription with a 60 s heartbeat period gets a heartbeat once 60 s pass without a notification, only one."""
    subscribe(client, app, peer, heartbeat=60)
    assert deliver(app, now=later(30)) == {}
    assert deliver(app, now=later(61)) == {"delivered": 1}
    assert deliver(app, now=later(62)) == {}
    heartbeat = delivered(peer)[-1]
    params = status_params(heartbeat)
    assert params["type"] == "heartbeat" and params["status"] == "active" and params["events-since-subscription-start"] == "0"
    assert len(heartbeat["entry"]) == 1


def test_background_worker_thread_delivers(client, app, peer):
    """IOP_OUTBOX_WORKER=on runs the same loop in a thread of the service."""
    post(client, "Subscription", subscription(f"{peer}/Bundle"))
    worker, settings = outbox.Worker(app), app.config["IOP"]
    app.config["IOP"] = dict(settings, OUTBOX_POLL_SECONDS=0.05)
    try:
        worker.start()
        deadline = time.monotonic() + 10
        while not delivered(peer) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop(10)
        app.config["IOP"] = settings
    assert not worker.is_alive() and len(delivered(peer)) == 1


# ------------------------------------------------------------------------------- pure functions and the HTTP client
def test_backoff_is_full_jitter_capped_and_honours_retry_after():
    assert outbox.backoff(1, None, 5, 1800, rng=lambda: 1.0) == 5
    assert outbox.backoff(4, None, 5, 1800, rng=lambda: 0.5) == 20
    assert outbox.backoff(30, None, 5, 1800, rng=lambda: 1.0) == 1800
    assert outbox.backoff(1, None, 5, 1800, rng=lambda: 0.0) == 0
    assert outbox.backoff(1, 120, 5, 1800, rng=lambda: 0.5) == 120
    assert outbox.backoff(1, 99999, 5, 1800, rng=lambda: 0.5) == 1800


def test_retry_after_seconds_or_http_date():
    now = datetime(2026, 11, 24, 10, 0, 0)
    assert outbox.retry_after("120", now) == 120
    assert outbox.retry_after("Tue, 24 Nov 2026 10:01:30 GMT", now) == 90
    assert outbox.retry_after("Tue, 24 Nov 2026 09:00:00 GMT", now) == 0
    assert outbox.retry_after("soon", now) is None and outbox.retry_after(None, now) is None


def test_decide_gives_up_after_the_last_attempt():
    settings = {"OUTBOX_MAX_ATTEMPTS": 3, "OUTBOX_BACKOFF_SECONDS": 1, "OUTBOX_MAX_BACKOFF_SECONDS": 10}
    now = datetime(2026, 11, 24)
    retry = outbox.decide(outbox.Attempt(False, True, "HTTP 503"), 2, settings, now, rng=lambda: 1.0)
    assert retry == outbox.Outcome("pending", "HTTP 503", now + timedelta(seconds=2))
    assert outbox.decide(outbox.Attempt(False, True, "HTTP 503"), 3, settings, now).status == "dead"
    assert outbox.decide(outbox.Attempt(False, False, "HTTP 404"), 1, settings, now) == outbox.Outcome("dead", "HTTP 404")


@responses.activate
def test_send_classifies_answers():
    """2xx delivered; 5xx, 408 and 429 retryable; other 4xx and redirects permanent (redirects are not followed)."""
    url = "https://hospital.example.org/fhir/notify"
    settings = {"OUTBOX_TIMEOUT_SECONDS": 5}
    dest = outbox.Destination(url, {"Authorization": "Bearer t"})
    cases = [(202, {}, True, False), (500, {}, False, True), (408, {}, False, True), (429, {"Retry-After": "7"}, False, True),
             (404, {}, False, False), (302, {"Location": "https://elsewhere.example.org/"}, False, False)]
    with requests.Session() as session:
        for status, headers, ok, retryable in cases:
            responses.upsert(responses.POST, url, status=status, headers=headers, json={"resourceType": "OperationOutcome",
                             "issue": [{"severity": "error", "code": "invalid", "diagnostics": f"answer {status}"}]})
            result = outbox.send(session, dest, "{}", settings)
            assert (result.ok, result.retryable) == (ok, retryable), status
            if status == 404:
                assert result.error == "HTTP 404 Not Found: answer 404"
        assert result.error == "HTTP 302 Found: redirect to https://elsewhere.example.org/ not followed"
        responses.upsert(responses.POST, url, status=429, headers={"Retry-After": "7"})
        assert outbox.send(session, dest, "{}", settings).retry_after == 7
    assert responses.calls[0].request.headers["Authorization"] == "Bearer t"
    assert responses.calls[0].request.headers["Content-Type"] == "application/fhir+json"


def test_payload_of_a_queued_event_is_fixed_at_commit(client, app, peer):
    """The notification is built in the writing transaction: a later Task change does not alter a queued one."""
    subscribe(client, app, peer)
    body = post(client, "Task", task()).get_json()
    put(client, f"Task/{body['id']}", dict(body, status="accepted"))
    first, second = rows(app)[1:]
    assert payload(first)["entry"][1]["resource"]["status"] == "requested"
    assert payload(second)["entry"][1]["resource"]["status"] == "accepted"
    assert first.ordering_key == second.ordering_key and first.dedupe_key != second.dedupe_key

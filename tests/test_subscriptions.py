"""Topic-based Subscriptions (R4 backport): what a client may create, the handshake, and the Task events that reach the referrer."""
from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import event, text
from subscription_helpers import (
    EXT,
    TOPIC,
    deliver,
    delivered,
    payload,
    reset,
    rows,
    status_params,
    subscribe,
    subscription,
    task,
)

from helpers import assert_outcome, count_rows, post, put
from service import interactions


def test_handshake_makes_a_requested_subscription_active(client, app, peer):
    """A new Subscription (requested) gets a handshake; once the receiver accepts it the Subscription is active."""
    created = post(client, "Subscription", subscription(f"{peer}/Bundle", "Task?requester=Organization/hosp"))
    assert created.status_code == 201
    sid = created.get_json()["id"]
    assert [(r.kind, r.status) for r in rows(app)] == [("handshake", "pending")]
    assert deliver(app) == {"delivered": 1}
    [handshake] = delivered(peer)
    assert handshake["type"] == "history" and handshake["meta"]["profile"] == [EXT + "backport-subscription-notification-r4"]
    params = status_params(handshake)
    assert params["type"] == "handshake" and params["status"] == "requested"
    assert params["topic"] == TOPIC and params["events-since-subscription-start"] == "0"
    assert params["subscription"]["reference"].endswith(f"/Subscription/{sid}")
    assert handshake["entry"][0]["request"] == {"method": "GET", "url": f"{params['subscription']['reference']}/$status"}
    now = client.get(f"/fhir/Subscription/{sid}").get_json()
    assert now["status"] == "active" and now["meta"]["versionId"] == "2"  # a new version through the write path


def test_each_task_status_change_arrives_once_in_order(client, app, peer):
    """requested → accepted → in-progress → completed: four notifications, numbered 1-4, each with that Task version."""
    sid = subscribe(client, app, peer, "Task?requester=Organization/hosp")
    body = post(client, "Task", task()).get_json()
    for status in ("accepted", "in-progress", "completed"):
        body = put(client, f"Task/{body['id']}", dict(body, status=status)).get_json()
    assert deliver(app) == {"delivered": 4}
    assert deliver(app) == {}  # nothing is sent twice
    events = delivered(peer)[1:]
    assert [status_params(b)["notification-event"]["event-number"] for b in events] == ["1", "2", "3", "4"]
    assert [status_params(b)["events-since-subscription-start"] for b in events] == ["1", "2", "3", "4"]
    assert [b["entry"][1]["resource"]["status"] for b in events] == ["requested", "accepted", "in-progress", "completed"]
    assert [b["entry"][1]["resource"]["meta"]["versionId"] for b in events] == ["1", "2", "3", "4"]
    first = events[0]
    assert status_params(first)["type"] == "event-notification" and status_params(first)["status"] == "active"
    assert status_params(first)["notification-event"]["focus"]["reference"].endswith(f"/Task/{body['id']}")
    assert first["entry"][1]["request"] == {"method": "POST", "url": "Task"}
    assert events[1]["entry"][1]["request"] == {"method": "PUT", "url": f"Task/{body['id']}"}
    assert len({b["id"] for b in events}) == 4
    assert sid in status_params(first)["subscription"]["reference"]


def test_id_only_and_empty_payloads(client, app, peer):
    """id-only: the focus entry has fullUrl and request but no resource; empty: the status Parameters alone, no focus, no topic."""
    subscribe(client, app, peer, content="id-only")
    subscribe(client, app, peer, content="empty")
    reset(peer)
    tid = post(client, "Task", task()).get_json()["id"]
    deliver(app)
    by_content = {len(b["entry"]): b for b in delivered(peer)}
    id_only, empty = by_content[2], by_content[1]
    entry = id_only["entry"][1]
    assert "resource" not in entry and entry["fullUrl"].endswith(f"/Task/{tid}")
    assert entry["request"] == {"method": "POST", "url": "Task"} and entry["response"]["etag"] == 'W/"1"'
    assert status_params(id_only)["topic"] == TOPIC
    params = status_params(empty)
    assert "topic" not in params and "focus" not in params["notification-event"]
    assert params["notification-event"]["event-number"] == "1"


def test_a_filter_or_topic_that_does_not_match_sends_nothing(client, app, peer):
    """Another requester's Task, and a draft Task (the topic excludes drafts), make no notification."""
    subscribe(client, app, peer, "Task?requester=Organization/hosp", "status=requested,accepted")
    post(client, "Task", task(requester="Organization/other"))
    post(client, "Task", task(status="draft"))
    post(client, "Task", task(status="in-progress"))
    assert [r.kind for r in rows(app)] == ["handshake"]
    post(client, "Task", task(requester="http://localhost/fhir/Organization/hosp"))  # our own base, absolute
    assert [r.kind for r in rows(app)] == ["handshake", "event-notification"]


def test_plain_r4_criteria_is_a_task_topic_filter(client, app, peer):
    """criteria `Task?owner=Organization/x` is the Gravity Task topic filtered by owner."""
    subscribe(client, app, peer, criteria="Task?owner=Organization/iop")
    post(client, "Task", task(owner="Organization/elsewhere"))
    post(client, "Task", task())
    deliver(app)
    [event] = delivered(peer)[1:]
    assert status_params(event)["topic"] == TOPIC and event["entry"][1]["resource"]["owner"]["reference"] == "Organization/iop"


def test_headers_are_sent_with_every_notification(client, app, peer):
    """channel.header lines become HTTP headers (e.g. the receiver's bearer token)."""
    from subscription_helpers import received
    subscribe(client, app, peer, headers=["Authorization: Bearer hospital-token", "X-Hospital: north"])
    [request] = received(peer)
    assert request["headers"]["authorization"] == "Bearer hospital-token" and request["headers"]["x-hospital"] == "north"
    assert request["headers"]["content-type"] == "application/fhir+json"


def test_deleted_task_is_an_event_matched_on_its_last_version(client, app, peer):
    """The topic covers delete: filters are evaluated on the version before the delete."""
    subscribe(client, app, peer, "Task?requester=Organization/hosp", content="id-only")
    tid = post(client, "Task", task()).get_json()["id"]
    assert client.delete(f"/fhir/Task/{tid}").status_code == 204
    deliver(app)
    deleted = delivered(peer)[-1]["entry"][1]
    assert deleted["request"] == {"method": "DELETE", "url": f"Task/{tid}"} and deleted["response"]["status"] == "204 No Content"


@pytest.mark.parametrize("change, expression", [
    (lambda s: s.update(criteria="http://example.org/SubscriptionTopic/encounter-start"), "Subscription.criteria"),
    (lambda s: s.update(criteria="Encounter?status=in-progress"), "Subscription.criteria"),
    (lambda s: s["channel"].update(type="email", endpoint="mailto:x@example.org"), "Subscription.channel.type"),
    (lambda s: s["channel"].update(payload="application/fhir+xml"), "Subscription.channel.payload"),
    (lambda s: s["channel"].pop("payload"), "Subscription.channel.payload"),
    (lambda s: s["channel"]["_payload"]["extension"][0].update(valueCode="everything"), "Subscription.channel.payload.extension[0]"),
    (lambda s: s["channel"].update(endpoint="ftp://hospital.example.org/in"), "Subscription.channel.endpoint"),
    (lambda s: s["channel"].update(endpoint="http://hospital.example.org/fhir"), "Subscription.channel.endpoint"),
    (lambda s: s["channel"].update(endpoint="hospital/fhir"), "Subscription.channel.endpoint"),
    (lambda s: s["channel"].pop("endpoint"), "Subscription.channel.endpoint"),
    (lambda s: s["channel"].update(header=["Authorization Bearer x"]), "Subscription.channel.header[0]"),
    (lambda s: s["channel"].update(header=["X-Ok: 1", "X-Evil: a\r\nHost: other"]), "Subscription.channel.header[1]"),
    (lambda s: s["channel"].update(header=["Content-Type: text/plain"]), "Subscription.channel.header[0]"),
    (lambda s: s["channel"].update(extension=[{"url": EXT + "backport-heartbeat-period", "valueUnsignedInt": 5}]),
     "Subscription.channel.extension[0]"),
    (lambda s: s["channel"].update(extension=[{"url": EXT + "backport-timeout", "valueUnsignedInt": 600}]),
     "Subscription.channel.extension[0]"),
    (lambda s: s.update(_criteria={"extension": [{"url": EXT + "backport-filter-criteria", "valueString": "Task?patient=Patient/1"}]}),
     "Subscription.criteria.extension[0]"),
    (lambda s: s.update(_criteria={"extension": [{"url": EXT + "backport-filter-criteria", "valueString": "Encounter?status=x"}]}),
     "Subscription.criteria.extension[0]"),
    (lambda s: s.update(_criteria={"extension": [{"url": EXT + "backport-filter-criteria", "valueString": "_lastUpdated=gt2026-13"}]}),
     "Subscription.criteria.extension[0]"),
    (lambda s: s.update(_criteria={"extension": [{"url": EXT + "backport-filter-criteria", "valueString": "Task?owner.name=x"}]}),
     "Subscription.criteria.extension[0]"),
    (lambda s: s.update(_criteria={"extension": [{"url": EXT + "backport-filter-criteria", "valueString": "Task?status:missing=true"}]}),
     "Subscription.criteria.extension[0]"),
    (lambda s: s.update(_criteria={"extension": [{"url": EXT + "backport-filter-criteria", "valueString": "Task?_count=1"}]}),
     "Subscription.criteria.extension[0]"),
    (lambda s: s.update(_criteria={"extension": [{"url": EXT + "backport-filter-criteria", "valueString": "owner"}]}),
     "Subscription.criteria.extension[0]"),
    (lambda s: s.update(status="active"), "Subscription.status"),
    (lambda s: s.update(status="error"), "Subscription.status"),
])
def test_bad_subscription_is_422_naming_the_element_and_stores_nothing(client, app, change, expression):
    """Unsupported topics, channels, payloads, endpoints, headers, periods, filters and statuses are refused whole."""
    sub = subscription("https://hospital.example.org/fhir/notify")
    change(sub)
    assert_outcome(post(client, "Subscription", sub), 422, expression=expression)
    assert count_rows(app) == 0 and rows(app) == []


def test_bad_subscription_in_a_transaction_rolls_back_everything(client, app):
    """A refused Subscription inside a transaction Bundle leaves neither the other entries nor a handshake."""
    bad = subscription("ftp://hospital.example.org/in")
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": task(), "request": {"method": "POST", "url": "Task"}},
        {"resource": bad, "request": {"method": "POST", "url": "Subscription"}}]}
    assert_outcome(post(client, "", bundle), 422)
    assert count_rows(app) == 0 and rows(app) == []


def test_status_rules_for_client_writes(client, app, peer):
    """Clients may stop a Subscription (off) and resume it (active) without a handshake; they cannot skip one."""
    sid = post(client, "Subscription", subscription(f"{peer}/Bundle")).get_json()["id"]
    current = client.get(f"/fhir/Subscription/{sid}").get_json()
    assert_outcome(put(client, f"Subscription/{sid}", dict(current, status="active")), 422, expression="Subscription.status")
    off = put(client, f"Subscription/{sid}", dict(current, status="off")).get_json()
    resumed = put(client, f"Subscription/{sid}", dict(off, status="active"))
    assert resumed.status_code == 200 and resumed.get_json()["status"] == "active"
    assert [r.kind for r in rows(app)] == ["handshake"]  # resuming sends no second handshake


def test_an_enqueue_in_a_failed_request_leaves_no_row(client, app, peer):
    """A Task write that matches a Subscription but whose transaction fails later writes no outbox row."""
    subscribe(client, app, peer)
    before = len(rows(app))
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": task(), "request": {"method": "POST", "url": "Task"}},
        {"resource": {"resourceType": "Patient", "gender": "bogus"}, "request": {"method": "POST", "url": "Patient"}}]}
    assert post(client, "", bundle).status_code == 400
    assert len(rows(app)) == before
    assert client.get("/fhir/Task").get_json()["total"] == 0


def test_subscription_turned_off_gets_no_new_events_and_queued_ones_are_cancelled(client, app, peer):
    """The per-process cache is dropped when a Subscription changes; what was queued before `off` is not sent."""
    sid = subscribe(client, app, peer)
    post(client, "Task", task())
    current = client.get(f"/fhir/Subscription/{sid}").get_json()
    put(client, f"Subscription/{sid}", dict(current, status="off"))
    post(client, "Task", task())
    assert [r.kind for r in rows(app)] == ["handshake", "event-notification"]
    assert deliver(app) == {"cancelled": 1}
    assert "is off" in rows(app)[1].last_error and len(delivered(peer)) == 1


def test_a_subscription_changed_by_another_process_is_seen(client, app, peer):
    """The cache checks a generation read in the writing transaction, so another process's change is never missed."""
    sid = subscribe(client, app, peer)
    post(client, "Task", task())  # the active set is now cached
    with app.extensions["iop.db"].write() as conn:  # what another process's write does to the row
        content = json.loads(conn.execute(text("SELECT content FROM resource WHERE id = :id"), {"id": sid}).scalar_one())
        content["status"] = "off"
        conn.execute(text("UPDATE resource SET content = :c, version = version + 1 WHERE id = :id"), {"c": json.dumps(content), "id": sid})
    post(client, "Task", task())
    assert [r.kind for r in rows(app)].count("event-notification") == 1


def test_a_unit_without_a_task_or_subscription_queries_nothing_for_notifications(client, app, peer):
    """Creating a Patient runs no statement on subscriptions or the outbox (the create benchmark pays nothing)."""
    subscribe(client, app, peer)
    seen: list[str] = []
    engine = app.extensions["iop.db"].engine

    def record(conn, cursor, statement, parameters, *args):
        seen.append(f"{statement} {parameters}")
    event.listen(engine, "before_cursor_execute", record)
    try:
        assert post(client, "Patient", {"resourceType": "Patient", "gender": "other"}).status_code == 201
        assert not [s for s in seen if "outbox_message" in s or "subscription_state" in s or "Subscription" in s]
        post(client, "Task", task())  # the listener does see the stage's statements
        assert [s for s in seen if "Subscription" in s] and [s for s in seen if "outbox_message" in s]
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_event_numbers_stay_unique_with_concurrent_writers(app, client, peer):
    """Several threads writing Tasks at once: every event of the Subscription gets its own number, none skipped."""
    subscribe(client, app, peer)
    db, errors = app.extensions["iop.db"], []
    options = interactions.Options("http://localhost/fhir")

    def writer() -> None:
        try:
            for _ in range(5):
                interactions.run(db, lambda unit: interactions.create(unit, task()), options)
        except Exception as err:  # surfaced by the assertion below
            errors.append(err)
    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    numbers = sorted(int(status_params(payload(r))["notification-event"]["event-number"]) for r in rows(app)[1:])
    assert numbers == list(range(1, 21))


def test_status_operation(client, app, peer):
    """Subscription/{id}/$status: a searchset with the query-status Parameters (status, topic, events so far)."""
    sid = subscribe(client, app, peer)
    post(client, "Task", task())
    response = client.get(f"/fhir/Subscription/{sid}/$status")
    assert response.status_code == 200
    bundle = response.get_json()
    assert bundle["type"] == "searchset" and bundle["total"] == 1
    params = {p["name"]: p for p in bundle["entry"][0]["resource"]["parameter"]}
    assert params["type"]["valueCode"] == "query-status" and params["status"]["valueCode"] == "active"
    assert params["events-since-subscription-start"]["valueString"] == "1" and params["topic"]["valueCanonical"] == TOPIC
    assert_outcome(client.get("/fhir/Subscription/nope/$status"), 404)


def test_capability_statement_declares_backport_support(client):
    """The Subscription entry names the backport profile, $status and the topics we serve."""
    statement = client.get("/fhir/metadata").get_json()
    [entry] = [r for r in statement["rest"][0]["resource"] if r["type"] == "Subscription"]
    assert EXT + "backport-subscription" in entry["supportedProfile"]
    assert {"name": "status", "definition": "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status"} \
        in entry["operation"]
    assert entry["extension"] == [{"url": EXT + "capabilitystatement-subscriptiontopic-canonical", "valueCanonical": TOPIC}]

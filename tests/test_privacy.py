"""42 CFR Part 2: labels at write time, consent evaluation, and every read path of an outside client (docs/security.md).

The program (the `client` fixture, IOP_AUTH=off: inside the program) writes the clinical data; the referring hospital A
and hospital B read through tokens of the auth app. Hospital A's referral Task names A as requester, so A sees the
referral, its patient and what was sent back in Task.output; Part 2 data among them only under a consent.
"""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from auth_helpers import bearer, make_client
from sqlalchemy import select

from helpers import FHIR, assert_outcome, post, put
from service import dates, privacy
from service.tables import outbox_message

ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PART2 = {("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "R"), (ACT, "42CFRPart2"), (ACT, "SUD"), (ACT, "NORDSCLCD")}
PSYTHPN = {"system": ACT, "code": "PSYTHPN"}
LABELS = [{"system": ACT, "code": "42CFRPart2"}]
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
SCOPES = "system/Task.cruds system/ServiceRequest.cr system/Patient.cr system/Subscription.cruds system/*.rs"


def labels(resource: dict) -> set[tuple[str, str]]:
    return {(s["system"], s["code"]) for s in resource.get("meta", {}).get("security", [])}


def created(client, body: dict) -> dict:
    resp = post(client, body["resourceType"], body) if "id" not in body else put(client, f"{body['resourceType']}/{body['id']}", body)
    assert resp.status_code in (200, 201), resp.get_json()
    return resp.get_json()


def condition(code: str, system: str = ICD, **extra) -> dict:
    return {"resourceType": "Condition", "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": system, "code": code}]}, **extra}


def document(rid: str, *security: dict) -> dict:
    body = {"resourceType": "DocumentReference", "id": rid, "status": "current", "subject": {"reference": "Patient/p1"},
            "content": [{"attachment": {"contentType": "text/plain", "data": "bm90ZQ=="}}]}
    return body | {"meta": {"security": list(security)}} if security else body


def consent(rid: str = "c1", actor: str = "Organization/hosp-a", purpose: str = "TREAT", status: str = "active",
            days: tuple[int, int] = (-1, 365), extra_labels: tuple[dict, ...] = ()) -> dict:
    now = dates.utcnow()
    return {"resourceType": "Consent", "id": rid, "status": status,
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": LOINC, "code": "59284-0"}]}], "patient": {"reference": "Patient/p1"},
            "policy": [{"uri": "https://www.ecfr.gov/current/title-42/chapter-I/subchapter-A/part-2"}],
            "provision": {"type": "permit",
                          "period": {"start": dates.instant(now + timedelta(days=days[0])), "end": dates.instant(now + timedelta(days=days[1]))},
                          "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                                          "code": "IRCP"}]}, "reference": {"reference": actor}}],
                          "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "disclose"}]}],
                          "securityLabel": [{"system": ACT, "code": "42CFRPart2"}, {"system": ACT, "code": "SUD"}, *extra_labels],
                          "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": purpose}]}}


# ------------------------------------------------------------------------------- labels at write time
@pytest.mark.parametrize("body, labelled", [
    (condition("F11.20"), True),
    (condition("F10.20"), True),
    (condition("F19.10"), True),
    (condition("F32.1"), False),
    (condition("F20.0"), False),
    (condition("7200002", "http://snomed.info/sct"), True),
    (condition("F11.20", "http://example.org/not-icd"), False),
    ({"resourceType": "MedicationRequest", "status": "active", "intent": "order", "subject": {"reference": "Patient/p1"},
      "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "1010604"}]}}, True),
    ({"resourceType": "MedicationRequest", "status": "active", "intent": "order", "subject": {"reference": "Patient/p1"},
      "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "312941"}]}}, False),
    ({"resourceType": "Observation", "status": "final", "subject": {"reference": "Patient/p1"},
      "code": {"coding": [{"system": LOINC, "code": "75626-2"}]}, "valueInteger": 7}, True),
    ({"resourceType": "Observation", "status": "final", "subject": {"reference": "Patient/p1"},
      "code": {"coding": [{"system": LOINC, "code": "44261-6"}]}, "valueInteger": 7}, False),
    ({"resourceType": "Patient", "meta": {"security": LABELS}}, True),  # the client's own label is completed
    ({"resourceType": "Patient"}, False),
], ids=lambda v: v if isinstance(v, bool) else v["resourceType"] + ":" + json.dumps(v.get("code") or v.get("medicationCodeableConcept") or v.get("meta"))[-30:])
def test_labels_at_write_time(client, body, labelled):
    stored = created(client, body)
    assert (labels(stored) >= PART2) is labelled
    assert bool(labels(stored)) is labelled


def test_a_resource_based_on_labelled_data_is_labelled(client):
    cond = created(client, condition("F11.20"))
    sr = created(client, {"resourceType": "ServiceRequest", "status": "active", "intent": "order", "subject": {"reference": "Patient/p1"},
                          "reasonReference": [{"reference": f"Condition/{cond['id']}"}]})
    task = created(client, {"resourceType": "Task", "status": "requested", "intent": "order", "focus": {"reference": f"ServiceRequest/{sr['id']}"}})
    plain = created(client, {"resourceType": "Task", "status": "requested", "intent": "order", "focus": {"reference": "ServiceRequest/nothing"}})
    assert labels(sr) >= PART2 and labels(task) >= PART2
    assert labels(plain) == set()


def test_labels_are_never_removed_by_an_update(client):
    cond = created(client, condition("F11.20"))
    bare = {k: v for k, v in cond.items() if k != "meta"} | {"code": {"text": "recoded without a code"}}
    again = put(client, f"Condition/{cond['id']}", bare).get_json()
    assert labels(again) >= PART2
    created(client, document("note-1", PSYTHPN))
    again = put(client, "DocumentReference/note-1", document("note-1")).get_json()
    assert (ACT, "PSYTHPN") in labels(again)


def test_a_bundle_keeps_its_high_water_mark_as_written(client):
    body = {"resourceType": "Bundle", "type": "collection", "meta": {"security": LABELS}}
    assert labels(created(client, body)) == {(ACT, "42CFRPart2")}


def test_a_resend_of_the_same_content_without_labels_makes_no_new_version(client):
    cond = created(client, condition("F11.20", id="c-same"))
    again = put(client, "Condition/c-same", condition("F11.20", id="c-same"))
    assert again.status_code == 200 and again.get_json()["meta"]["versionId"] == cond["meta"]["versionId"]


# ------------------------------------------------------------------------------- the world of hospital A's referral
@pytest.fixture
def world(client, auth_app, auth_client):
    """Hospital A's referral (A wrote the Task and its ServiceRequest), the program's labelled data about its patient,
    and clients for A, B and the aftercare provider. Returns a dict of headers and ids."""
    for oid in ("hosp-a", "hosp-b", "after-c", "iop"):
        created(client, {"resourceType": "Organization", "id": oid, "name": oid})
    created(client, {"resourceType": "Patient", "id": "p1"})
    created(client, {"resourceType": "Patient", "id": "p2"})
    a_id, a_key = make_client(auth_app, "Hospital A", SCOPES, organization="Organization/hosp-a")
    b_id, b_key = make_client(auth_app, "Hospital B", SCOPES, organization="Organization/hosp-b")
    a = bearer(auth_client, auth_app, a_id, a_key)
    b = bearer(auth_client, auth_app, b_id, b_key)
    sr = post(auth_client, "ServiceRequest", {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                                              "subject": {"reference": "Patient/p1"}, "meta": {"security": LABELS}}, **a).get_json()
    task = post(auth_client, "Task", {"resourceType": "Task", "status": "requested", "intent": "order",
                                      "requester": {"reference": "Organization/hosp-a"}, "owner": {"reference": "Organization/iop"},
                                      "focus": {"reference": f"ServiceRequest/{sr['id']}"}, "for": {"reference": "Patient/p1"}}, **a).get_json()
    created(client, document("doc-a", {"system": ACT, "code": "42CFRPart2"}))  # the program's discharge summary
    created(client, document("note-a", {"system": ACT, "code": "42CFRPart2"}, PSYTHPN))  # a counseling note
    created(client, document("plain-a"))  # not Part 2 data
    oud = created(client, condition("F11.20", id="oud-1"))  # not sent to A: hidden
    task["output"] = [{"type": {"text": "sent back"}, "valueReference": {"reference": f"DocumentReference/{d}"}}
                      for d in ("doc-a", "note-a", "plain-a")]
    task = put(client, f"Task/{task['id']}", task).get_json()  # the program sends documents back
    return {"a": a, "b": b, "task": task["id"], "sr": sr["id"], "oud": oud["id"], "client": auth_client}


def get(world, path: str, who: str = "a", **headers):
    return world["client"].get(f"/fhir/{path}", headers={**world[who], **headers})


def ids(bundle: dict, mode: str | None = None) -> set[str]:
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])
            if "resource" in e and e["resource"]["resourceType"] != "OperationOutcome" and (mode is None or e["search"]["mode"] == mode)}


def outcome_texts(bundle: dict) -> str:
    return " ".join(i["diagnostics"] for e in bundle.get("entry", []) if e.get("resource", {}).get("resourceType") == "OperationOutcome"
                    for i in e["resource"]["issue"])


def test_own_referral_is_visible_without_consent_and_others_are_not_found(world):
    assert get(world, f"Task/{world['task']}").status_code == 200
    assert get(world, f"ServiceRequest/{world['sr']}").status_code == 200
    assert get(world, "Patient/p1").status_code == 200
    assert get(world, "DocumentReference/plain-a").status_code == 200
    assert get(world, "Organization/hosp-b").status_code == 200  # directory data
    assert_outcome(get(world, f"Condition/{world['oud']}"), 404)  # not sent to A
    assert_outcome(get(world, "Patient/p2"), 404)
    for path in (f"Task/{world['task']}", "Patient/p1", "DocumentReference/plain-a", "DocumentReference/doc-a"):
        assert_outcome(get(world, path, "b"), 404)  # not B's referral


def test_part2_data_needs_a_consent_for_the_recipient(world, client):
    body = assert_outcome(get(world, "DocumentReference/doc-a"), 403, "security")
    assert "42 CFR Part 2" in body["issue"][0]["diagnostics"]
    created(client, consent())
    resp = get(world, "DocumentReference/doc-a")
    assert resp.status_code == 200
    assert resp.headers[privacy.NOTICE_HEADER].startswith(privacy.NOTICE)
    assert "Consent/c1" in resp.headers[privacy.NOTICE_HEADER] and "<Consent/c1>" in resp.headers["Link"]
    assert privacy.NOTICE_HEADER not in get(world, "DocumentReference/plain-a").headers  # not a Part 2 disclosure


@pytest.mark.parametrize("given", [
    dict(actor="Organization/hosp-b"),
    dict(days=(-30, -1)),  # expired
    dict(days=(1, 30)),  # not yet
    dict(purpose="HPAYMT"),
    dict(status="inactive"),
    dict(status="draft"),
])
def test_a_consent_that_does_not_cover_the_disclosure_permits_nothing(world, client, given):
    created(client, consent(**given))
    assert_outcome(get(world, "DocumentReference/doc-a"), 403, "security")


def test_the_purpose_of_use_of_the_request_is_matched(world, client):
    created(client, consent(purpose="HPAYMT"))
    assert get(world, "DocumentReference/doc-a", **{"X-Purpose-Of-Use": "HPAYMT"}).status_code == 200
    assert_outcome(get(world, "DocumentReference/doc-a"), 403)  # TREAT by default


def test_use_against_the_patient_and_nested_provisions_are_never_permitted(world, client):
    created(client, consent(purpose="HLEGAL"))
    assert_outcome(get(world, "DocumentReference/doc-a", **{"X-Purpose-Of-Use": "HLEGAL"}), 403)
    nested = consent("c-nested")
    nested["provision"]["provision"] = [{"type": "deny", "securityLabel": [PSYTHPN]}]
    created(client, nested)
    assert_outcome(get(world, "DocumentReference/doc-a"), 403)


def test_revocation_takes_effect_at_once(world, client):
    given = created(client, consent())
    assert get(world, "DocumentReference/doc-a").status_code == 200
    put(client, "Consent/c1", given | {"status": "inactive"})
    assert_outcome(get(world, "DocumentReference/doc-a"), 403)


def test_a_counseling_note_needs_a_consent_of_its_own(world, client):
    created(client, consent())
    assert_outcome(get(world, "DocumentReference/note-a"), 403)
    created(client, consent("c2", extra_labels=(PSYTHPN,)))
    assert get(world, "DocumentReference/note-a").status_code == 200


def test_vread_and_instance_history(world, client):
    assert_outcome(get(world, "DocumentReference/doc-a/_history/1"), 403)
    assert_outcome(get(world, "DocumentReference/doc-a/_history"), 403)
    assert_outcome(get(world, "DocumentReference/doc-a/_history/1", "b"), 404)
    created(client, consent())
    assert get(world, "DocumentReference/doc-a/_history/1").status_code == 200
    hist = get(world, "DocumentReference/doc-a/_history")
    assert hist.status_code == 200 and hist.headers[privacy.NOTICE_HEADER].startswith(privacy.NOTICE)
    assert {"system": ACT, "code": "RedisclosureProhibitionMark", "display": "prohibition against redisclosure mark"} \
        in hist.get_json()["meta"]["security"]


def test_search_leaves_out_what_is_withheld(world, client):
    bundle = get(world, "DocumentReference").get_json()
    assert ids(bundle) == {"DocumentReference/plain-a"}
    assert "withheld" in outcome_texts(bundle) and "total" not in bundle or bundle["total"] == 1
    assert "security" not in bundle["meta"]
    assert ids(get(world, "DocumentReference", "b").get_json()) == set()
    created(client, consent())
    bundle = get(world, "DocumentReference").get_json()
    assert ids(bundle) == {"DocumentReference/plain-a", "DocumentReference/doc-a"}
    assert privacy.NOTICE in outcome_texts(bundle) and "Consent/c1" in outcome_texts(bundle)
    assert bundle["meta"]["security"][0]["code"] == "RedisclosureProhibitionMark"


def test_include_and_revinclude_are_screened(world, client):
    bundle = get(world, "Patient?_id=p1&_revinclude=DocumentReference:subject&_revinclude=Condition:subject").get_json()
    assert ids(bundle, "match") == {"Patient/p1"}
    assert ids(bundle, "include") == {"DocumentReference/plain-a"}
    bundle = get(world, f"Task?_id={world['task']}&_include=Task:focus").get_json()
    assert ids(bundle) == {f"Task/{world['task']}", f"ServiceRequest/{world['sr']}"}
    created(client, consent())
    bundle = get(world, "Patient?_id=p1&_revinclude=DocumentReference:subject&_revinclude=Condition:subject").get_json()
    assert ids(bundle, "include") == {"DocumentReference/plain-a", "DocumentReference/doc-a"}  # never the hidden Condition


def test_type_and_system_history_are_screened(world, client):
    bundle = get(world, "DocumentReference/_history").get_json()
    assert {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]} == {"DocumentReference/plain-a"}
    assert "total" not in bundle
    system = get(world, "_history?_count=100").get_json()
    seen = {e["fullUrl"].split("/fhir/")[1] for e in system["entry"]}
    assert f"Condition/{world['oud']}" not in seen and "DocumentReference/doc-a" not in seen and "Patient/p2" not in seen
    assert f"Task/{world['task']}" in seen


def test_everything_is_screened(world, client):
    bundle = get(world, "Patient/p1/$everything").get_json()
    assert ids(bundle) == {"Patient/p1", f"Task/{world['task']}", f"ServiceRequest/{world['sr']}", "DocumentReference/plain-a"}
    assert "withheld" in outcome_texts(bundle)
    assert_outcome(get(world, "Patient/p2/$everything"), 404)
    created(client, consent())
    assert "DocumentReference/doc-a" in ids(get(world, "Patient/p1/$everything").get_json())


def test_batch_and_transaction_responses_are_screened(world, client):
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "DocumentReference/doc-a"}},
        {"request": {"method": "GET", "url": "DocumentReference"}},
        {"request": {"method": "GET", "url": f"Condition/{world['oud']}"}}]}
    resp = world["client"].post("/fhir", data=json.dumps(batch), headers={**world["a"], "Content-Type": FHIR}).get_json()
    statuses = [e["response"]["status"] for e in resp["entry"]]
    assert statuses[0].startswith("403") and statuses[1].startswith("200") and statuses[2].startswith("404")
    assert ids(resp["entry"][1]["resource"]) == {"DocumentReference/plain-a"}
    tx = dict(batch, type="transaction", entry=batch["entry"][1:2])
    resp = world["client"].post("/fhir", data=json.dumps(tx), headers={**world["a"], "Content-Type": FHIR}).get_json()
    assert ids(resp["entry"][0]["resource"]) == {"DocumentReference/plain-a"}


def test_an_outside_client_cannot_change_or_delete_what_it_may_not_see(world):
    doc = document("doc-a")
    assert_outcome(world["client"].put("/fhir/DocumentReference/doc-a", data=json.dumps(doc), headers={**world["a"], "Content-Type": FHIR}), 403)
    assert_outcome(world["client"].delete(f"/fhir/Task/{world['task']}", headers=world["b"]), 404)
    assert world["client"].delete(f"/fhir/Task/{world['task']}", headers=world["a"]).status_code == 204


def test_a_conditional_create_does_not_hand_over_a_match_the_client_may_not_see(world, client):
    mrn = {"system": "https://iop.example.org/fhir/sid/mrn", "value": "MRN-2"}
    created(client, {"resourceType": "Patient", "id": "p2", "identifier": [mrn]})
    resp = post(world["client"], "Patient", {"resourceType": "Patient", "identifier": [mrn]},
                **world["b"], **{"If-None-Exist": f"identifier={mrn['system']}|MRN-2"})
    assert_outcome(resp, 404)


def test_a_referral_sent_by_a_hospital_runs_the_program_workflows(program, auth_app, auth_client):
    """The workflows a hospital's referral triggers act for the program; the Task the referral workflow creates for a
    ServiceRequest sent without one is part of the hospital's referral (it can read it)."""
    from helpers import example

    client = program
    cid, key = make_client(auth_app, "Lakeside", "system/*.cruds", organization="Organization/hosp-org-lakeside")
    headers = bearer(auth_client, auth_app, cid, key)
    bundle = example("journey-01-referral.json")
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Task"]
    resp = post(auth_client, "", bundle, **headers)
    assert resp.status_code == 200, resp.get_json()
    written = [e["response"]["location"].split("/_history")[0] for e in resp.get_json()["entry"]]
    stamped = [r for r in written if client.get(f"/fhir/{r}").get_json().get("meta", {}).get("source", "").startswith(privacy.WRITER)]
    assert stamped == written  # what the hospital sent is its own
    [task] = [e["resource"] for e in client.get("/fhir/Task").get_json()["entry"]]
    assert task["meta"]["source"].endswith("#Organization/hosp-org-lakeside")
    assert auth_client.get(f"/fhir/Task/{task['id']}", headers=headers).status_code == 200
    assert labels(task) >= PART2  # its focus, the referral, is Part 2 data


def test_the_creator_stamp_cannot_be_forged(world):
    forged = {"resourceType": "Patient", "meta": {"source": f"{privacy.WRITER}x#Organization/hosp-b"}}
    resp = post(world["client"], "Patient", forged, **world["a"]).get_json()
    assert resp["meta"]["source"].endswith("#Organization/hosp-a")
    assert_outcome(get(world, f"Patient/{resp['id']}", "b"), 404)


def test_refusals_are_audited(world, client, auth_app):
    import time

    from service import audit

    get(world, "DocumentReference/doc-a")
    refs: list[str] = []
    for _ in range(20):  # the read audits are written by a buffer (service/audit.py); flush, then look
        audit.flush(auth_app)
        events = client.get("/fhir/AuditEvent?outcome=4&_count=500").get_json().get("entry", [])
        refs = [ent.get("what", {}).get("reference", "") for e in events for ent in e["resource"].get("entity", [])]
        if any(r.startswith("DocumentReference/doc-a") for r in refs):
            break
        time.sleep(0.1)
    assert any(r.startswith("DocumentReference/doc-a") for r in refs), refs


# ------------------------------------------------------------------------------- notification payloads
def payloads(app) -> list[dict]:
    with app.extensions["iop.db"].read() as conn:
        rows = conn.execute(select(outbox_message.c.kind, outbox_message.c.payload).order_by(outbox_message.c.pk)).all()
    return [json.loads(p) for kind, p in rows if kind == "event-notification"]


def test_notification_payloads_follow_what_the_subscriber_may_see(world, client, app, peer_server):
    from subscription_helpers import deliver, reset, subscription

    reset(peer_server)
    sub = post(world["client"], "Subscription", subscription(f"{peer_server}/Bundle"), **world["a"]).get_json()
    deliver(app)  # the handshake makes it active
    assert client.get(f"/fhir/Subscription/{sub['id']}").get_json()["status"] == "active"
    own = client.get(f"/fhir/Task/{world['task']}").get_json()
    put(client, f"Task/{world['task']}", own | {"status": "accepted"})  # A's own Task: full resource
    program = created(client, {"resourceType": "Task", "status": "requested", "intent": "order",
                               "requester": {"reference": "Organization/hosp-a"}, "focus": {"reference": "DocumentReference/doc-a"},
                               "for": {"reference": "Patient/p1"}})  # labelled (its focus is), written by the program
    other = created(client, {"resourceType": "Task", "status": "requested", "intent": "order",
                             "requester": {"reference": "Organization/hosp-b"}, "for": {"reference": "Patient/p2"}})
    sent: dict[str, list] = {}
    for bundle in payloads(app):
        if not bundle["entry"][0]["resource"]["parameter"][0]["valueReference"]["reference"].endswith(sub["id"]):
            continue
        params = {p["name"]: p for p in bundle["entry"][0]["resource"]["parameter"]}
        focus = bundle["entry"][1:]
        key = focus[0]["fullUrl"].split("/fhir/")[-1] if focus else "empty"
        sent.setdefault(key, []).append(("resource" in focus[0]) if focus else params.get("topic"))
    assert sent[f"Task/{world['task']}"] == [True]
    assert sent[f"Task/{program['id']}"] == [False]  # id-only: no consent for the labelled Task
    assert f"Task/{other['id']}" not in sent and sent["empty"] == [None]  # B's referral: an empty payload
    created(client, consent())
    put(client, f"Task/{program['id']}", program | {"status": "accepted"})
    assert payloads(app) and sent is not None
    last = payloads(app)[-1]
    assert "resource" in last["entry"][1]  # with a consent: the full resource

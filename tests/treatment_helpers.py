"""Helpers of the issue-10 treatment tests (reconciliation, discharge summary, aftercare, outcomes), through HTTP:
an admitted referral (journey-01 to the intake session) and the program's medication orders of journey-05."""
from __future__ import annotations

import copy

from test_referrals import attend_intake, decide, referral_bundle, search, the_task

from helpers import example, post, put

HOSPITAL_RX = "https://hospital.example.org/fhir/sid/medication-order"
RECONCILE = "$reconcile-medications"


def admitted(client, bundle: dict | None = None) -> dict:
    """journey-01's referral (or `bundle`), triaged, accepted and admitted at its intake session; the active enrollment."""
    resp = post(client, "", bundle or referral_bundle())
    assert resp.status_code == 200, resp.get_data(as_text=True)
    task = the_task(client)
    assert post(client, f"Task/{task['id']}/$triage", {"resourceType": "Parameters"}).status_code == 200
    resp = decide(client, task["id"], "accept", intakeStart={"valueDateTime": "2026-11-30T16:00:00-06:00"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    [episode] = search(client, f"EpisodeOfCare?incoming-referral={task['focus']['reference']}")
    attend_intake(client, episode)
    return client.get(f"/fhir/EpisodeOfCare/{episode['id']}").get_json()


def hospital_order(client, number: str) -> str:
    """The referral's medication RX-2026-<number> as stored here: 'MedicationRequest/<id>'."""
    [order] = search(client, f"MedicationRequest?identifier={HOSPITAL_RX}|RX-2026-{number}")
    return f"MedicationRequest/{order['id']}"


def program_orders(client, episode: dict) -> dict[str, str]:
    """journey-05's orders for the enrollment's patient (naltrexone continues the hospital's, sertraline and
    trazodone); returns name -> 'MedicationRequest/<id>'."""
    out = {}
    for entry in example("journey-05-medications.json")["entry"]:
        order = copy.deepcopy(entry["resource"])
        order["subject"] = episode["patient"]
        for key in ("encounter", "reasonReference"):
            order.pop(key, None)
        if "priorPrescription" in order:
            order["priorPrescription"] = {"reference": hospital_order(client, "55101")}
        resp = put(client, f"MedicationRequest/{order['id']}", order)
        assert resp.status_code in (200, 201), resp.get_data(as_text=True)
        out[order["id"].rsplit("-", 1)[1]] = f"MedicationRequest/{order['id']}"
    return out


def decision(item: str, action: str, order: str | None = None, note: str | None = None) -> dict:
    part = [{"name": "item", "valueReference": {"reference": item}}, {"name": "action", "valueCode": action}]
    if order:
        part.append({"name": "order", "valueReference": {"reference": order}})
    if note:
        part.append({"name": "note", "valueString": note})
    return {"name": "medication", "part": part}


def reconcile(client, episode: dict, phase: str, *decisions: dict, reconciler: str = "Practitioner/iop-pract-psychiatrist",
              date: str | None = "2026-11-30T18:00:00-06:00"):
    params = [{"name": "phase", "valueCode": phase}, {"name": "reconciler", "valueReference": {"reference": reconciler}}]
    if date:
        params.append({"name": "date", "valueDateTime": date})
    return post(client, f"EpisodeOfCare/{episode['id']}/{RECONCILE}", {"resourceType": "Parameters",
                                                                       "parameter": params + list(decisions)})


def intake_decisions(client, orders: dict[str, str]) -> list[dict]:
    """Naltrexone continued by the program's order, sertraline changed to the program's, trazodone new."""
    return [decision(hospital_order(client, "55101"), "continued", orders["naltrexone"]),
            decision(hospital_order(client, "55102"), "changed", orders["sertraline"], "Taken in the morning"),
            decision(orders["trazodone"], "new", note="For sleep, as needed")]


def flags(listing: dict) -> dict[str, str]:
    """A reconciled List's entries: item reference -> decision code."""
    return {e["item"]["reference"]: e["flag"]["coding"][0]["code"] for e in listing.get("entry", [])}

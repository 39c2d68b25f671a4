"""Issue 10 end to end, over real HTTP only, from examples/: a referred patient is admitted; a plan applied from the
co-occurring template is tailored and agreed by the patient with the sister contributing; weekly PHQ-9 and GAD-7
responses are scored (totals and bands computed here from the instruments' rules); the goals reach achieved when the
scores cross their targets; a PHQ-9 with item 9 positive raises the safety Task and Flag; an extended-release
naltrexone injection is scheduled every 4 weeks; medications are reconciled at intake and discharge; the discharge
summary carries the relapse prevention plan and the reconciled medications; discharge makes the 30/60/90-day
follow-ups. Everything these flows create is checked with the Medplum validator (and our guide where it claims it)."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import requests
from test_conformance import assert_valid

from helpers import EXAMPLES, example

FHIR = {"Content-Type": "application/fhir+json"}
LOINC = "http://loinc.org"
CS = "https://iop.example.org/fhir/CodeSystem"
SID = "https://iop.example.org/fhir/sid"
EPISODE_EXT = "http://hl7.org/fhir/StructureDefinition/workflow-episodeOfCare"
ALUMNI = "https://iop.example.org/fhir/StructureDefinition/aftercare-alumni-group"
CONSENT_SIGNATURE = {"system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.7", "display": "Consent Signature"}
THERAPIST, PSYCHIATRIST = "Practitioner/iop-pract-therapist", "Practitioner/iop-pract-psychiatrist"
SISTER, SPONSOR, TEAM = "RelatedPerson/iop-relperson-4-sister", "RelatedPerson/iop-relperson-1-sponsor", "CareTeam/iop-careteam-4"
SETUP_TYPES = ("Organization", "HealthcareService", "Location", "Practitioner", "PractitionerRole", "ActivityDefinition",
               "PlanDefinition")
# The instruments' published items (LOINC) and answer scores 0-3 (LOINC LA6568-5 ... LA6571-9)
PHQ9_ITEMS = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"]
GAD7_ITEMS = ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]
ANSWERS = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]


def phq9_band(total: int) -> str:
    """Kroenke 2001: 0-4 minimal, 5-9 mild, 10-14 moderate, 15-19 moderately severe, 20-27 severe."""
    return next(band for top, band in ((4, "minimal"), (9, "mild"), (14, "moderate"), (19, "moderately-severe"), (27, "severe"))
                if total <= top)


def gad7_band(total: int) -> str:
    """Spitzer 2006: 0-4 minimal, 5-9 mild, 10-14 moderate, 15-21 severe."""
    return next(band for top, band in ((4, "minimal"), (9, "mild"), (14, "moderate"), (21, "severe")) if total <= top)


class Api:
    """The FHIR API over real HTTP (our app on a loopback port)."""

    def __init__(self, base: str):
        self.base, self.http = base, requests.Session()

    def call(self, method: str, path: str, body: object = None, expect: tuple[int, ...] = (200, 201)) -> dict:
        resp = self.http.request(method, f"{self.base}/{path}".rstrip("/"), data=None if body is None else json.dumps(body),
                                 headers=FHIR, timeout=60)
        assert resp.status_code in expect, f"{method} {path}: {resp.status_code} {resp.text[:2000]}"
        return resp.json() if resp.content else {}

    def get(self, path: str) -> dict:
        return self.call("GET", path)

    def search(self, query: str) -> list[dict]:
        return [e["resource"] for e in self.get(query).get("entry", []) if e.get("search", {}).get("mode", "match") == "match"]

    def put(self, body: dict) -> dict:
        return self.call("PUT", f"{body['resourceType']}/{body['id']}", body)

    def post(self, path: str, body: dict, expect: tuple[int, ...] = (200, 201)) -> dict:
        return self.call("POST", path, body, expect)


def retarget(body: dict, mapping: dict[str, str]) -> dict:
    """An example with its references moved to this patient's resources."""
    text = json.dumps(body)
    for old, new in mapping.items():
        text = text.replace(f'"{old}"', f'"{new}"')
    return json.loads(text)


def params(**values: object) -> dict:
    out = []
    for name, value in values.items():
        key = {bool: "valueBoolean", dict: "valueReference"}.get(type(value), "valueString")
        out.append({"name": name.replace("_", "-"), key: value})
    return {"resourceType": "Parameters", "parameter": out}


@pytest.fixture
def api(app, live_server) -> Api:
    api = Api(live_server)
    for path in sorted(EXAMPLES.glob("*.json")):
        body = json.loads(Path(path).read_text())
        if body["resourceType"] in SETUP_TYPES:
            api.put(body)
    return api


# ------------------------------------------------------------------------------- the steps
def admit(api: Api) -> tuple[dict, str]:
    """journey-01's referral, triaged, accepted with an intake on 2026-11-30, attended: (active enrollment, patient)."""
    api.post("", example("journey-01-referral.json"))
    [task] = api.search("Task?identifier=https://hospital.example.org/fhir/sid/referral-task|T-2026-0601")
    assert api.post(f"Task/{task['id']}/$triage", {"resourceType": "Parameters"})["parameter"][0]["valueCode"] == "accept"
    api.post(f"Task/{task['id']}/$decide", {"resourceType": "Parameters", "parameter": [
        {"name": "decision", "valueCode": "accept"}, {"name": "author", "valueReference": {"reference": "Practitioner/iop-pract-counselor"}},
        {"name": "intakeStart", "valueDateTime": "2026-11-30T16:00:00-06:00"}]})
    [episode] = api.search(f"EpisodeOfCare?incoming-referral={task['focus']['reference']}")
    api.post("Encounter", {"resourceType": "Encounter", "status": "finished",
                           "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                           "subject": episode["patient"], "episodeOfCare": [{"reference": f"EpisodeOfCare/{episode['id']}"}],
                           "participant": [{"individual": {"reference": "Practitioner/iop-pract-counselor"}}],
                           "period": {"start": "2026-11-30T16:00:00-06:00", "end": "2026-11-30T19:00:00-06:00"}})
    episode = api.get(f"EpisodeOfCare/{episode['id']}")
    assert episode["status"] == "active"
    return episode, episode["patient"]["reference"]


def family_and_team(api: Api, episode: dict, patient: str) -> dict:
    """The sister (journey-03), a peer sponsor, the care team; the enrollment names the team."""
    journey = {e["resource"]["id"]: e["resource"] for e in example("journey-03-enrollment.json")["entry"] if "id" in e["resource"]}
    mrn = "Patient?identifier=https://iop.example.org/fhir/sid/mrn|IOP-000104"
    api.put(retarget(journey["iop-relperson-4-sister"], {mrn: patient}))
    api.put(retarget(example("RelatedPerson-iop-relperson-1-sponsor.json"), {"Patient/iop-patient-1": patient}))
    api.put(retarget(journey["iop-careteam-4"], {mrn: patient}))
    return api.put(dict(episode, team=[{"reference": TEAM}]))


def plan_from_template(api: Api, patient: str) -> tuple[dict, dict[str, dict]]:
    """$apply (persisted), tailored (goals made active, a note), agreed by the patient with the sister: active plan, goals."""
    plan = api.post("PlanDefinition/iop-template-co-occurring/$apply", {"resourceType": "Parameters", "parameter": [
        {"name": "subject", "valueString": patient}, {"name": "practitioner", "valueString": THERAPIST},
        {"name": "periodStart", "valueDate": "2026-11-30"}, {"name": "persist", "valueBoolean": True}]}, expect=(201,))
    assert plan["status"] == "draft" and {"reference": SISTER} in [{"reference": c["reference"]} for c in plan["contributor"]]
    goals = {}
    for ref in plan["goal"]:
        goal = api.get(ref["reference"])
        code = goal["target"][0]["measure"]["coding"][0]["code"]
        goals[code] = api.put(dict(goal, lifecycleStatus="active"))  # tailoring: the goals the team works on
    plan = api.put(dict(plan, note=[{"text": "Tailored with Avery and Riley: evening group, family session every 2 weeks"}]))
    version = plan["meta"]["versionId"]
    agreement = {"resourceType": "Provenance", "target": [{"reference": f"CarePlan/{plan['id']}/_history/{version}"}],
                 "recorded": "2026-11-30T19:15:00-06:00",
                 "activity": {"coding": [{"system": f"{CS}/iop-treatment-planning", "code": "plan-agreement"}]},
                 "agent": [{"who": {"reference": patient}}, {"who": {"reference": SISTER}}],
                 "signature": [{"type": [CONSENT_SIGNATURE], "when": "2026-11-30T19:15:00-06:00", "who": {"reference": who}}
                               for who in (patient, SISTER)]}
    api.post("Provenance", agreement)
    plan = api.put(dict(plan, status="active"))
    assert plan["status"] == "active"
    return plan, goals


def respond(api: Api, episode: dict, patient: str, questionnaire: str, items: list[str], scores: list[int], when: str,
            created: list[dict]) -> dict:
    body = {"resourceType": "QuestionnaireResponse", "questionnaire": f"https://iop.example.org/fhir/Questionnaire/{questionnaire}",
            "status": "completed", "subject": {"reference": patient}, "authored": when, "source": {"reference": patient},
            "extension": [{"url": EPISODE_EXT, "valueReference": {"reference": f"EpisodeOfCare/{episode['id']}"}}],
            "item": [{"linkId": link, "answer": [{"valueCoding": {"system": LOINC, "code": ANSWERS[s]}}]}
                     for link, s in zip(items, scores, strict=True)]}
    stored = api.post("QuestionnaireResponse", body)
    [result] = api.search(f"Observation?derived-from=QuestionnaireResponse/{stored['id']}")
    created += [stored, result]
    return result


def band(observation: dict) -> str:
    return observation["interpretation"][0]["coding"][0]["code"]


def order(api: Api, body: dict, patient: str, rid: str) -> str:
    body = copy.deepcopy(body)
    body.update(id=rid, subject={"reference": patient})
    for key in ("encounter", "reasonReference", "priorPrescription"):
        body.pop(key, None)
    api.put(body)
    return f"MedicationRequest/{rid}"


def decision(item: str, action: str, order_ref: str | None = None) -> dict:
    part = [{"name": "item", "valueReference": {"reference": item}}, {"name": "action", "valueCode": action}]
    return {"name": "medication", "part": part + ([{"name": "order", "valueReference": {"reference": order_ref}}] if order_ref else [])}


def reconcile(api: Api, episode: dict, phase: str, when: str, *decisions: dict) -> dict:
    return api.post(f"EpisodeOfCare/{episode['id']}/$reconcile-medications", {"resourceType": "Parameters", "parameter": [
        {"name": "phase", "valueCode": phase}, {"name": "reconciler", "valueReference": {"reference": PSYCHIATRIST}},
        {"name": "date", "valueDateTime": when}, *decisions]})


def due(api: Api, patient: str, as_of: str) -> list[dict]:
    out = api.get(f"MedicationRequest/$due?patient={patient}&as-of={as_of}&days=7")
    return [{p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in d["part"]}
            for d in out["parameter"] if d["name"] == "due"]


def flags(listing: dict) -> dict[str, str]:
    return {e["item"]["reference"]: e["flag"]["coding"][0]["code"] for e in listing["entry"]}


# ------------------------------------------------------------------------------- the test
def test_treatment_from_referral_to_aftercare(api, validator_url, ig_validator_url):
    created: list[dict] = []
    episode, patient = admit(api)
    episode = family_and_team(api, episode, patient)
    plan, goals = plan_from_template(api, patient)
    created += [plan, *goals.values()]

    # medications: the program's orders, reconciled at intake against the two the referral brought
    injection = example("MedicationRequest-iop-medrx-5-naltrexone-xr.json")
    injection["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {"start": "2026-12-02"}
    xr = order(api, injection, patient, "e2e-naltrexone-xr")
    journey = {e["resource"]["id"]: e["resource"] for e in example("journey-05-medications.json")["entry"]}
    sertraline = order(api, journey["iop-medrx-4-sertraline"], patient, "e2e-sertraline")
    trazodone = order(api, journey["iop-medrx-4-trazodone"], patient, "e2e-trazodone")
    [hosp_naltrexone] = api.search("MedicationRequest?identifier=https://hospital.example.org/fhir/sid/medication-order|RX-2026-55101")
    [hosp_sertraline] = api.search("MedicationRequest?identifier=https://hospital.example.org/fhir/sid/medication-order|RX-2026-55102")
    intake = reconcile(api, episode, "intake", "2026-11-30T18:00:00-06:00",
                       decision(f"MedicationRequest/{hosp_naltrexone['id']}", "changed", xr),  # oral → monthly injection
                       decision(f"MedicationRequest/{hosp_sertraline['id']}", "continued", sertraline),
                       decision(trazodone, "new"))
    assert flags(intake) == {xr: "changed", sertraline: "continued", trazodone: "new"}
    assert intake["source"]["reference"] == PSYCHIATRIST and intake["date"] == "2026-11-30T18:00:00-06:00"
    created += [intake, *(api.get(ref) for ref in (xr, sertraline, trazodone))]

    # the injection schedule: first dose 2026-12-02, then every 4 weeks after the last one given
    [first] = [d for d in due(api, patient, "2026-11-30") if d["kind"] == "injection"]
    assert (first["medicationRequest"]["reference"], first["kind"], first["dueDate"]) == (xr, "injection", "2026-12-02")
    admin = retarget(example("MedicationAdministration-iop-medadmin-5-naltrexone-xr-1.json"), {
        "Patient/iop-patient-5": patient, "EpisodeOfCare/iop-eoc-5": f"EpisodeOfCare/{episode['id']}",
        "MedicationRequest/iop-medrx-5-naltrexone-xr": xr})
    created.append(api.put(dict(admin, id="e2e-xr-dose-1", effectiveDateTime="2026-12-02T18:00:00-06:00")))
    assert [d for d in due(api, patient, "2026-12-03") if d["kind"] == "injection"] == []
    [second] = [d for d in due(api, patient, "2026-12-28") if d["kind"] == "injection"]
    assert (second["dueDate"], second["lastGiven"]) == ("2026-12-30", "2026-12-02T18:00:00-06:00")

    # weekly PHQ-9 and GAD-7: totals and bands by the instruments' rules
    weeks = [("2026-12-01T18:00:00-06:00", [2, 2, 2, 2, 1, 2, 2, 1, 0], [2, 2, 2, 1, 2, 1, 2]),
             ("2026-12-08T18:00:00-06:00", [1, 2, 1, 2, 1, 1, 1, 1, 1], [2, 2, 1, 1, 2, 1, 1]),  # item 9 = 1: safety
             ("2026-12-15T18:00:00-06:00", [1, 1, 1, 1, 0, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1, 1])]
    for n, (when, phq, gad) in enumerate(weeks, 1):
        phq_obs = respond(api, episode, patient, "iop-phq9", PHQ9_ITEMS, phq, when, created)
        gad_obs = respond(api, episode, patient, "iop-gad7", GAD7_ITEMS, gad, when, created)
        assert (phq_obs["valueInteger"], band(phq_obs)) == (sum(phq), phq9_band(sum(phq))), f"week {n}"
        assert (gad_obs["valueInteger"], band(gad_obs)) == (sum(gad), gad7_band(sum(gad))), f"week {n}"
        phq_goal, gad_goal = (api.get(f"Goal/{goals[c]['id']}") for c in ("44261-6", "70274-6"))
        achieved = [c["code"] for g in (phq_goal, gad_goal) for c in (g.get("achievementStatus") or {}).get("coding", [])]
        assert achieved == (["achieved", "achieved"] if n == 3 else [s for s in achieved if s != "achieved"]), f"week {n}"
        if n == 2:
            [alert] = api.search(f"Task?patient={patient}&code={CS}/iop-safety-alert|suicide-risk-review")
            assert alert["priority"] in ("urgent", "asap") and alert["status"] == "requested"
            [flag] = api.search(f"Flag?patient={patient}&status=active")
            assert flag["code"]["coding"][0]["code"] == "suicide-risk"
            created += [alert, flag]
    assert [sum(w[1]) for w in weeks] == [14, 11, 7] and [phq9_band(sum(w[1])) for w in weeks] == ["moderate", "moderate", "mild"]

    # the relapse prevention plan (examples/CarePlan-iop-relapse-plan-1.json, for this patient and family)
    [condition] = [c for c in api.search(f"Condition?subject={patient}") if "F10" in json.dumps(c["code"])][:1] or \
        api.search(f"Condition?subject={patient}")[:1]
    relapse = retarget(example("CarePlan-iop-relapse-plan-1.json"), {
        "Patient/iop-patient-1": patient, "RelatedPerson/iop-relperson-1-spouse": SISTER, "CareTeam/iop-careteam-1": TEAM,
        "CarePlan/iop-careplan-1": f"CarePlan/{plan['id']}", "Condition/iop-cond-1-oud": f"Condition/{condition['id']}"})
    created.append(api.put(dict(relapse, id="e2e-relapse-plan")))

    # discharge: reconcile, then finish the enrollment (the patient wants the alumni group)
    final = reconcile(api, episode, "discharge", "2026-12-18T15:00:00-06:00", decision(xr, "continued"),
                      decision(sertraline, "continued"), decision(trazodone, "stopped"))
    assert flags(final) == {xr: "continued", sertraline: "continued", trazodone: "stopped"}
    assert api.get(trazodone)["status"] == "stopped"
    created.append(final)
    episode = api.get(f"EpisodeOfCare/{episode['id']}")
    episode = api.put(dict(episode, status="finished", period={"start": episode["period"]["start"], "end": "2026-12-18"},
                           extension=episode.get("extension", []) + [{"url": ALUMNI, "valueBoolean": True}]))

    [summary] = api.search(f"Composition?subject={patient}&type={LOINC}|18842-5")
    sections = {s["code"]["coding"][0]["code"]: s for s in summary["section"]}
    assert summary["status"] == "final"
    assert [e["reference"] for e in sections["relapse-prevention-plan"]["entry"]] == ["CarePlan/e2e-relapse-plan"]
    assert "988" in sections["relapse-prevention-plan"]["text"]["div"]
    assert [e["reference"] for e in sections["10160-0"]["entry"]] == [xr, sertraline, trazodone]
    assert "stopped" in sections["10160-0"]["text"]["div"] and f"List/{final['id']}" in sections["10160-0"]["text"]["div"]
    assert "PHQ-9: 14 on 2026-12-01 to 7 on 2026-12-15" in sections["30954-2"]["text"]["div"]
    created.append(summary)
    [referral_task] = api.search("Task?identifier=https://hospital.example.org/fhir/sid/referral-task|T-2026-0601")
    assert referral_task["status"] == "completed"

    follow_ups = sorted(api.search(f"Task?focus=EpisodeOfCare/{episode['id']}&code={CS}/iop-aftercare|follow-up-contact"),
                        key=lambda t: t["restriction"]["period"]["start"])
    assert [t["restriction"]["period"]["start"] for t in follow_ups] == ["2027-01-17", "2027-02-16", "2027-03-18"]
    done = api.put(dict(follow_ups[0], status="completed", output=[{
        "type": {"coding": [{"system": f"{CS}/iop-aftercare", "code": "follow-up-outcome"}]},
        "valueCodeableConcept": {"coding": [{"system": f"{CS}/iop-aftercare-outcome", "code": "in-treatment"}]}}]))
    [alumni] = api.search(f"Group?code={CS}/iop-aftercare|alumni-group&member={patient}")
    created += [done, *follow_ups[1:], alumni]

    for resource in created:
        label = f"{resource['resourceType']}/{resource.get('id')}"
        assert_valid(validator_url, resource, label)
        if resource.get("meta", {}).get("profile"):
            assert_valid(ig_validator_url, resource, label)

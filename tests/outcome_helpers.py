"""Builders for the outcome-measure tests: a patient with an episode and care team, and instrument responses."""
from __future__ import annotations

from helpers import created, post, put

Q = "https://iop.example.org/fhir/Questionnaire"
LOINC = "http://loinc.org"
EPISODE_EXT = "http://hl7.org/fhir/StructureDefinition/workflow-episodeOfCare"
PHQ9_ITEMS = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"]
GAD7_ITEMS = ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]
FREQUENCY = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]  # 0..3
AUDITC_ITEMS = {"68518-0": ["LA6270-8", "LA18926-8", "LA18927-6", "LA18928-4", "LA18929-2"],
                "68519-8": ["LA15694-5", "LA15695-2", "LA18930-0", "LA18931-8", "LA18932-6"],
                "68520-6": ["LA6270-8", "LA18933-4", "LA18876-5", "LA18891-4", "LA18934-2"]}
PCL5_ANSWERS = ["not-at-all", "a-little-bit", "moderately", "quite-a-bit", "extremely"]
PCL5_CS = "https://iop.example.org/fhir/CodeSystem/iop-pcl5-answer"
YES, NO = "LA33-6", "LA32-8"


def enrolled(client, gender: str = "female", team: bool = True, family: str = "Testpatient") -> dict:
    """A patient with an active episode (managed by a program Organization, with a CareTeam unless team=False)."""
    org = created(post(client, "Organization", {"resourceType": "Organization", "name": "Riverside IOP"}))
    pid = created(post(client, "Patient", {"resourceType": "Patient", "name": [{"family": family}], "gender": gender}))["id"]
    episode = {"resourceType": "EpisodeOfCare", "status": "active", "patient": {"reference": f"Patient/{pid}"},
               "managingOrganization": {"reference": f"Organization/{org['id']}"}, "period": {"start": "2026-11-01"}}
    if team:
        care_team = created(post(client, "CareTeam", {"resourceType": "CareTeam", "status": "active",
                                                       "subject": {"reference": f"Patient/{pid}"}}))
        episode["team"] = [{"reference": f"CareTeam/{care_team['id']}"}]
    eoc = created(post(client, "EpisodeOfCare", episode))
    return {"patient": f"Patient/{pid}", "episode": f"EpisodeOfCare/{eoc['id']}", "org": f"Organization/{org['id']}",
            "team": episode["team"][0]["reference"] if team else None, "episode_resource": eoc}


def response(questionnaire: str, answers: dict[str, tuple[str, str]], who: dict, *, authored: str = "2026-11-16T10:00:00Z",
             status: str = "completed", episode: str | None = "default") -> dict:
    """A QuestionnaireResponse: answers linkId -> (system, code), linked to the episode by the extension."""
    body = {"resourceType": "QuestionnaireResponse", "questionnaire": f"{Q}/{questionnaire}", "status": status,
            "subject": {"reference": who["patient"]}, "authored": authored, "source": {"reference": who["patient"]},
            "item": [{"linkId": link, "answer": [{"valueCoding": {"system": system, "code": code}}]}
                     for link, (system, code) in answers.items()]}
    if episode is not None:
        ref = who["episode"] if episode == "default" else episode
        body["extension"] = [{"url": EPISODE_EXT, "valueReference": {"reference": ref}}]
    return body


def phq9(scores: list[int], who: dict, **kw) -> dict:
    return response("iop-phq9", {link: (LOINC, FREQUENCY[s]) for link, s in zip(PHQ9_ITEMS, scores, strict=False)}, who, **kw)


def gad7(scores: list[int], who: dict, **kw) -> dict:
    return response("iop-gad7", {link: (LOINC, FREQUENCY[s]) for link, s in zip(GAD7_ITEMS, scores, strict=False)}, who, **kw)


def auditc(scores: list[int], who: dict, **kw) -> dict:
    return response("iop-auditc", {link: (LOINC, codes[s]) for (link, codes), s in zip(AUDITC_ITEMS.items(), scores, strict=True)}, who, **kw)


def pcl5(scores: list[int], who: dict, **kw) -> dict:
    return response("iop-pcl5", {f"pcl5-{i:02d}": (PCL5_CS, PCL5_ANSWERS[s]) for i, s in enumerate(scores, 1)}, who, **kw)


def cssrs(yes: set[str], who: dict, **kw) -> dict:
    """C-SSRS screener with the given question numbers (1-7) answered yes; disabled questions left out."""
    links = {1: "93246-7", 2: "93247-5", 3: "93248-3", 4: "93249-1", 5: "93250-9", 6: "93267-3", 7: "93269-9"}
    asked = [1, 2] + ([3, 4, 5] if 2 in yes else []) + [6] + ([7] if 6 in yes else [])
    return response("iop-cssrs", {links[n]: (LOINC, YES if n in yes else NO) for n in asked}, who, **kw)


def search(client, query: str) -> list[dict]:
    resp = client.get(f"/fhir/{query}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return [e["resource"] for e in resp.get_json().get("entry", [])]


def result_of(client, response_id: str) -> list[dict]:
    """The result Observations derived from a response."""
    return search(client, f"Observation?derived-from=QuestionnaireResponse/{response_id}")


def amend(client, body: dict) -> dict:
    resp = put(client, f"QuestionnaireResponse/{body['id']}", dict(body, status="amended"))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()

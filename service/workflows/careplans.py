"""Care plan rules (issue 10, collaborative plans): the patient's agreement before a plan becomes active, and plan
reviews only by the care team.

- Agreement: a draft IOP treatment plan or relapse prevention plan becomes active only when a Provenance records the
  patient's agreement to it: target the plan (the version agreed to, the latest draft, or no version), a signature of
  type Consent Signature (ASTM E1762 1.2.840.10065.1.12.1.7) by the plan's subject. Family members may sign too.
  The plan's proposed Goals then become active.
- Review: an update of an active (or on-hold) plan that stays active or on-hold is a review (a new version, so
  `_history` is the review trail; pausing and resuming are reviews too). The reviewer is the author agent of a
  Provenance sent in the same transaction and targeting the plan; a review without one is a 422, a reviewer who is
  not a participant of the plan's care team a 403. Nothing is stored.
- People: RelatedPersons among the contributors and item performers are the patient's, and a plan is partOf a plan
  of the same patient (422 naming the element).
Plans created already active (imported records, the examples) are taken as agreed elsewhere. docs/careplans.md.
"""
from __future__ import annotations

import json

from ..errors import Forbidden, Unprocessable
from ..interactions import Change, Unit
from . import records, trigger

PLAN_CATEGORIES = {(f"{records.CS}/iop-careplan-category", "iop-treatment-plan"),
                   (f"{records.CS}/iop-treatment-planning", "relapse-prevention-plan")}
CONSENT_SIGNATURE = ("urn:iso-astm:E1762-95:2013", "1.2.840.10065.1.12.1.7")
AUTHOR = ("http://terminology.hl7.org/CodeSystem/provenance-participant-type", "author")
INACTIVE_TEAM = ("inactive", "entered-in-error")
IN_FORCE = ("active", "on-hold")  # a change between these (content, pausing, resuming) is a review


@trigger("CarePlan")
def on_careplan(unit: Unit, change: Change) -> None:
    plan, before = records.parsed(change.stored), records.parsed(change.previous)
    if plan is None or not is_collaborative_plan(plan):
        return
    if plan.get("status") != "entered-in-error":
        check_people(unit, plan)
    if before is None:
        return
    if before.get("status") == "draft" and plan.get("status") == "active":
        require_agreement(unit, plan, change.previous.version if change.previous else 0)
        activate_goals(unit, plan)
    elif before.get("status") in IN_FORCE and plan.get("status") in IN_FORCE:
        require_care_team_reviewer(unit, plan, change.stored.version)


def is_collaborative_plan(plan: dict) -> bool:
    """An IOP treatment plan or a relapse prevention plan (by category)."""
    return any(records.codes(c) & PLAN_CATEGORIES for c in plan.get("category", []))


def check_people(unit: Unit, plan: dict) -> None:
    """Family and support people in the plan are the patient's own (RelatedPerson.patient), and the treatment plan a
    relapse prevention plan is part of is the same patient's. References not on the server are left alone (a plan may
    arrive before the people it names: the examples load by file name)."""
    subject = records.ref_text(plan.get("subject"))
    refs = [(f"CarePlan.contributor[{i}]", c) for i, c in enumerate(plan.get("contributor", []))]
    refs += [(f"CarePlan.activity[{i}].detail.performer[{j}]", p) for i, a in enumerate(plan.get("activity", []))
             for j, p in enumerate((a.get("detail") or {}).get("performer", []))]
    refs += [(f"CarePlan.partOf[{i}]", p) for i, p in enumerate(plan.get("partOf", []))]
    wanted = [(where, ref) for where, ref in refs if (records.ref_text(ref) or "").startswith(("RelatedPerson/", "CarePlan/"))]
    found = records.read_many(unit, wanted)
    for where, ref in wanted:
        doc = found.get(records.ref_text(ref) or "")
        owner = records.ref_text((doc or {}).get("patient" if (doc or {}).get("resourceType") == "RelatedPerson" else "subject"))
        if doc is not None and owner != subject:
            raise Unprocessable(f"{records.ref_text(ref)} belongs to {owner}, not to the plan's patient {subject}",
                                code="business-rule", expression=where)


# ------------------------------------------------------------------------------- agreement
def require_agreement(unit: Unit, plan: dict, draft_version: int) -> dict:
    """The Provenance with the patient's signature on this plan (the latest draft or later); 422 when there is none."""
    subject = records.ref_text(plan.get("subject"))
    for row in unit.find("Provenance", f"target=CarePlan/{plan['id']}", limit=200):
        prov = json.loads(row.content)
        if _agreed_version_ok(prov, plan["id"], draft_version) and _signed_by(prov, subject):
            return prov
    raise Unprocessable(f"CarePlan/{plan['id']} cannot become active before the patient agrees to it: record a Provenance "
                        f"targeting CarePlan/{plan['id']}/_history/{draft_version} with a Consent Signature "
                        f"(urn:iso-astm:E1762-95:2013#1.2.840.10065.1.12.1.7) by {subject}", code="business-rule",
                        expression="CarePlan.status")


def _agreed_version_ok(prov: dict, plan_id: str, draft_version: int) -> bool:
    """The Provenance targets the plan without a version, or the latest draft (or a later version)."""
    for target in prov.get("target", []):
        ref = target.get("reference") if isinstance(target, dict) else None
        if not isinstance(ref, str) or not ref.startswith(f"CarePlan/{plan_id}"):
            continue
        rest = ref[len(f"CarePlan/{plan_id}"):]
        if rest == "" or (rest.startswith("/_history/") and rest[10:].isdigit() and int(rest[10:]) >= draft_version):
            return True
    return False


def _signed_by(prov: dict, who: str | None) -> bool:
    return any(CONSENT_SIGNATURE in {(c.get("system"), c.get("code")) for c in sig.get("type", []) if isinstance(c, dict)}
               and records.ref_text(sig.get("who")) == who for sig in prov.get("signature", []) if isinstance(sig, dict))


def activate_goals(unit: Unit, plan: dict) -> None:
    """The agreed plan's proposed Goals become active, so that scores move their achievement (workflows/goals.py)."""
    goals = records.read_many(unit, [("CarePlan.goal", g) for g in plan.get("goal", [])])
    for goal in goals.values():
        if goal.get("resourceType") == "Goal" and goal.get("lifecycleStatus") == "proposed":
            records.save(unit, dict(goal, lifecycleStatus="active"))


# ------------------------------------------------------------------------------- review
def require_care_team_reviewer(unit: Unit, plan: dict, version: int) -> str:
    """The reviewer of this version: a care team participant named by a Provenance in the same unit."""
    reviewers = _reviewers(unit, plan["id"], version)
    if not reviewers:
        raise Unprocessable(f"A review of the active CarePlan/{plan['id']} names its reviewer: send, in the same transaction, a "
                            f"Provenance targeting CarePlan/{plan['id']} with an author agent (who reviewed)",
                            code="business-rule", expression="CarePlan")
    members = care_team_members(unit, plan)
    for reviewer in reviewers:
        if reviewer not in members and (_practitioner_of(unit, reviewer) or "") not in members:
            raise Forbidden(f"{reviewer} is not on the care team of CarePlan/{plan['id']}; only its care team reviews the plan",
                            code="forbidden", expression="Provenance.agent.who")
    return reviewers[0]


def _reviewers(unit: Unit, plan_id: str, version: int) -> list[str]:
    """Author agents (or the only agent) of the Provenances this unit wrote about this plan version."""
    out = []
    for key, stored in records.written(unit).items():
        prov = records.parsed(stored) if key.startswith("Provenance/") else None
        if prov is None or not _agreed_version_ok(prov, plan_id, version):
            continue
        agents = [a for a in prov.get("agent", []) if isinstance(a, dict)]
        authors = [a for a in agents if AUTHOR in records.codes(a.get("type"))] or agents[:1]
        out += [ref for a in authors if (ref := records.ref_text(a.get("who")))]
    return out


def care_team_members(unit: Unit, plan: dict) -> set[str]:
    """Participants of the plan's care teams that are not inactive, with the practitioner of each PractitionerRole."""
    teams = records.read_many(unit, [("CarePlan.careTeam", t) for t in plan.get("careTeam", [])])
    members = {ref for team in teams.values() if team.get("status") not in INACTIVE_TEAM
               for p in team.get("participant", []) if (ref := records.ref_text(p.get("member")))}
    roles = records.read_many(unit, [("member", {"reference": m}) for m in members if m.startswith("PractitionerRole/")])
    return members | {ref for role in roles.values() if (ref := records.ref_text(role.get("practitioner")))}


def _practitioner_of(unit: Unit, reviewer: str) -> str | None:
    if not reviewer.startswith("PractitionerRole/"):
        return None
    return records.ref_text((records.read(unit, {"reference": reviewer}) or {}).get("practitioner"))

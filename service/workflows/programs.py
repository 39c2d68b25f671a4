"""The programs this server runs: an Organization that offers a HealthcareService here, or that HealthcareService.

Which programs exist is data (Organization + HealthcareService per track, issue "directory"), not a setting,
so a referral Task addressed to anyone else is refused rather than silently kept.
"""
from __future__ import annotations

import json

from ..interactions import Unit
from . import records


def is_program(unit: Unit, reference: object) -> bool:
    """Whether a reference names one of this server's programs."""
    parts = records.split(reference)
    if parts is None or parts[0] not in ("HealthcareService", "Organization"):
        return False
    known = records.memo(unit).setdefault("programs", {})
    if parts not in known:
        rtype, rid = parts
        if rtype == "HealthcareService":
            known[parts] = records.read(unit, reference) is not None
        else:
            known[parts] = bool(unit.find("HealthcareService", f"organization=Organization/{rid}", limit=1))
    return known[parts]


def organization_of(unit: Unit, reference: object) -> dict | None:
    """The Organization reference of a program reference (a HealthcareService's providedBy)."""
    parts = records.split(reference)
    if parts and parts[0] == "Organization":
        return {"reference": f"Organization/{parts[1]}"}
    service = records.read(unit, reference) if parts else None
    provided = service.get("providedBy") if service else None
    return {"reference": records.ref_text(provided)} if records.ref_text(provided) else None


def services(unit: Unit, organization: dict) -> list[dict]:
    """The active HealthcareServices (tracks) an Organization offers here."""
    rows = unit.find("HealthcareService", f"organization={organization['reference']}&active=true", limit=200)
    return [json.loads(row.content) for row in rows]


def sole_program(unit: Unit) -> dict | None:
    """The one program Organization on this server, when there is exactly one (referrals without a performer)."""
    rows = unit.find("HealthcareService", "active=true", limit=200)
    orgs = {records.ref_text(json.loads(r.content).get("providedBy")) for r in rows} - {None}
    return {"reference": orgs.pop()} if len(orgs) == 1 else None

"""Does an active 42 CFR Part 2 Consent permit disclosing a patient's labelled data to a recipient, for a purpose?

The rules (docs/security.md "42 CFR Part 2"; domain brief §5.1, §5.3; profile iop-part2-consent):
a Consent counts when status = active, scope = consentscope#patient-privacy, patient = the data's patient,
provision.type = permit, provision.period (if any) covers now, an actor with role v3-ParticipationType#IRCP
references the recipient organization, provision.purpose holds the request's purpose of use,
provision.securityLabel holds 42CFRPart2 (and PSYTHPN for an SUD counseling note: a consent of its own),
and provision.action (if any) holds consentaction#disclose; purpose HLEGAL is never permitted.
A consent with nested provisions is not evaluated (its exceptions are not implemented) and so permits nothing.
No general designation: the recipient must be named, since the server cannot tell a covered entity from any other.
Consents are read afresh for each request: a revocation (status inactive / rejected / entered-in-error, a new
version) takes effect on the next request.
"""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Connection, and_, false, select

from . import dates
from .part2 import ACT_CODE, COUNSELING_NOTE
from .tables import resource, sp_reference

CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
CONSENT_ACTION = "http://terminology.hl7.org/CodeSystem/consentaction"
# Records used in proceedings against the patient (domain brief §5.1, §5.4 item 3) need a court order or a consent
# this server cannot check; v3-ActReason HLEGAL disclosures are left to the program's staff, never made here.
NEVER = frozenset({"HLEGAL"})


def patient_consents(conn: Connection, patient: str) -> list[dict]:
    """The current Consents whose patient is `patient` ('Patient/id'), in one query."""
    rtype, _, pid = patient.partition("/")
    ref, R = sp_reference, resource
    members = select(ref.c.resource_pk).where(ref.c.type == "Consent", ref.c.name == "patient",
                                              and_(ref.c.target_type == rtype, ref.c.target_id == pid))
    rows = conn.execute(select(R.c.content).where(R.c.pk.in_(members), R.c.deleted == false()).order_by(R.c.pk)).scalars()
    return [json.loads(text) for text in rows if text]


def permitting(consents: list[dict], recipient: str, purpose: str, counseling_note: bool, now: datetime) -> dict | None:
    """The first Consent that permits the disclosure, or None."""
    for consent in consents:
        if permits(consent, recipient, purpose, counseling_note, now):
            return consent
    return None


def permits(consent: dict, recipient: str, purpose: str, counseling_note: bool, now: datetime) -> bool:
    if purpose in NEVER:
        return False
    provision = consent.get("provision")
    if consent.get("status") != "active" or not isinstance(provision, dict) or provision.get("provision"):
        return False
    if (CONSENT_SCOPE, "patient-privacy") not in _codes(consent.get("scope")) or provision.get("type") != "permit":
        return False
    labels = {(c.get("system"), c.get("code")) for c in _list(provision.get("securityLabel"))}
    if (ACT_CODE, "42CFRPart2") not in labels or counseling_note and COUNSELING_NOTE not in labels:
        return False
    if (ACT_REASON, purpose) not in {(c.get("system"), c.get("code")) for c in _list(provision.get("purpose"))}:
        return False
    actions = [_codes(a) for a in _list(provision.get("action"))]
    if actions and not any((CONSENT_ACTION, "disclose") in a for a in actions):
        return False
    return _in_period(provision.get("period"), now) and _names(provision, recipient)


def _names(provision: dict, recipient: str) -> bool:
    """Whether an information-recipient actor references the recipient organization."""
    for actor in _list(provision.get("actor")):
        ref = (actor.get("reference") or {}).get("reference") if isinstance(actor.get("reference"), dict) else None
        if (PARTICIPATION, "IRCP") in _codes(actor.get("role")) and isinstance(ref, str) and _relative(ref) == recipient:
            return True
    return False


def _in_period(period: object, now: datetime) -> bool:
    if period is None:
        return True
    if not isinstance(period, dict):
        return False
    try:
        if isinstance(period.get("start"), str) and dates.parse_range(period["start"])[0] > now:
            return False
        return not (isinstance(period.get("end"), str) and dates.parse_range(period["end"])[1] <= now)
    except dates.DateFormatError:
        return False


def _relative(ref: str) -> str:
    """'Organization/x' from a relative or absolute reference."""
    parts = ref.split("/_history/")[0].rstrip("/").split("/")
    return "/".join(parts[-2:])


def _list(value: object) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _codes(concept: object) -> set[tuple[str, str]]:
    if not isinstance(concept, dict):
        return set()
    return {(c.get("system"), c.get("code")) for c in _list(concept.get("coding"))}

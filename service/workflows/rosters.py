"""Discharge leaves the roster: an enrollment that finishes ends the patient's membership of the program's groups.

Issue 9: "seats fall as patients join a roster and rise when they are discharged". Open seats are counted from the
members not marked inactive and inside member.period (service/seats.py), so the membership ends (period.end, the
discharge day, and inactive) in the discharge's own unit of work, and the seat is free the moment it commits.
"""
from __future__ import annotations

import json

from ..interactions import Change, Unit
from . import records, trigger


@trigger("EpisodeOfCare")
def on_discharge(unit: Unit, change: Change) -> None:
    """EpisodeOfCare → finished (or cancelled): the patient leaves the rosters of the groups of that program."""
    episode = records.parsed(change.stored)
    before = (records.parsed(change.previous) or {}).get("status")
    if episode is None or episode.get("status") not in ("finished", "cancelled") or before == episode.get("status"):
        return
    patient, program = records.ref_text(episode.get("patient")), records.ref_text(episode.get("managingOrganization"))
    if patient is None:
        return
    end = ((episode.get("period") or {}).get("end") or unit.now.date().isoformat())[:10]
    for row in unit.find("Group", f"member={patient}", limit=1000):
        group = json.loads(row.content)
        if program is None or _program_of(unit, group) in (program, None):
            _leave(unit, group, patient, end)


def _program_of(unit: Unit, group: dict) -> str | None:
    """The Organization running a group: its managing entity, else its track's provider."""
    managing = records.ref_text(group.get("managingEntity"))
    if managing and managing.startswith("Organization/"):
        return managing
    for track in records.extension_values(group, "track-service"):
        provided = records.ref_text((records.read(unit, track) or {}).get("providedBy"))
        if provided:
            return provided
    return None


def _leave(unit: Unit, group: dict, patient: str, end: str) -> None:
    changed = False
    for member in group.get("member", []):
        if records.ref_text(member.get("entity")) != patient or member.get("inactive") is True:
            continue
        period = member.setdefault("period", {})
        if period.get("end") and period["end"][:10] <= end:
            continue  # left already
        period["end"] = max(end, (period.get("start") or end)[:10])
        member["inactive"] = True
        changed = True
    if changed:
        records.save(unit, group)

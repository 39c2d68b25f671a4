"""Rules on writes of enrollments and certifications (issue 9 part B), checked before commit: a 422 naming the element
and nothing stored.

- Level of care (level_of_care.py): each level-of-care-change entry has its level, date, reason and who decided
  (an existing Practitioner or PractitionerRole); the first is dated on admission (the level the patient was
  admitted at, so the level of any week can be read from the history); entries are in date order and never rewritten or removed (the
  earlier version's entries stay as they were, new ones are appended); the last one's level is the current
  level-of-care; a change of level-of-care needs a new entry.
- Readmission (the fast path back in): readmission-of names an existing, finished enrollment of the same patient
  that ended on or before this one starts.
- Certification (certification.py): an iop-certification type is for an EpisodeOfCare, of the same patient when it
  is on the server (one that is not counts for nothing until it arrives: examples load in name order).
"""
from __future__ import annotations

from .. import certification, level_of_care
from ..errors import Unprocessable
from ..interactions import Change, Unit
from . import records, trigger

PRACTITIONERS = ("Practitioner", "PractitionerRole")


@trigger("EpisodeOfCare")
def check_episode(unit: Unit, change: Change) -> None:
    episode = records.parsed(change.stored)
    if episode is None:
        return
    before = records.parsed(change.previous) or {}
    _check_history(unit, episode, before)
    if level_of_care.readmission_of(episode) and level_of_care.readmission_of(episode) != level_of_care.readmission_of(before):
        _check_readmission(unit, episode)


def _check_history(unit: Unit, episode: dict, before: dict) -> None:
    entries, old = level_of_care.changes(episode), level_of_care.changes(before)
    where = _where(episode, level_of_care.CHANGE)
    if entries[:len(old)] != old:
        raise _error("Earlier level-of-care-change entries cannot be changed or removed; append a new one", where[0])
    for i, entry in enumerate(entries[len(old):], start=len(old)):
        _check_entry(unit, entry, where[i], entries[i - 1] if i else None)
    admitted = (episode.get("period") or {}).get("start")
    if entries and not old and isinstance(admitted, str) and (entries[0].on or "")[:10] != admitted[:10]:
        raise _error(f"The level-of-care history starts at admission: the first level-of-care-change is dated {entries[0].on}, "
                     f"the admission {admitted[:10]}", where[0])
    level, previous_level = level_of_care.current_level(episode), level_of_care.current_level(before)
    if before and level != previous_level and len(entries) == len(old):
        raise _error(f"The level of care changed from {previous_level} to {level} without a level-of-care-change entry "
                     "saying when, why and who decided", "EpisodeOfCare.extension")
    if entries and entries[-1].level != level:
        raise _error(f"The last level-of-care-change is to {entries[-1].level}, but the level-of-care is {level}", where[-1])


def _check_entry(unit: Unit, entry: level_of_care.Change, where: str, prior: level_of_care.Change | None) -> None:
    missing = [n for n, v in (("level", entry.level), ("date", entry.on), ("reason", entry.reason),
                              ("decidedBy", entry.decided_by)) if not v]
    if missing:
        raise _error(f"A level-of-care-change needs {', '.join(missing)}", where)
    if prior and prior.on and entry.on[:10] < prior.on[:10]:
        raise _error(f"level-of-care-change dated {entry.on} is before the one before it ({prior.on})", where)
    parts = records.split(entry.decided_by)
    if not parts or parts[0] not in PRACTITIONERS:
        raise _error("decidedBy must reference a Practitioner or PractitionerRole", where)
    records.require(unit, entry.decided_by, f"{where}.extension('decidedBy')")


def _check_readmission(unit: Unit, episode: dict) -> None:
    where = _where(episode, level_of_care.READMISSION_OF)[0]
    reference = {"reference": level_of_care.readmission_of(episode)}
    parts = records.split(reference)
    if not parts or parts[0] != "EpisodeOfCare" or parts[1] == episode.get("id"):
        raise _error("readmission-of must reference another EpisodeOfCare", where)
    earlier = records.require(unit, reference, where)
    if records.ref_text(earlier.get("patient")) != records.ref_text(episode.get("patient")):
        raise _error(f"{reference['reference']} is another patient's enrollment", where)
    ended = (earlier.get("period") or {}).get("end")
    if earlier.get("status") != "finished" or not isinstance(ended, str):
        raise _error(f"{reference['reference']} is not finished: only a discharged patient is readmitted", where)
    start = (episode.get("period") or {}).get("start")
    if isinstance(start, str) and start[:10] < ended[:10]:
        raise _error(f"The readmission starts {start[:10]}, before {reference['reference']} ended ({ended[:10]})", where)


@trigger("DocumentReference")
def check_certification(unit: Unit, change: Change) -> None:
    document = records.parsed(change.stored)
    types = records.codes((document or {}).get("type"))
    if document is None or not any(system == certification.SYSTEM for system, _ in types):
        return
    context = document.get("context") if isinstance(document.get("context"), dict) else {}
    target = context.get("encounter", [None])[0] if isinstance(context.get("encounter"), list) else None
    where = "DocumentReference.context.encounter[0]"
    parts = records.split(target)
    if not parts or parts[0] != "EpisodeOfCare":
        raise _error("A certification is for an enrollment: context.encounter must reference an EpisodeOfCare", where)
    episode = records.read(unit, target)  # not here yet: examples and bulk loads come in any order
    if episode is not None and records.ref_text(episode.get("patient")) != records.ref_text(document.get("subject")):
        raise _error(f"{records.ref_text(target)} is not an enrollment of {records.ref_text(document.get('subject'))}",
                     "DocumentReference.subject")


def _where(resource: dict, url: str) -> list[str]:
    """FHIRPath of each extension with this url, in order."""
    return [f"{resource['resourceType']}.extension[{i}]" for i, e in enumerate(resource.get("extension", []))
            if isinstance(e, dict) and e.get("url") == url] or [f"{resource['resourceType']}.extension"]


def _error(message: str, where: str) -> Unprocessable:
    return Unprocessable(message, code="business-rule", expression=where)

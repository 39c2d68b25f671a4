"""`EpisodeOfCare/[id]/$score-trends`: each instrument's scores over an episode, first versus latest.

The same data is a plain search (Observation?patient=&code=&_sort=date); the operation picks the episode's scores and
does the arithmetic for the care team: per instrument (PHQ-9, GAD-7, AUDIT-C, PCL-5) the points oldest first, the
first and latest score and the change (latest minus first). An episode's scores are the patient's valid score
Observations that name the episode (the workflow-episodeOfCare extension the scorer writes) or, naming no episode,
whose date falls in the episode's period. Staff only (42 CFR Part 2 data about many resources: no outside client).
OperationDefinition: profiles/input/fsh/treatment-measures.fsh.
"""
from __future__ import annotations

import json

from flask import Response

from . import conformance, ops, privacy, repository, search, wire
from .db import get_db
from .errors import Forbidden, NotFound
from .workflows import episodes, goals, records

DEFINITION = f"{conformance.CANONICAL}/OperationDefinition/EpisodeOfCare-score-trends"
LOINC = "http://loinc.org"
MAX_SCORES = 2000


def operation(eid: str) -> Response:
    """GET EpisodeOfCare/{id}/$score-trends"""
    if privacy.is_outside():
        raise Forbidden("$score-trends is the program staff's view of an episode")
    with get_db().read() as conn:
        stored = repository.current(conn, "EpisodeOfCare", eid)
        if stored is None or stored.deleted:
            raise NotFound(f"EpisodeOfCare/{eid} is not known")
        episode = json.loads(stored.content)
        codes = ",".join(f"{LOINC}|{code}" for code in goals.SCORES)
        query = f"patient={records.ref_text(episode.get('patient'))}&code={codes}&status={','.join(goals.VALID)}"
        rows = search.find(conn, "Observation", query, wire.base_url(), MAX_SCORES)
    scores = sorted((obs for obs in (json.loads(r.content) for r in rows) if _in_episode(obs, episode)), key=goals.effective)
    return wire.respond(json.dumps(parameters(eid, scores), ensure_ascii=False, separators=(",", ":")))


def _in_episode(obs: dict, episode: dict) -> bool:
    named = episodes.named(obs)
    if named is not None:
        return records.ref_text(named[1]) == f"EpisodeOfCare/{episode['id']}"
    when = _when(obs)
    period = episode.get("period") or {}
    return bool(when) and when[:10] >= period.get("start", "")[:10] and (not period.get("end") or when[:10] <= period["end"][:10])


def _when(obs: dict) -> str:
    """When a score was measured: effectiveDateTime, else the start of effectivePeriod ('' when neither)."""
    return obs.get("effectiveDateTime") or (obs.get("effectivePeriod") or {}).get("start") or ""


def parameters(eid: str, scores: list[dict]) -> dict:
    """Parameters: episode, then one `instrument` per score code, in LOINC code order."""
    by_code: dict[str, list[dict]] = {}
    for obs in scores:
        if isinstance(obs.get("valueInteger"), int) and _when(obs):
            by_code.setdefault((goals.measure_code(obs.get("code")) or ("", ""))[1], []).append(obs)
    out = [{"name": "episode", "valueReference": {"reference": f"EpisodeOfCare/{eid}"}}]
    for code in sorted(c for c in by_code if c):
        out.append(_instrument(by_code[code]))
    return {"resourceType": "Parameters", "parameter": out}


def _instrument(points: list[dict]) -> dict:
    coding = next(c for c in points[0]["code"]["coding"] if c.get("system") == LOINC)
    first, latest = points[0]["valueInteger"], points[-1]["valueInteger"]
    parts = [{"name": "code", "valueCoding": {k: coding[k] for k in ("system", "code", "display") if k in coding}}]
    parts += [{"name": "point", "part": [{"name": "date", "valueDateTime": _when(obs)},
                                         {"name": "score", "valueInteger": obs["valueInteger"]},
                                         {"name": "observation", "valueReference": {"reference": f"Observation/{obs['id']}"}}]}
              for obs in points]
    parts += [{"name": "first", "valueInteger": first}, {"name": "latest", "valueInteger": latest},
              {"name": "change", "valueInteger": latest - first}]
    return {"name": "instrument", "part": parts}


ops.register(ops.Operation("EpisodeOfCare", "$score-trends", DEFINITION, scope=("Observation", "r"),
                           instance_level=operation, methods=("GET",)))

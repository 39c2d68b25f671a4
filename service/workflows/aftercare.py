"""Discharge to aftercare and closing the loop (docs/exchange.md "Discharge to aftercare").

When an enrollment (EpisodeOfCare) becomes `finished`, each aftercare referral of the episode (ServiceRequest
claiming iop-aftercare-referral, written during it) goes to its performer's EHR: the Organization's first active
FHIR REST Endpoint gets ONE transaction Bundle (PUT by id: a redelivery changes nothing) with the Patient, the
aftercare ServiceRequest, its Task, and the discharge summary (Composition and/or DocumentReference written during
the episode, with what the Composition's sections reference) — an outbox row of the fhir-sync channel, in the
discharge's own transaction. The summary's content is built elsewhere (issue 10); we package what exists.

42 CFR Part 2: when that data is labelled, the row is written `held` unless an active consent of the patient names
the performer as recipient (service/exchange.refusal); the aftercare Task then says why in statusReason and its
businessStatus text, and `flask outbox list --status held` lists it. `flask outbox retry PK` re-checks it (after a
consent was recorded). Delivery results come back through `on_result`.

Closing the loop: when an aftercare Task changes status (the provider updated it here, or `flask sync pull`
brought its copy back), the original referral's Task output naming that aftercare referral says what became of it
(type.text "… — aftercare accepted (note)"), and, when it is completed, the aftercare Task's resulting activities
(e.g. the first Encounter) are added as outputs of their own.
"""
from __future__ import annotations

import json

from .. import dates, exchange, outbox, sync_outbound
from ..interactions import Change, Unit
from . import enrollment, records, referral, trigger

MAX_SECTION_ENTRIES = 50  # resources of the summary's sections sent with it
STATE_MARK = " — aftercare "  # in the referral Task's output text: "<what> — aftercare <status> (<note>)"


# ------------------------------------------------------------------------------- discharge
@trigger("EpisodeOfCare")
def on_discharge(unit: Unit, change: Change) -> None:
    """A finished enrollment sends each of its aftercare referrals to the performer's Endpoint."""
    episode = records.parsed(change.stored)
    if episode is None or episode.get("status") != "finished" or (records.parsed(change.previous) or {}).get("status") == "finished":
        return
    content = enrollment._discharge_content(unit, episode)
    summary = [ref for ref in content if ref.split("/")[0] in ("Composition", "DocumentReference")]
    for ref in content:
        if ref.startswith("ServiceRequest/"):
            _send(unit, episode, change.stored.version, ref, summary)


def _send(unit: Unit, episode: dict, version: int, sr_ref: str, summary: list[str]) -> None:
    sr = records.read(unit, {"reference": sr_ref})
    org = next((r for r in (records.ref_text(p) for p in (sr or {}).get("performer") or []) if r and r.startswith("Organization/")), None)
    task = next((json.loads(r.content) for r in unit.find("Task", f"focus={sr_ref}", limit=1)), None)
    try:
        target = exchange.for_organization(unit.conn, org) if org else None
    except exchange.ConfigError as err:  # the discharge goes on; the Task says why nothing was sent
        if task is not None:
            _note(unit, task, f"Not sent to {org}: {err}", held=True)
        return
    if sr is None or target is None:
        return  # no Endpoint: the program sends this referral by other means
    docs = _package(unit, sr, task, summary)
    base = sync_outbound.base_url(unit.options)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [_entry(target, exchange.copy(d, base)) for d in docs]}
    key = f"{target.reference}|aftercare|{sr_ref}"
    dedupe = f"{key}|EpisodeOfCare/{episode['id']}/_history/{version}"  # once per discharge (a reopened episode sends again)
    text = json.dumps(bundle, ensure_ascii=False, separators=(",", ":"))
    row = outbox.row(sync_outbound.NAME, target.reference, sync_outbound.AFTERCARE, key, dedupe, text, unit.now)
    row = sync_outbound.hold(unit.conn, row, docs, target.organization, unit.now)
    outbox.enqueue(unit.conn, [row])
    if row["status"] == outbox.HELD and task is not None:
        _note(unit, task, f"Held, not sent to {target.organization}: {row['last_error']}", held=True)


def _package(unit: Unit, sr: dict, task: dict | None, summary: list[str]) -> list[dict]:
    """Patient, ServiceRequest, Task, the summary documents and what the Composition's sections reference (no repeats)."""
    found: dict[str, dict] = {}
    refs = [records.ref_text(sr.get("subject"))] + [f"ServiceRequest/{sr['id']}"] + ([f"Task/{task['id']}"] if task else []) + summary
    for ref in [r for r in refs if r]:
        doc = records.read(unit, {"reference": ref})
        if doc is not None:
            found.setdefault(ref, doc)
    for ref in summary:
        if ref.startswith("Composition/") and ref in found:
            for entry in _section_entries(found[ref].get("section") or [])[:MAX_SECTION_ENTRIES]:
                doc = found.get(entry) or records.read(unit, {"reference": entry})
                if doc is not None:
                    found.setdefault(entry, doc)
    return list(found.values())


def _section_entries(sections: list) -> list[str]:
    out: list[str] = []
    for section in sections:
        if isinstance(section, dict):
            out += [r for r in (records.ref_text(e) for e in section.get("entry") or []) if r and r not in out]
            out += [r for r in _section_entries(section.get("section") or []) if r not in out]
    return out


def _entry(target: exchange.Target, doc: dict) -> dict:
    key = f"{doc['resourceType']}/{doc['id']}"
    return {"fullUrl": f"{target.address}/{key}", "resource": doc, "request": {"method": "PUT", "url": key}}


# ------------------------------------------------------------------------------- what became of it
def on_result(unit: Unit, msg: outbox.Message, payload: dict, outcome: outbox.Outcome) -> None:
    """The aftercare Task says where its referral went: sent (date), held (why) or not delivered (error)."""
    sent = next((e["resource"] for e in payload.get("entry") or [] if e.get("resource", {}).get("resourceType") == "Task"), None)
    stored = unit.current("Task", sent["id"]) if sent else None
    task = records.parsed(stored)
    if task is None:
        return
    who = next((e["resource"].get("performer", [{}])[0].get("display") for e in payload["entry"]
                if e["resource"]["resourceType"] == "ServiceRequest"), None) or msg.target
    if outcome.status == outbox.DELIVERED:
        _note(unit, task, f"Sent to {who} ({msg.target}) {dates.instant(unit.now)}", held=False)
    elif outcome.status == outbox.HELD:
        _note(unit, task, f"Held, not sent to {who}: {outcome.error}", held=True)
    elif outcome.status == outbox.DEAD:
        _note(unit, task, f"Not delivered to {who} ({msg.target}): {outcome.error}", held=True)


def _note(unit: Unit, task: dict, text: str, *, held: bool) -> None:
    text = text[:1000]
    business = dict(task.get("businessStatus") or {})
    reason = {"text": text} if held else None
    if business.get("text") == text and task.get("statusReason") == reason:
        return
    business["text"] = text
    task["businessStatus"] = business
    if reason:
        task["statusReason"] = reason
    else:
        task.pop("statusReason", None)
    records.save(unit, task)


# ------------------------------------------------------------------------------- closing the loop
@trigger("Task")
def on_aftercare_task(unit: Unit, change: Change) -> None:
    """An aftercare Task that changed status rolls up into the original referral Task's outputs."""
    task = records.parsed(change.stored)
    before = records.parsed(change.previous) or {}
    if task is None or task.get("status") == before.get("status") or referral.FULFILL not in records.codes(task.get("code")):
        return
    sr = records.read(unit, task.get("focus")) if records.split(task.get("focus")) else None
    if sr is None or not records.claims(sr, referral.AFTERCARE):
        return
    original = _referral_task(unit, task, f"ServiceRequest/{sr['id']}")
    if original is not None:
        _roll_up(unit, original, task, f"ServiceRequest/{sr['id']}")


def _referral_task(unit: Unit, task: dict, sr_ref: str) -> dict | None:
    """The referral Task whose discharge outputs list this aftercare referral."""
    patient = records.ref_text(task.get("for"))
    if patient is None:
        return None
    for row in unit.find("EpisodeOfCare", f"patient={patient}&status=finished", limit=20):
        for ref in json.loads(row.content).get("referralRequest") or []:
            found = referral.task_for(unit, ref)
            if found and any(records.ref_text(o.get("valueReference")) == sr_ref for o in found.get("output") or []):
                return found
    return None


def _roll_up(unit: Unit, original: dict, task: dict, sr_ref: str) -> None:
    """The output naming the aftercare referral says what became of it; a completed one adds its resulting activities
    (iop-referral-task allows EpisodeOfCare, Encounter or Procedure there, not the aftercare Task itself)."""
    note = (task.get("businessStatus") or {}).get("text") or (task.get("statusReason") or {}).get("text")
    state = f"{STATE_MARK}{task['status']}" + (f" ({note})" if note else "")
    outputs = [dict(o) for o in original.get("output") or []]
    for out in outputs:
        if records.ref_text(out.get("valueReference")) == sr_ref:
            kind = dict(out.get("type") or {})
            kind["text"] = (str(kind.get("text") or "Aftercare referral").split(STATE_MARK)[0] + state)[:500]
            out["type"] = kind
    seen = {records.ref_text(o.get("valueReference")) for o in outputs}
    if task["status"] == "completed":
        for out in task.get("output") or []:
            got = records.ref_text(out.get("valueReference"))
            if got and got not in seen and referral.RESULTING in records.codes(out.get("type")):
                outputs.append(_output(got, f"Aftercare ({sr_ref}): {got.split('/')[0]}"))
                seen.add(got)
    if outputs != original.get("output"):
        original["output"] = outputs
        records.save(unit, original)


def _output(ref: str, text: str) -> dict:
    system, code = referral.RESULTING
    return {"type": {"coding": [records.coding(system, code, "Resulting Activity")], "text": text}, "valueReference": {"reference": ref}}

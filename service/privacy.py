"""What an outside client may see, and 42 CFR Part 2 on every read path (docs/security.md "42 CFR Part 2").

Inside the program: internal clients (the program's staff tools) and DEVELOPMENT (IOP_AUTH=off, CLI, workers)
see everything; nothing here runs a query for them. Everyone else is outside the Part 2 program and acts for
its organization O. A resource is visible to O when it is
  - directory or conformance data (DIRECTORY),
  - created by a client of O (meta.source = WRITER + client id + '#' + O, stamped at create, kept on updates),
  - a Task whose requester or owner is O or a PractitionerRole of O (a bare Practitioner names no organization),
    or named by such a Task's focus, for, input or output (the referral, its patient, what was sent and sent back).
Anything else is 'not yours': 404, exactly as for an id that does not exist (existence is not revealed).
Visible Part 2 data (part2.is_labelled) created by someone else is disclosed only under a Consent that permits it
(consents.py); without one a read is 403 and the refusal is audited, and searches, includes, history,
$everything and Bundle responses leave it out. Each disclosure carries the §2.32 notice (NOTICE).
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

from flask import g, has_request_context
from sqlalchemy import Connection, and_, false, or_, select

from . import access as access_mod
from . import consents, dates, part2
from .access import Access
from .conformance import CANONICAL
from .errors import Forbidden, Issue, NotFound
from .tables import resource, sp_reference

log = logging.getLogger(__name__)

DIRECTORY = frozenset({"Organization", "Location", "HealthcareService", "Practitioner", "PractitionerRole",
                       "StructureDefinition", "ValueSet", "CodeSystem", "OperationDefinition", "Measure", "Questionnaire"})
WRITER = f"{CANONICAL}/client/"  # meta.source of what an outside client created (not resolvable: an identifier)
# 42 CFR §2.32(a)(2), the short statement (2024 final rule); no standard HTTP header carries it, hence our own.
NOTICE = "42 CFR part 2 prohibits unauthorized use or disclosure of these records."
NOTICE_HEADER = "X-Redisclosure-Notice"
REDISCLOSURE_MARK = {"system": part2.ACT_CODE, "code": "RedisclosureProhibitionMark",
                     "display": "prohibition against redisclosure mark"}
ALLOW, HIDDEN, REFUSED = "allow", "hidden", "refused"


# ------------------------------------------------------------------------------- who is asking
@dataclass
class Viewer:
    """An outside organization's view for one request: its referral set and the consents read so far."""

    access: Access
    organization: str
    refs: set[str]
    consents: dict[str, list[dict]] = field(default_factory=dict)

    def visible(self, rtype: str, rid: str, doc: dict) -> bool:
        return rtype in DIRECTORY or f"{rtype}/{rid}" in self.refs or created_by(doc, self.organization)


def viewer(conn: Connection, who: Access | None = None) -> Viewer | None:
    """The outside view of the request's client (None inside the program), computed once per request."""
    who = who or access_mod.current()
    if who.internal:
        return None
    org = who.organization or f"urn:client:{who.client_id}"  # a client without an organization sees only its own
    cache = g.setdefault("iop_viewers", {}) if has_request_context() else {}
    if org not in cache:
        cache[org] = Viewer(who, org, referral_refs(conn, org) if who.organization else set())
    return cache[org]


def referral_refs(conn: Connection, org: str) -> set[str]:
    """'Type/id' of the referral Tasks naming `org` as requester or owner, and what those Tasks name (two queries)."""
    ref, R = sp_reference, resource
    otype, _, oid = org.partition("/")
    role_pks = select(ref.c.resource_pk).where(ref.c.type == "PractitionerRole", ref.c.name == "organization",
                                               ref.c.target_type == otype, ref.c.target_id == oid)
    roles = select(R.c.id).where(R.c.pk.in_(role_pks), R.c.deleted == false())
    agent = or_(and_(ref.c.target_type == otype, ref.c.target_id == oid),
                and_(ref.c.target_type == "PractitionerRole", ref.c.target_id.in_(roles)))
    tasks = select(ref.c.resource_pk).where(ref.c.type == "Task", ref.c.name.in_(("requester", "owner")), agent)
    out: set[str] = set()
    for text in conn.execute(select(R.c.content).where(R.c.pk.in_(tasks), R.c.deleted == false())).scalars():
        out.update(_task_refs(json.loads(text or "{}")))
    return out


def _task_refs(task: dict) -> set[str]:
    found = {f"Task/{task.get('id')}"}
    values = [task.get("focus"), task.get("for")]
    values += [p.get("valueReference") for key in ("input", "output") for p in task.get(key) or [] if isinstance(p, dict)]
    found.update(r for r in (_ref(v) for v in values) if r)
    return found


def _ref(value: object) -> str | None:
    ref = value.get("reference") if isinstance(value, dict) else None
    if not isinstance(ref, str) or ref.startswith(("#", "urn:")) or "/" not in ref:
        return None
    return consents._relative(ref)


def writer_source(who: Access) -> str:
    return f"{WRITER}{quote(who.client_id or '', safe='')}#{who.organization or 'urn:client:' + (who.client_id or '')}"


def created_by(doc: dict, org: str) -> bool:
    meta = doc.get("meta")
    source = meta.get("source") if isinstance(meta, dict) else None
    return isinstance(source, str) and source.startswith(WRITER) and source.endswith("#" + org)


def patient_of(doc: dict) -> str | None:
    """'Patient/id' the data is about (the Patient itself, or subject / patient / for / beneficiary)."""
    if doc.get("resourceType") == "Patient":
        return f"Patient/{doc.get('id')}"
    for name in ("subject", "patient", "for", "beneficiary"):
        ref = _ref(doc.get(name))
        if ref and ref.startswith("Patient/"):
            return ref
    return None


# ------------------------------------------------------------------------------- decisions
def decide(conn: Connection, view: Viewer, rtype: str, rid: str, doc: dict) -> tuple[str, dict | None]:
    """(ALLOW | HIDDEN | REFUSED, the Consent a labelled disclosure rests on)."""
    if not view.visible(rtype, rid, doc):
        return HIDDEN, None
    if created_by(doc, view.organization) or not part2.is_labelled(doc):
        return ALLOW, None
    patient = patient_of(doc)
    if patient is None:
        return REFUSED, None
    if patient not in view.consents:
        view.consents[patient] = consents.patient_consents(conn, patient)
    consent = consents.permitting(view.consents[patient], view.organization, view.access.purpose,
                                  part2.is_counseling_note(doc), dates.utcnow())
    return (ALLOW, consent) if consent else (REFUSED, None)


def check_read(conn: Connection, stored) -> dict[str, str]:
    """For a read or vread of a stored version: 404 when hidden, 403 (audited) when Part 2 forbids; else the notice headers."""
    view = viewer(conn)
    if view is None or stored is None:
        return {}
    label = f"{stored.type}/{stored.id}"
    if stored.deleted or stored.content is None:
        if label in view.refs:
            return {}
        raise NotFound(f"{label} is not known")
    verdict, consent = decide(conn, view, stored.type, stored.id, json.loads(stored.content))
    if verdict == HIDDEN:
        raise NotFound(f"{label} is not known")
    if verdict == REFUSED:
        refused([stored], "no active 42 CFR Part 2 consent permits this disclosure")
        raise Forbidden(f"{label} is protected by 42 CFR Part 2 and no active consent of the patient permits disclosing it "
                        f"to {view.organization} for {view.access.purpose}", code="security")
    return notice_headers(consent)


_PROGRAM_WORK = contextvars.ContextVar("iop_program_work", default=False)


@contextlib.contextmanager
def program_work() -> Iterator[None]:
    """The program's own work inside a client's unit (the workflows a referral triggers): no visibility checks on what
    it changes. What it creates there is stamped as the client's (the Task the referral workflow makes for a
    ServiceRequest that came without one belongs to the referral the client sent)."""
    token = _PROGRAM_WORK.set(True)
    try:
        yield
    finally:
        _PROGRAM_WORK.reset(token)


def check_write(unit, prior) -> None:
    """An outside client changes (or matches, in a conditional create) only what it may see and may have disclosed
    to it: 404 / 403 as for a read."""
    if unit.options.access.internal or _PROGRAM_WORK.get() or prior is None or prior.deleted:
        return
    unit.flush()
    if has_request_context() and access_mod.current() == unit.options.access:
        check_read(unit.conn, prior)
        return
    view = viewer(unit.conn, unit.options.access)
    if view and decide(unit.conn, view, prior.type, prior.id, json.loads(prior.content or "{}"))[0] != ALLOW:
        raise NotFound(f"{prior.type}/{prior.id} is not known")


def refused(entities: list, reason: str) -> None:
    """Audit a refused disclosure of stored versions / search rows (service/audit.py records it as an AuditEvent)."""
    try:
        from . import audit
    except ImportError:  # the audit trail is not part of this build yet
        return
    record = getattr(audit, "record_refusal", None)
    if record is not None:
        record(entities, reason)


# ------------------------------------------------------------------------------- writes
def on_write(unit, final: dict, prior) -> None:
    """At write time (interactions.prepare): the creator stamp in meta.source and the Part 2 labels (part2.py)."""
    if not isinstance(final.get("meta"), dict):
        return
    prior_content = prior.content if prior is not None and not prior.deleted else None
    _stamp_creator(unit.options.access, final["meta"], prior_content)
    if part2.should_label(final, prior_content, lambda ref: _stored_content(unit, ref)):
        part2.add_labels(final)
    part2.keep_counseling_label(final, prior_content)


def restored(resource: dict, prior) -> dict:
    """The resource with what a write keeps from the version it replaces (creator, labels), for the no-op update check."""
    meta = resource.get("meta", {})
    if prior is None or prior.content is None or not isinstance(meta, dict):
        return resource
    copy = dict(resource, meta=dict(meta))
    _stamp_creator(access_mod.DEVELOPMENT, copy["meta"], prior.content)
    if part2.should_label(copy, prior.content, lambda ref: None):
        part2.add_labels(copy)
    part2.keep_counseling_label(copy, prior.content)
    return copy


def _stamp_creator(who: Access, meta: dict, prior_content: str | None) -> None:
    """Who created a resource stays in meta.source across updates; an outside client cannot claim another's."""
    prior_source = ((json.loads(prior_content).get("meta") or {}).get("source")
                    if prior_content and WRITER in prior_content else None)
    if isinstance(prior_source, str) and prior_source.startswith(WRITER):
        meta["source"] = prior_source
    elif prior_content is None and not who.internal:
        meta["source"] = writer_source(who)
    elif not who.internal and str(meta.get("source", "")).startswith(WRITER):
        del meta["source"]


def _stored_content(unit, reference: str) -> str | None:
    from .workflows import records  # what the unit wrote itself needs no flush and no query (a scored response)

    stored = records.written(unit).get(reference)
    if stored is None:
        rtype, _, rid = reference.partition("/")
        stored = unit.current(rtype, rid)
    return stored.content if stored is not None else None


# ------------------------------------------------------------------------------- notices
def scope_text(consent: dict) -> str:
    """A plain statement of what the consent permits (§2.32 asks for a copy of the consent or its scope)."""
    provision = consent.get("provision") or {}
    purposes = ", ".join(c.get("code", "?") for c in provision.get("purpose") or [] if isinstance(c, dict))
    end = (provision.get("period") or {}).get("end")
    return (f"Disclosed under Consent/{consent.get('id')} (42 CFR Part 2): to the named recipient, for {purposes}"
            f"{f', until {end}' if end else ''} or until revoked.")


def notice_headers(consent: dict | None) -> dict[str, str]:
    if consent is None:
        return {}
    return {NOTICE_HEADER: f"{NOTICE} {scope_text(consent)}", "Link": f'<Consent/{consent.get("id")}>; rel="describedby"'}


@dataclass
class Screened:
    """What a screening left out and which consents the disclosed labelled data rests on."""

    withheld: int = 0
    consents: dict[str, dict] = field(default_factory=dict)

    def issues(self) -> list[Issue]:
        out = [Issue("information", "informational", f"{NOTICE} {scope_text(c)}") for c in self.consents.values()]
        if self.withheld:
            out.append(Issue("information", "suppressed", "Some resources were withheld: the client may not see them "
                             "or no consent of the patient permits disclosing them (42 CFR Part 2)"))
        return out

    def mark(self, bundle_text: str) -> str:
        """Add the RedisclosureProhibitionMark to the Bundle's meta when it discloses Part 2 data."""
        if not self.consents:
            return bundle_text
        label = json.dumps([REDISCLOSURE_MARK], separators=(",", ":"))
        return bundle_text.replace('"meta":{', f'"meta":{{"security":{label},', 1)


def screen(conn: Connection, items: Iterable, screened: Screened | None = None) -> list:
    """The items (with .type, .id, .content) the client may have; others are counted as withheld and audited."""
    items = list(items)
    screened = screened if screened is not None else Screened()
    view = viewer(conn)
    if view is None:
        return items
    kept, refused_ = [], []
    for item in items:
        if item.content is None:  # a deletion in history: shown only for the client's referral set
            (kept if f"{item.type}/{item.id}" in view.refs else refused_).append(item)
            continue
        verdict, consent = decide(conn, view, item.type, item.id, json.loads(item.content))
        if verdict == ALLOW:
            kept.append(item)
            if consent is not None:
                screened.consents[consent["id"]] = consent
        else:
            refused_.append(item)
    screened.withheld += len(refused_)
    labelled = [i for i in refused_ if part2.text_is_labelled(i.content)]
    if labelled:
        refused(labelled, "no active 42 CFR Part 2 consent permits this disclosure")
    return kept


def screen_page(conn: Connection, page) -> Screened:
    """Screen a search page in place: matches and includes; total only where it cannot count what was withheld."""
    screened = Screened()
    if viewer(conn) is None:
        return screened
    complete = page.next_cursor is None and page.previous_cursor is None and (page.matches or not page.total)
    page.matches = screen(conn, page.matches, screened)
    page.included = screen(conn, page.included, screened)
    page.total = len(page.matches) if complete and page.total is not None else None  # _summary=count: no total
    page.warnings = list(page.warnings) + screened.issues()
    return screened


def is_outside() -> bool:
    return not access_mod.current().internal


def payload_content(conn: Connection, subscriber_source: str | None, stored, content: str) -> str:
    """The payload a subscriber created by an outside client may get for a Task event (full-resource → id-only → empty)."""
    if content == "empty" or not (isinstance(subscriber_source, str) and subscriber_source.startswith(WRITER)):
        return content
    org = subscriber_source.rpartition("#")[2]
    view = Viewer(Access("subscriber", (), org), org, referral_refs(conn, org) if org.startswith("Organization/") else set())
    if stored.content is None:  # a deletion: the id only, to those whose referral it was
        return "id-only" if content != "empty" and f"{stored.type}/{stored.id}" in view.refs else "empty"
    verdict = decide(conn, view, stored.type, stored.id, json.loads(stored.content))[0]
    if verdict == HIDDEN:
        return "empty"
    return content if verdict == ALLOW else "id-only"

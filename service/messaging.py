"""FHIR messaging intake: [base]/$process-message for BSeR step-down referral messages, answered with an acknowledgement.

A referral message (Bundle type message, MessageHeader event v2-0003#I12 first, focus the referral Task) is
checked as an envelope, then stored in ONE unit of work through the transaction machinery: each entry is a
POST, conditional on its first business identifier, with references between entries rewritten to the stored
ids. The MessageHeader is not stored as a clinical resource; the whole message is kept as a receipt Bundle
whose identifier is the message's identity (sender endpoint | MessageHeader.id), so a resent message is
answered with the response stored for it the first time, without processing it again.
See: https://hl7.org/fhir/R4/messaging.html (#reliable), https://hl7.org/fhir/R4/messageheader-operation-process-message.html,
https://hl7.org/fhir/R4/bundle.html#references and domain brief §1.3 (BSeR).
"""
from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from flask import Response, request

from . import __version__, conformance, dates, interactions, references, repository, transaction, validation, wire
from .db import Database, get_db
from .definitions import tables
from .errors import BadRequest, Conflict, Issue, Unprocessable
from .interactions import Unit
from .wire import Prefer

EVENT_SYSTEM, EVENT_CODE, EVENT_DISPLAY = "http://terminology.hl7.org/CodeSystem/v2-0003", "I12", "REF/RRI - Patient referral"
# Local identifier system of our response messages: the value is the id of the receipt Bundle they answer.
RESPONSE_SID = f"{conformance.CANONICAL}/sid/message-response"
FOCUS_TYPES = ("Task", "ServiceRequest")  # BSeR focuses the referral Task; a bare referral is accepted too
HEADER = "Bundle.entry[0].resource"
_RELATIVE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")
_ABSOLUTE_URI = re.compile(r"^(https?://\S+|urn:uuid:[0-9a-fA-F-]{36}|urn:oid:[0-2](\.(0|[1-9][0-9]*))+)$")


@dataclass
class Message:
    """A checked message: its entries, its header, the receipt to store and the entry the header focuses."""

    entries: list[dict]
    header: dict
    receipt: dict
    key: str  # conditional-create criteria of the receipt: identifier=<sender endpoint>|<MessageHeader.id>
    focus: int  # index of the focus entry


@dataclass
class _Reply:
    text: str | None = None


# ------------------------------------------------------------------------------- HTTP
def operation() -> Response:
    """POST [base]/$process-message: a message Bundle (or Parameters with `content`) in, the response message out."""
    from .rest import settings, write_options  # the same options as every other write

    content, async_ = _parameters(wire.json_body(request), request.args.get("async"))
    return wire.respond(process(get_db(), content, write_options(), settings(), async_=async_))


def _parameters(body: object, async_arg: str | None) -> tuple[object, bool]:
    """(content, async) from a Bundle body plus ?async=, or from a Parameters body (content, async, response-url)."""
    async_value: object = async_arg
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        params = {p.get("name"): p for p in body.get("parameter", []) if isinstance(p, dict)}
        if "content" not in params or not isinstance(params["content"].get("resource"), dict):
            raise BadRequest("$process-message takes the message Bundle in the parameter 'content'", code="required",
                             expression="Parameters.parameter")
        body = params["content"]["resource"]
        async_value = params["async"].get("valueBoolean") if "async" in params else async_value
    if async_value in (None, False, "false"):
        return body, False
    if async_value in (True, "true"):
        return body, True
    raise BadRequest(f"async must be true or false, not '{async_value}'", expression="async")


# ------------------------------------------------------------------------------- processing
def process(db: Database, body: object, options: interactions.Options, settings: dict, *, async_: bool = False) -> str:
    """Process one message synchronously and return the response message Bundle as JSON text.

    response-url is only used with async=true, which this server does not offer: it answers in the HTTP response.
    """
    if async_:
        raise BadRequest("Asynchronous messaging (async=true) is not supported; send the message without async and read the "
                         "response message from the HTTP response", code="not-supported", expression="async")
    message = check(body, options, settings)
    reply = interactions.run(db, lambda unit: _receive(unit, message, settings), options)
    assert reply.text is not None
    return reply.text


def _receive(unit: Unit, message: Message, settings: dict) -> _Reply:
    """Store the receipt first (it serialises copies of one message), then the entries; the reply is built last."""
    reply = _Reply()
    # check() validated the whole message; the receipt adds only the server's identifier and labels to it
    receipt = interactions.create(unit, message.receipt, if_none_exist=message.key, validated=True)
    if receipt.status == 200:  # received before: the original response SHALL be resent (messaging.html#reliable)
        reply.text = _original_response(unit, receipt.stored.id)
        return reply
    entries = [_entry(i, raw, unit.options.base_url) for i, raw in enumerate(message.entries) if i > 0]
    transaction._transaction(unit, entries, Prefer("minimal"), unit.options.base_url, settings)
    unit.after_workflows.append(lambda u: _answer(u, message, entries, receipt.stored.id, reply))
    return reply


def _entry(index: int, raw: dict, base: str) -> transaction.Entry:
    """A message entry as a transaction POST entry: conditional on its first business identifier (whose criteria the
    transaction locks, so two messages about one patient arriving together create it once)."""
    resource = _local(raw["resource"], base)
    rtype = resource["resourceType"]
    return transaction.Entry(index, "POST", rtype, rtype=rtype, full_url=raw["fullUrl"], resource=resource, source=resource,
                             if_none_exist=_business_key(resource))


def _business_key(resource: dict) -> str | None:
    """identifier=system|value of the first identifier with both; None (always created) without one."""
    if "identifier" not in tables().search_params.get(resource["resourceType"], {}):
        return None
    given = resource.get("identifier")
    identifiers = [given] if isinstance(given, dict) else given if isinstance(given, list) else []
    first = next((i for i in identifiers if isinstance(i, dict) and i.get("system") and i.get("value")), None)
    return _token_query("identifier", first["system"], first["value"]) if first else None


def _token_query(name: str, system: str, value: str) -> str:
    """name=system|value as a query string, with search escaping (search.html#escaping) and URL encoding."""
    def escape(text: str) -> str:
        return re.sub(r"([\\,|$])", r"\\\1", text)
    return f"{name}={quote(f'{escape(system)}|{escape(value)}', safe=':/|')}"



def _original_response(unit: Unit, receipt_id: str) -> str:
    rows = unit.find("Bundle", _token_query("identifier", RESPONSE_SID, receipt_id), limit=1)
    if not rows:
        raise Conflict(f"This message was received before (receipt Bundle/{receipt_id}), but its response is no longer stored",
                       code="duplicate")
    return rows[0].content


# ------------------------------------------------------------------------------- the response message
def _answer(unit: Unit, message: Message, entries: list[transaction.Entry], receipt_id: str, reply: _Reply) -> None:
    """Compose the acknowledgement after the workflows ran, store it, and hand its text to the caller."""
    focus = _stored_focus(unit, message, entries)
    base = unit.options.base_url
    bundle_id, header_id = str(uuid.uuid4()), str(uuid.uuid4())
    resource = json.loads(focus.content or "{}")
    header = _response_header(message.header, header_id, f"{base}/{focus.type}/{focus.id}", base)
    owner = resource.get("owner") if focus.type == "Task" else None
    if isinstance(owner, dict) and _RELATIVE.match(owner.get("reference", "")):  # BSeR: the sender is the referral recipient
        header["sender"] = dict(owner, reference=f"{base}/{owner['reference']}")
    bundle = {"resourceType": "Bundle", "id": bundle_id, "meta": _high_water_mark(None, [{"resource": resource}]),
              "identifier": {"system": RESPONSE_SID, "value": receipt_id}, "type": "message", "timestamp": dates.instant(unit.now),
              "entry": [{"fullUrl": f"urn:uuid:{header_id}", "resource": header},
                        {"fullUrl": f"{base}/{focus.type}/{focus.id}", "resource": resource}]}
    reply.text = interactions.create(unit, bundle, rid=bundle_id).stored.content


# Bundle-level labels: the most restrictive confidentiality and the policy of what is inside. DS4P: privacy-revealing
# sensitivity, obligation and refrain codes (SUD, NORDSCLCD) stay on the entries, not on the Bundle.
# http://hl7.org/fhir/uv/security-label-ds4p (domain brief §5.2)
_HIGH_WATER = {("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "R"),
               ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "42CFRPart2")}


def _high_water_mark(meta: object, entries: list[dict]) -> dict:
    """The stored Bundle's meta: the sender's, plus R and 42CFRPart2 when any entry carries them."""
    out = dict(meta) if isinstance(meta, dict) else {}
    labels = list(out.get("security", [])) if isinstance(out.get("security"), list) else []
    have = {(lab.get("system"), lab.get("code")) for lab in labels if isinstance(lab, dict)}
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        meta_ = resource.get("meta") if isinstance(resource, dict) else None
        for lab in (meta_ or {}).get("security", []) if isinstance(meta_, dict) else []:
            key = (lab.get("system"), lab.get("code")) if isinstance(lab, dict) else None
            if key in _HIGH_WATER and key not in have:
                labels.append({"system": key[0], "code": key[1], "display": lab.get("display", key[1])})
                have.add(key)
    if labels:
        out["security"] = labels
    return out


def _stored_focus(unit: Unit, message: Message, entries: list[transaction.Entry]) -> repository.Stored:
    """The stored Task the message focuses; for a focused ServiceRequest its Task when one exists now, else the request."""
    entry = next(e for e in entries if e.index == message.focus)
    assert entry.rtype and entry.target_id
    if entry.rtype == "ServiceRequest":
        tasks = unit.find("Task", f"focus=ServiceRequest/{entry.target_id}", limit=1)
        if tasks:
            task = unit.current("Task", tasks[0].id)
            assert task is not None
            return task
    stored = unit.current(entry.rtype, entry.target_id)
    assert stored is not None
    return stored


def _response_header(incoming: dict, header_id: str, focus_url: str, base: str) -> dict:
    """Our MessageHeader: same event, from our endpoint to the sender's, quoting the request's id (response.identifier)."""
    sender = incoming["source"]
    destination = {"endpoint": sender["endpoint"], **({"name": sender["name"]} if sender.get("name") else {})}
    return {"resourceType": "MessageHeader", "id": header_id,
            "eventCoding": {"system": EVENT_SYSTEM, "code": EVENT_CODE, "display": EVENT_DISPLAY},
            "destination": [destination],
            "source": {"name": "IOP FHIR R4 service", "software": "iop-fhir-service", "version": __version__, "endpoint": base},
            "focus": [{"reference": focus_url}],
            "response": {"identifier": incoming["id"], "code": "ok"}}


# ------------------------------------------------------------------------------- checking the envelope
def check(body: object, options: interactions.Options, settings: dict) -> Message:
    """A Message, or a 400/422 OperationOutcome naming the place in the Bundle; nothing is stored before this passes."""
    entries = _envelope(body, settings["MAX_BUNDLE_ENTRIES"])
    for i, raw in enumerate(entries):
        _check_entry(i, raw)
    _check_unique(entries)
    assert isinstance(body, dict)
    issues = validation.validate(body, options.max_depth)
    if issues:
        raise BadRequest(issues[0].diagnostics, issues=issues)
    header = entries[0]["resource"]
    _check_event(header)
    if not header.get("id"):
        raise BadRequest("The MessageHeader needs an id: the response quotes it, and resends are recognised by it",
                         code="required", expression=f"{HEADER}.id")
    focus = _check_focus(header, entries, options.base_url)
    _check_references(entries, options.base_url)
    endpoint = header["source"]["endpoint"]
    receipt = dict(body, identifier={"system": endpoint, "value": header["id"]})
    receipt["meta"] = _high_water_mark(body.get("meta"), entries)
    return Message(entries, header, receipt, _token_query("identifier", endpoint, header["id"]), focus)


def _envelope(body: object, max_entries: int) -> list[dict]:
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise BadRequest("$process-message takes a Bundle of type message", code="structure")
    if body.get("type") != "message":
        hint = " (post transactions and batches to [base])" if body.get("type") in ("transaction", "batch") else ""
        raise BadRequest(f"Bundle.type must be message, not '{body.get('type')}'{hint}", expression="Bundle.type")
    entries = body.get("entry")
    if not isinstance(entries, list) or not entries:
        raise BadRequest("A message holds its MessageHeader and resources in Bundle.entry", code="required", expression="Bundle.entry")
    if len(entries) > max_entries:
        raise BadRequest(f"A Bundle may hold at most {max_entries} entries (IOP_MAX_BUNDLE_ENTRIES); it has {len(entries)}",
                         code="too-costly", expression="Bundle.entry")
    if "total" in body:
        raise BadRequest("bdl-1: total only when a search or history", code="invariant", expression="Bundle.total")
    return entries


def _check_entry(index: int, raw: object) -> None:
    """Each entry: a resource and an absolute fullUrl, no request/response/search (bdl-2, 3, 4); the header first (bdl-12)."""
    where = f"Bundle.entry[{index}]"
    if not isinstance(raw, dict) or not isinstance(raw.get("resource"), dict) or "resourceType" not in raw["resource"]:
        raise BadRequest("Every entry of a message holds a resource", code="required", expression=f"{where}.resource")
    for key, rule in (("request", "bdl-3"), ("response", "bdl-4"), ("search", "bdl-2")):
        if key in raw:
            raise BadRequest(f"{rule}: a message entry has no {key}", code="invariant", expression=f"{where}.{key}")
    rtype = raw["resource"]["resourceType"]
    if (index == 0) != (rtype == "MessageHeader"):
        text = "bdl-12: the first entry of a message is its MessageHeader" if index == 0 else \
            "A message has one MessageHeader, its first entry (bdl-12)"
        raise BadRequest(text, code="invariant", expression=f"{where}.resource.resourceType")
    if index > 0 and rtype not in tables().resource_types:
        raise BadRequest(f"Resource type '{rtype}' is not supported by this server", code="not-supported",
                         expression=f"{where}.resource.resourceType")
    _check_full_url(where, raw)


def _check_full_url(where: str, raw: dict) -> None:
    """fullUrl is an absolute URI (urn:uuid, urn:oid or a RESTful URL) that agrees with the resource id (bundle.html)."""
    full_url = raw.get("fullUrl")
    if not isinstance(full_url, str) or not _ABSOLUTE_URI.match(full_url):
        raise BadRequest(f"Every entry of a message needs a fullUrl: urn:uuid:, urn:oid: or an absolute URL, not '{full_url}'",
                         code="required" if full_url is None else "invalid", expression=f"{where}.fullUrl")
    if "/_history/" in full_url:
        raise BadRequest("bdl-8: fullUrl cannot be a version specific reference", code="invariant", expression=f"{where}.fullUrl")
    resource = raw["resource"]
    if full_url.startswith("http") and resource.get("id") is not None:
        if not full_url.endswith(f"/{resource['resourceType']}/{resource['id']}"):
            raise BadRequest(f"fullUrl '{full_url}' disagrees with the resource's type and id", expression=f"{where}.fullUrl")


def _check_unique(entries: list[dict]) -> None:
    """No two entries share a fullUrl (bdl-7) or a resource type and id."""
    seen: dict[str, int] = {}
    for i, raw in enumerate(entries):
        resource = raw["resource"]
        keys = {"fullUrl": raw["fullUrl"]}
        if resource.get("id"):
            keys["resource.id"] = f"{resource['resourceType']}/{resource['id']}"
        for where, key in keys.items():
            if key in seen:
                raise BadRequest(f"Entries {seen[key]} and {i} are both '{key}' (bdl-7: ids are unique in a Bundle)", code="duplicate",
                                 expression=f"Bundle.entry[{i}].{where}")
            seen[key] = i


def _check_event(header: dict) -> None:
    coding = header.get("eventCoding")
    if isinstance(coding, dict) and (coding.get("system"), coding.get("code")) == (EVENT_SYSTEM, EVENT_CODE):
        return
    given = header.get("eventUri") if "eventUri" in header else f"{(coding or {}).get('system')}#{(coding or {}).get('code')}"
    element = "eventUri" if "eventUri" in header else "eventCoding"
    raise Unprocessable(f"This server processes referral messages only (event {EVENT_SYSTEM}#{EVENT_CODE} '{EVENT_DISPLAY}'), "
                        f"not '{given}'", code="not-supported", expression=f"{HEADER}.{element}")


def _check_focus(header: dict, entries: list[dict], base: str) -> int:
    """The entry the header focuses: every focus resolves inside the message; the referral Task, else the ServiceRequest."""
    focus = header.get("focus")
    if not focus:
        raise Unprocessable("A referral message names the referral Task in MessageHeader.focus (BSeR)", code="required",
                            expression=f"{HEADER}.focus")
    urls = {raw["fullUrl"]: i for i, raw in enumerate(entries)}
    found = []
    for k, ref in enumerate(focus):
        literal = ref.get("reference", "")
        index = urls.get(literal, urls.get(_bundle_target(literal, entries[0]["fullUrl"], base, set()) or ""))
        if index is None or index == 0:
            raise Unprocessable(f"MessageHeader.focus '{literal}' is not an entry of the message", code="not-found",
                                expression=f"{HEADER}.focus[{k}]")
        found.append(index)
    for rtype in FOCUS_TYPES:
        chosen = next((i for i in found if entries[i]["resource"]["resourceType"] == rtype), None)
        if chosen is not None:
            return chosen
    raise Unprocessable("MessageHeader.focus must be the referral Task (or its ServiceRequest)", code="business-rule",
                        expression=f"{HEADER}.focus[0]")


def _check_references(entries: list[dict], base: str) -> None:
    """References that can only mean an entry of the message must find one: urn:uuid/urn:oid ones, and those to the
    sender's server (relative ones inside entries with a RESTful fullUrl, absolute ones on such a fullUrl's base;
    bundle.html#references). This server does not pull from the sender (BSeR: the message carries everything);
    a relative reference inside a urn:uuid entry means a resource of this server, as in a transaction."""
    urls = {raw["fullUrl"] for raw in entries}
    senders = {url.rsplit("/", 2)[0] for url in urls if url.startswith(("http://", "https://"))} - {base}
    issues: list[Issue] = []
    for i, raw in enumerate(entries):
        def check(path: str, literal: str, i: int = i, full_url: str = raw["fullUrl"]) -> None:
            target = _bundle_target(literal, full_url, base, senders)
            if target is not None and target not in urls:
                issues.append(Issue("error", "not-found", f"'{literal}' is not an entry of the message; a message carries every "
                                    "resource of the sender's that it refers to", f"Bundle.entry[{i}].resource{path}"))
        _walk_references(raw["resource"], raw["resource"]["resourceType"], "", check)
    if issues:
        raise Unprocessable(issues[0].diagnostics, issues=issues)


def _bundle_target(literal: str, full_url: str, base: str, senders: set[str]) -> str | None:
    """The fullUrl a reference must match inside the message, or None when it may point outside it (here or elsewhere)."""
    if literal.startswith(("urn:uuid:", "urn:oid:")):
        return literal
    if _RELATIVE.match(literal) and full_url.startswith(("http://", "https://")):
        absolute = references.absolute(literal, full_url)
        return None if absolute is None or (base and absolute.startswith(base + "/")) else absolute
    if literal.startswith(("http://", "https://")) and literal.rsplit("/", 2)[0] in senders:
        return literal
    return None


def _local(resource: dict, base: str) -> dict:
    """A copy in which absolute references to this server (base/Type/id) are relative, as references are stored here."""
    def relative(_path: str, literal: str) -> str | None:
        rest = literal[len(base) + 1:] if base and literal.startswith(base + "/") else ""
        return rest if _RELATIVE.match(rest) else None
    out = _walk_references(resource, resource["resourceType"], "", relative)
    assert isinstance(out, dict)
    return out


def _walk_references(value: object, type_name: str, path: str, visit: Callable[[str, str], str | None]) -> object:
    """A copy of `value` in which visit(path, literal) saw every Reference.reference (typed by the R4 element model)
    and replaced the ones it returned a new literal for. Only Reference.reference: uri and canonical values stay."""
    if isinstance(value, list):
        return [_walk_references(item, type_name, f"{path}[{i}]", visit) for i, item in enumerate(value)]
    if not isinstance(value, dict):
        return value
    if type_name == "Resource":
        type_name = value.get("resourceType", "Resource")
    model = tables().types.get(type_name, {})
    out = {key: _walk_references(item, model[key].type, f"{path}.{key}", visit) if key in model else item
           for key, item in value.items()}
    if type_name == "Reference" and isinstance(out.get("reference"), str):
        out["reference"] = visit(path, out["reference"]) or out["reference"]
    return out

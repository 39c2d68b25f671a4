"""SMART v2 scopes on every interaction: which letters of `system/<Type>.<cruds>` each one needs.

read, vread, instance history → r; search, type and system history → s; create → c; update, patch → u;
delete → d; a conditional create/update/patch/delete also searches → s. Each entry of a batch or
transaction is checked the same way (transaction.py); included resources of types the client may not
read are left out of a searchset (rest.searchset); $everything returns only readable types.
Operations: the table OPERATION_SCOPES. Definitional resources (the guide's conformance resources,
terminology) are read without a scope: they hold no one's data.
https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html
"""
from __future__ import annotations

from flask import Request
from sqlalchemy import Connection, delete, select

from . import access, clients, outbox, wire
from .errors import BadRequest, Forbidden, Issue
from .tables import subscription_client

# Reading and searching these needs no scope (writing them does).
DEFINITIONAL = frozenset({"StructureDefinition", "ValueSet", "CodeSystem", "ConceptMap", "OperationDefinition", "SearchParameter",
                          "CapabilityStatement", "ImplementationGuide", "Measure", "SubscriptionTopic", "Questionnaire"})
# operation → (resource type whose scope it needs or None for the instance's own type, letters); "" = no scope.
OPERATION_SCOPES: dict[str, tuple[str | None, str]] = {
    "$validate": (None, ""),  # checks a resource given in the request; stores and discloses nothing
    "$expand": (None, ""),
    "$everything": ("Patient", "r"),  # and each member type's r (operations.everything)
    "$triage": ("Task", "u"),
    "$decide": ("Task", "u"),
    "$referral-metrics": ("Task", "s"),
    "$status": ("Subscription", "r"),
}
# The views of the FHIR blueprint whose scope follows from the URL alone: view → letters on the URL's type.
VIEW_LETTERS = {"search_get": "s", "search_post": "s", "type_history": "s", "conditional_update": "us", "conditional_delete": "ds",
                "conditional_patch": "us", "update": "u", "patch": "u", "delete": "d", "instance_history": "r", "vread": "r"}


def require(rtype: str, letters: str, what: str, expression: str | None = None) -> None:
    """403 naming the scope unless the request's client holds each letter on rtype."""
    if not letters:
        return
    current = access.current()
    missing = "".join(c for c in letters if not current.allows(rtype, c))
    if missing:
        raise Forbidden(f"{what} needs scope system/{rtype}.{missing} (granted: {current.scope_text or 'none'})",
                        expression=expression)


def check_request(req: Request) -> None:
    """The scope check of one request to the FHIR blueprint (before its view runs); default deny for unknown views."""
    if access.current().client_id is None:  # auth off: development
        return
    view = (req.endpoint or "").removeprefix("fhir.")
    args = req.view_args or {}
    rtype, rid, name = args.get("rtype"), args.get("rid"), args.get("name")
    if view in ("metadata", "batch_or_transaction", "system_search"):
        return  # public; checked per entry (transaction.py); refused anyway
    if view == "system_history":
        return require("*", "s", "System history")
    if view == "operation_or_create":
        return operation(None, name, req) if name.startswith("$") else create(name, req)
    if view in ("read", "type_operation", "instance_operation"):
        if view == "read" and not rid.startswith("$"):
            return read(rtype)
        return operation(rtype, name or rid, req)
    if view in VIEW_LETTERS:
        if rtype in DEFINITIONAL and VIEW_LETTERS[view] in ("s", "r"):
            return None
        return require(rtype, VIEW_LETTERS[view], _describe(view, rtype))
    raise Forbidden(f"No scope grants {req.method} {req.path}")


def read(rtype: str) -> None:
    if rtype not in DEFINITIONAL:
        require(rtype, "r", f"Reading {rtype}")


def create(rtype: str, req: Request) -> None:
    conditional = bool(req.headers.get("If-None-Exist")) or any(k not in ("_format", "_pretty") for k in req.args)
    require(rtype, "cs" if conditional else "c", f"{'Conditional create' if conditional else 'Create'} of {rtype}")


def operation(rtype: str | None, name: str, req: Request | None = None) -> None:
    if name == "$process-message" and req is not None:
        return process_message(req)
    scope_type, letters = _operation_scope(rtype, name)
    require(scope_type or rtype or "*", letters, f"{name}")


def _operation_scope(rtype: str | None, name: str) -> tuple[str | None, str]:
    """What an operation needs: OPERATION_SCOPES, else its registration (service/ops); an unknown one needs everything."""
    if name in OPERATION_SCOPES:
        return OPERATION_SCOPES[name]
    from . import ops
    op = ops.find(rtype, name)
    return op.scope if op is not None else (None, "cruds")


def process_message(req: Request) -> None:
    """$process-message stores what the message carries: c on each type in it."""
    body = wire.json_body(req)
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        body = next((p.get("resource") for p in body.get("parameter", []) if isinstance(p, dict) and p.get("name") == "content"), body)
    if not isinstance(body, dict) or not isinstance(body.get("entry", []), list):
        raise BadRequest("$process-message takes a message Bundle", code="structure")
    types = sorted({e["resource"]["resourceType"] for e in body.get("entry", [])
                    if isinstance(e, dict) and isinstance(e.get("resource"), dict) and isinstance(e["resource"].get("resourceType"), str)})
    for rtype in types:
        require(rtype, "c", "$process-message")


def entry(method: str, url: str, rtype: str | None, rid: str | None, query: str | None, conditional_create: bool,
          where: str) -> None:
    """The scope check of one batch/transaction entry (as the same REST interaction would need)."""
    if access.current().client_id is None:
        return
    if rtype is None:  # [base]/_history or metadata
        if url.lstrip("/").startswith("_history"):
            require("*", "s", "System history", f"{where}.request.url")
        return
    if method in ("GET", "HEAD"):
        if rtype in DEFINITIONAL:
            return
        letters = "r" if rid and not rid.startswith("_") else "s"
    else:
        letters = {"POST": "c", "PUT": "u", "PATCH": "u", "DELETE": "d"}[method]
        if query or conditional_create:
            letters += "s"
    require(rtype, letters, f"{method} {rtype}{'/' + rid if rid else ''}", f"{where}.request")


def readable_types(types: list[str], all_types) -> list[str]:
    """Of `types` (or every type when empty: no filter), those the client may read; ["-"] (no type) when none."""
    current = access.current()
    if current.client_id is None or current.allows("*", "r") and not types:
        return types
    return [t for t in (types or sorted(all_types)) if current.allows(t, "r")] or ["-"]


def readable_rows(rows: list) -> tuple[list, list[Issue]]:
    """Included rows the client may read, and a warning naming the types left out (none: no warning)."""
    if access.current().client_id is None:
        return rows, []
    kept = [r for r in rows if may_read(r.type)]
    left_out = sorted({r.type for r in rows} - {r.type for r in kept})
    if not left_out:
        return kept, []
    text = f"Included resources of types {', '.join(left_out)} were left out: reading them needs scope system/<Type>.r"
    return kept, [Issue("warning", "suppressed", text, "_include")]


def may_read(rtype: str) -> bool:
    return rtype in DEFINITIONAL or access.current().allows(rtype, "r")


def _describe(view: str, rtype: str) -> str:
    return {"search_get": f"Searching {rtype}", "search_post": f"Searching {rtype}", "type_history": f"The history of {rtype}",
            "conditional_update": f"Conditional update of {rtype}", "conditional_delete": f"Conditional delete of {rtype}",
            "conditional_patch": f"Conditional patch of {rtype}", "update": f"Updating {rtype}", "patch": f"Patching {rtype}",
            "delete": f"Deleting {rtype}", "instance_history": f"The history of a {rtype}", "vread": f"Reading {rtype}"}[view]


# ------------------------------------------------------------------------------- Subscription notifications
def subscription_created(conn: Connection, sid: str, who: access.Access) -> None:
    """Remember the client that created a Subscription: its notifications follow that client's scopes."""
    if who.client_id is None:  # created with auth off (development, the operator's tools): no client to follow
        conn.execute(delete(subscription_client).where(subscription_client.c.subscription_id == sid))
        return
    conn.execute(outbox.upsert(conn, subscription_client, {"subscription_id": sid, "client_id": who.client_id},
                               ["subscription_id"], {"client_id": who.client_id}))


def payload_content(conn: Connection, sid: str, content: str) -> str:
    """full-resource only while the Subscription's client may still read Tasks (registered scopes, active); else id-only."""
    if content != "full-resource":
        return content
    client_id = conn.execute(select(subscription_client.c.client_id).where(subscription_client.c.subscription_id == sid)).scalar()
    if client_id is None:
        return content
    client = clients.get(conn, client_id)
    if client is None or not client.active or not access.Access(client_id, access.parse_scopes(client.scopes)).allows("Task", "r"):
        return "id-only"
    return content

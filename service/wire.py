"""The HTTP wire format: content negotiation, request bodies, Prefer, and FHIR responses.

JSON only (application/fhir+json; application/json accepted); XML is answered with 406/415.
See: https://hl7.org/fhir/R4/http.html#mime-type and #ops (Prefer).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from flask import Request, Response, current_app, g, request

from . import dates
from .errors import BadRequest, NotAcceptable, UnsupportedMediaType
from .repository import Stored

FHIR_JSON = "application/fhir+json"
JSON_TYPES = (FHIR_JSON, "application/json", "application/json+fhir")
JSON_PATCH = "application/json-patch+json"
FORM = "application/x-www-form-urlencoded"
_FORMAT_ALIASES = {"json": FHIR_JSON, "application/json": "application/json", "application/fhir+json": FHIR_JSON,
                   "application/json+fhir": FHIR_JSON}


@dataclass(frozen=True)
class Prefer:
    """The Prefer header: return=minimal|representation|OperationOutcome and handling=strict|lenient."""

    return_: str = "representation"
    strict: bool = False


def negotiate(req: Request) -> str:
    """The response media type for this request; 406 when the client accepts no JSON form."""
    accept = req.headers.get("Accept")
    if not req.query_string and (not accept or accept in (FHIR_JSON, "*/*")):
        return FHIR_JSON  # the common case, without parsing the header
    fmt = req.args.get("_format")
    if fmt is not None:
        chosen = _FORMAT_ALIASES.get(fmt.split(";")[0].strip().lower())
        if chosen is None:
            raise NotAcceptable(f"_format '{fmt}' is not supported; this server speaks JSON (application/fhir+json)")
        return chosen
    if not accept:
        return FHIR_JSON
    best = req.accept_mimetypes.best_match([FHIR_JSON, "application/json", "application/json+fhir"])
    if best is None:
        raise NotAcceptable(f"Cannot produce '{req.headers['Accept']}'; this server speaks JSON (application/fhir+json)")
    return "application/json" if best == "application/json" and not req.accept_mimetypes[FHIR_JSON] else FHIR_JSON


def prefer(req: Request) -> Prefer:
    """The parsed Prefer header."""
    header = req.headers.get("Prefer", "")
    values = dict(_pair(p) for p in re.split(r"[,;]", header) if "=" in p)
    ret = values.get("return", "representation")
    if ret not in ("minimal", "representation", "OperationOutcome"):
        ret = "representation"
    return Prefer(ret, values.get("handling") == "strict")


def _pair(part: str) -> tuple[str, str]:
    key, _, value = part.strip().partition("=")
    return key.strip(), value.strip().strip('"')


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ValueError(f"duplicate property '{dup}'")
    return out


def json_body(req: Request, accepted: tuple[str, ...] = JSON_TYPES) -> object:
    """The request body as JSON: 415 for other media types, 400 for bad UTF-8 or JSON.

    Parsed once per request: a second caller (the scope check of $process-message, then the operation) gets the
    same object, so callers must not change it in place."""
    media = (req.mimetype or "").lower()
    if media not in accepted:
        raise UnsupportedMediaType(f"Content-Type '{req.content_type or ''}' is not supported here; send {accepted[0]}")
    parsed = req.environ.get(_PARSED_BODY)
    if parsed is None:
        parsed = req.environ[_PARSED_BODY] = (_parse_json(req),)
    return parsed[0]


_PARSED_BODY = "iop.json_body"


def _parse_json(req: Request) -> object:
    raw = req.get_data(cache=True)
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadRequest(f"The request body is not valid UTF-8 (byte {err.start})", code="structure") from None
    try:
        return json.loads(body.removeprefix("\ufeff"), parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise BadRequest("The request body is nested too deeply", code="structure") from None
    except ValueError as err:
        raise BadRequest(f"The request body is not valid JSON: {err}", code="structure") from None


def resource_body(req: Request, rtype: str | None = None) -> dict:
    """The request body as a resource of `rtype` (or any type)."""
    body = json_body(req)
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise BadRequest("The request body must be a FHIR resource (a JSON object with resourceType)", code="structure")
    if rtype and body["resourceType"] != rtype:
        raise BadRequest(f"The body is a {body['resourceType']}, but the URL names {rtype}", expression="resourceType")
    return body


def respond(text: str | None, status: int = 200, headers: dict | None = None) -> Response:
    """A FHIR JSON response (honours _pretty)."""
    if text is not None and request.args.get("_pretty") == "true":
        text = json.dumps(json.loads(text), ensure_ascii=False, indent=2)
    mime = getattr(g, "mime", FHIR_JSON)
    return Response(text if text is not None else b"", status=status, headers=headers or {},
                    content_type=f"{mime}; charset=utf-8" if text is not None else None)


def version_headers(stored: Stored, base_url: str, *, location: bool = False) -> dict:
    """ETag and Last-Modified (and Location) for a stored version."""
    headers = {"ETag": stored.etag, "Last-Modified": dates.http_date(stored.last_updated)}
    if location:
        headers["Location"] = f"{base_url}/{stored.type}/{stored.id}/_history/{stored.version}"
    return headers


MAX_INT64 = 2**63 - 1
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def int_param(name: str, raw: str | None, *, default: int | None = None) -> int | None:
    """A non-negative integer query parameter (storage keys fit in 64 bits); 400 otherwise."""
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) > MAX_INT64:
        raise BadRequest(f"{name} must be a non-negative integer, not '{raw}'", expression=name)
    return int(raw)


def base_url() -> str:
    """The FHIR base URL that fullUrl, Location and links use."""
    configured = current_app.config["IOP"]["BASE_URL"]
    return configured or request.host_url.rstrip("/") + "/fhir"

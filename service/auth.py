"""Access control at the FHIR edge: on by default; IOP_AUTH=off is the one development setting that disables it.

With auth on, every /fhir request but the CapabilityStatement (and the SMART discovery document, served
outside this blueprint) needs `Authorization: Bearer <access token>` from our token endpoint
(service/smart.py). A missing, invalid or expired token, or one of a disabled client, is 401 with an
OperationOutcome and a WWW-Authenticate challenge (RFC 6750 §3); a valid one becomes the request's
access context (service/access.py), which the scope checks (service/scopes.py) and the privacy rules read.
See: https://hl7.org/fhir/smart-app-launch/backend-services.html
"""
from __future__ import annotations

from functools import lru_cache

from flask import Request, current_app

from . import access, clients, smart
from .errors import BadRequest, Unauthorized

PUBLIC = {("GET", "/fhir/metadata")}
REALM = "iop-fhir"
# The purpose of use a client may declare for a request (default TREAT): codes of
# http://terminology.hl7.org/CodeSystem/v3-ActReason (PurposeOfUse) that a treatment program's partners use.
PURPOSE_HEADER = "X-Purpose-Of-Use"
PURPOSES = {"TREAT", "ETREAT", "CAREMGT", "COC", "HPAYMT", "HOPERAT", "HRESCH", "PUBHLTH", "PATRQT", "HLEGAL"}


def check(req: Request) -> None:
    """Set the request's access context from its bearer token; 401 unless auth is off or the request is public."""
    if current_app.config["IOP"]["AUTH"] == "off" or (req.method, req.path.rstrip("/")) in PUBLIC:
        return
    token = _bearer(req.headers.get("Authorization", ""))
    claims = smart.verify(token) if token else None
    if claims is None:
        raise _refused("invalid_token" if token else None,
                       "An access token was given but is not valid or has expired: get a new one from the token endpoint"
                       if token else "This server requires authorization: send Authorization: Bearer <access token>")
    client = clients.standing(claims.client_id)  # looked up on each request: a disabled client is refused at once
    if client is None or not client[0]:
        raise _refused("invalid_token", "The access token's client is disabled or no longer registered")
    _, organization, internal = client
    access.set_current(access.Access(claims.client_id, _scopes(claims.scope), organization, internal, _purpose(req)))


def _bearer(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


@lru_cache(maxsize=1024)
def _scopes(text: str) -> tuple[access.Scope, ...]:
    return access.parse_scopes(text)


def _purpose(req: Request) -> str:
    purpose = req.headers.get(PURPOSE_HEADER, "TREAT")
    if purpose not in PURPOSES:
        raise BadRequest(f"{PURPOSE_HEADER} must be a v3-ActReason purpose of use among {', '.join(sorted(PURPOSES))}")
    return purpose


def _refused(error: str | None, text: str) -> Unauthorized:
    # RFC 6750 §3.1: a request without credentials gets the challenge without an error code
    challenge = f'Bearer realm="{REALM}"' + (f', error="{error}"' if error else "")
    return Unauthorized(text, headers={"WWW-Authenticate": challenge})

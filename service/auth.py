"""Access control at the FHIR edge: on by default; IOP_AUTH=off is the one development setting that disables it.

Until the SMART Backend Services authorization server lands (issue 7), a server with auth on serves
only its CapabilityStatement and refuses everything else with 401: deny by default, never open by
accident. See: https://hl7.org/fhir/smart-app-launch/backend-services.html
"""
from __future__ import annotations

from flask import Request, current_app

from .errors import Unauthorized

PUBLIC = {("GET", "/fhir/metadata")}


def check(req: Request) -> None:
    """Raise 401 unless auth is off or the request is public."""
    if current_app.config["IOP"]["AUTH"] == "off" or (req.method, req.path.rstrip("/")) in PUBLIC:
        return
    raise Unauthorized(
        "This server requires authorization: no access token was accepted. "
        "(SMART Backend Services tokens are not issued yet; development servers run with IOP_AUTH=off.)",
        headers={"WWW-Authenticate": 'Bearer realm="iop-fhir"'})

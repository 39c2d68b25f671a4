"""The endpoint registry: external FHIR servers as FHIR Endpoint resources on our server, and one client per Endpoint.

An external server is an Endpoint (connectionType hl7-fhir-rest, `address` = its FHIR base, `managingOrganization`
= the Organization that runs it) written through the normal write path like any resource. Its settings are
extensions under our canonical (profile iop-exchange-endpoint, profiles/input/fsh/exchange.fsh):

    endpoint-token-env       valueString  static bearer token: the NAME of an environment variable IOP_SECRET_…
    endpoint-smart-backend   complex      SMART Backend Services (service/backend_auth.py):
        clientId   valueString   our client_id at the remote's authorization server
        tokenUrl   valueUrl      its token endpoint (absent: read from [address]/.well-known/smart-configuration)
        keyEnv     valueString   IOP_SECRET_… variable holding our private key (PEM)     } exactly one
        keyFile    valueString   absolute path of a PEM file only our user may read      }
        kid        valueString   the key's id in the JWKS we registered with the remote
        alg        valueCode     RS384 | ES384
        scope      valueString   the scopes to ask for, e.g. "system/Task.cru system/Patient.r"
    endpoint-timeout         complex      connect, read: valueDecimal seconds (defaults 3.05 and 30)
    endpoint-rate-limit      valueDecimal  requests per second to that server, at most

Secrets never live in a resource: an Endpoint names where the secret is (a variable or a file), and only
variables with the IOP_SECRET_ prefix may be named, so that an Endpoint cannot send, say, the database password
to a remote. Credentials go over https only (plain http to this machine is allowed for tests and tunnels).
See: https://hl7.org/fhir/R4/endpoint.html and https://hl7.org/fhir/smart-app-launch/backend-services.html
"""
from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import Connection

from . import repository, search
from .fhirclient import DEFAULT_TIMEOUT, FhirClient, FhirClientError
from .referral_bundle import escape, query_string, token

CANONICAL = "https://iop.example.org/fhir/StructureDefinition"
PROFILE = f"{CANONICAL}/iop-exchange-endpoint"
TOKEN_EXTENSION = f"{CANONICAL}/endpoint-token-env"
SMART_EXTENSION = f"{CANONICAL}/endpoint-smart-backend"
TIMEOUT_EXTENSION = f"{CANONICAL}/endpoint-timeout"
RATE_EXTENSION = f"{CANONICAL}/endpoint-rate-limit"
CONNECTION_TYPE = ("http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "hl7-fhir-rest")
SECRET_ENV = re.compile(r"^IOP_SECRET_[A-Z0-9_]{1,64}$")  # only these variables may be sent (or signed with) to a remote
ALGORITHMS = ("RS384", "ES384")  # what SMART Backend Services asks servers to support
DEFAULT_MAX_RPS = 5.0
MAX_TIMEOUT = 300.0
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


class EndpointError(ValueError):
    """An Endpoint that is missing, not active or wrongly configured; the message says what to fix."""


@dataclass(frozen=True)
class SmartBackend:
    """SMART Backend Services settings of one Endpoint (the key itself is read only when a token is needed)."""

    client_id: str
    token_url: str | None  # None: discovered from the server's .well-known/smart-configuration
    key_env: str | None
    key_file: str | None
    kid: str
    alg: str
    scope: str


@dataclass(frozen=True)
class Endpoint:
    """One external FHIR server, as its Endpoint resource on our server describes it."""

    id: str
    address: str  # the FHIR base, without a trailing slash
    organization: str | None  # managingOrganization.reference
    payload_types: frozenset[tuple[str, str]]
    token_env: str | None = None
    smart: SmartBackend | None = None
    timeout: tuple[float, float] = DEFAULT_TIMEOUT  # (connect, read) seconds
    max_rps: float | None = None  # None: the caller's default (e.g. IOP_PULL_MAX_RPS for the referral pull)

    @property
    def auth(self) -> str:
        """none | bearer | smart-backend."""
        return "smart-backend" if self.smart else "bearer" if self.token_env else "none"

    @property
    def reference(self) -> str:
        return f"Endpoint/{self.id}"


# ------------------------------------------------------------------------------- the registry
def load(conn: Connection, endpoint_id: str) -> Endpoint:
    """The active Endpoint/<id> on our server; EndpointError when it is missing, inactive or misconfigured."""
    stored = repository.current(conn, "Endpoint", endpoint_id) if _ID.match(endpoint_id or "") else None
    if stored is None or stored.deleted or stored.content is None:
        raise EndpointError(f"Endpoint/{endpoint_id} does not exist on this server")
    return parse(json.loads(stored.content))


def for_organization(conn: Connection, org_ref: str, payload_type: tuple[str, str] | None = None) -> list[Endpoint]:
    """The active FHIR REST Endpoints an Organization manages (optionally only those with a payloadType), in id order.

    A misconfigured one raises EndpointError (naming it) rather than being skipped: the caller records why nothing
    was sent there.
    """
    criteria = [("organization", escape(org_ref)), ("status", "active"), ("connection-type", token(*CONNECTION_TYPE))]
    criteria += [("payload-type", token(*payload_type))] if payload_type else []
    rows = search.find(conn, "Endpoint", query_string(criteria), limit=1000)
    return sorted((parse(json.loads(row.content)) for row in rows), key=lambda e: e.id)


def parse(resource: dict) -> Endpoint:
    """The Endpoint a resource describes; EndpointError says what is wrong."""
    rid = str(resource.get("id"))
    if resource.get("resourceType") != "Endpoint":
        raise EndpointError(f"{resource.get('resourceType')}/{rid} is not an Endpoint")
    if resource.get("status") != "active":
        raise EndpointError(f"Endpoint/{rid} is not active (status {resource.get('status')!r})")
    if _coding(resource.get("connectionType")) != CONNECTION_TYPE:
        raise EndpointError(f"Endpoint/{rid}.connectionType must be {CONNECTION_TYPE[0]}#{CONNECTION_TYPE[1]}")
    address = _address(resource, rid)
    endpoint = Endpoint(rid, address, ((resource.get("managingOrganization") or {}).get("reference")), _payload_types(resource),
                        _token_env(resource, rid), _smart(resource, rid), _timeout(resource, rid), _rate(resource, rid))
    if endpoint.token_env and endpoint.smart:
        raise EndpointError(f"Endpoint/{rid}: choose one of {TOKEN_EXTENSION} and {SMART_EXTENSION}")
    if endpoint.auth != "none" and not private(address):
        raise EndpointError(f"Endpoint/{rid}: credentials are only sent over https (or to this machine)")
    return endpoint


def private(url: str) -> bool:
    """https, or plain http to the loopback interface (tests, a local tunnel)."""
    parts = urlsplit(url)
    return parts.scheme == "https" or parts.hostname in ("127.0.0.1", "localhost", "::1")


# ------------------------------------------------------------------------------- clients
_clients: dict[str, tuple[Endpoint, float, FhirClient]] = {}  # by Endpoint id
_clients_lock = threading.Lock()


def client(endpoint: Endpoint, default_rps: float = DEFAULT_MAX_RPS) -> FhirClient:
    """The process's FhirClient for this Endpoint: one requests.Session (and one rate limit) per Endpoint id.

    Timeouts and rate limit are the Endpoint's (`default_rps` when it sets none); a changed Endpoint gets a new
    client. Credentials are read from the environment (or key file) when a request needs them: a missing secret
    fails that request with a CredentialError before anything is sent.
    """
    rps = endpoint.max_rps or default_rps
    with _clients_lock:
        found = _clients.get(endpoint.id)
        if found is None or found[:2] != (endpoint, rps):
            found = _clients[endpoint.id] = (endpoint, rps, _new_client(endpoint, rps))  # the old one closes when unused
        return found[2]


def _new_client(endpoint: Endpoint, rps: float) -> FhirClient:
    from . import backend_auth  # noqa: PLC0415 (backend_auth imports this module's types)

    fhir = FhirClient(endpoint.address, timeout=endpoint.timeout, min_interval=1.0 / rps)
    if endpoint.smart:
        fhir.auth = backend_auth.BackendAuth(endpoint, fhir.session)
    elif endpoint.token_env:
        fhir.auth = StaticToken(endpoint)
    return fhir


def forget_clients() -> None:
    """Close and drop every cached client (tests; a process that reloads its Endpoints)."""
    with _clients_lock:
        for _, _, fhir in _clients.values():
            fhir.close()
        _clients.clear()


class StaticToken:
    """A bearer token from the environment variable an Endpoint names (read at each request: rotation needs no restart)."""

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {secret(self.endpoint, self.endpoint.token_env or '')}"}

    def renew(self) -> bool:
        return False  # the same variable gives the same token


class CredentialError(FhirClientError):
    """A secret an Endpoint names is not available (unset variable, unreadable or unsafe key file).

    Raised by a request (before anything is sent), so callers that handle FhirClientError see it; not retryable
    until an operator sets the secret.
    """


def secret(endpoint: Endpoint, name: str) -> str:
    """The value of the IOP_SECRET_… variable an Endpoint names; CredentialError when it is not set."""
    value = os.environ.get(name)
    if not value:
        raise CredentialError(f"the environment variable {name} named by Endpoint/{endpoint.id} is not set")
    return value


# ------------------------------------------------------------------------------- parsing
def _coding(coding: object) -> tuple[str, str] | None:
    return (coding.get("system"), coding.get("code")) if isinstance(coding, dict) else None  # type: ignore[return-value]


def _payload_types(resource: dict) -> frozenset[tuple[str, str]]:
    codings = [_coding(c) for p in resource.get("payloadType") or [] if isinstance(p, dict) for c in p.get("coding") or []]
    return frozenset(c for c in codings if c and all(isinstance(v, str) for v in c))


def _address(resource: dict, rid: str) -> str:
    base = resource.get("address")
    if not isinstance(base, str) or not re.match(r"^https?://[^/?#\s]+[^?#\s]*$", base):
        raise EndpointError(f"Endpoint/{rid}.address must be the remote FHIR base URL (http or https)")
    return base.rstrip("/")


def extension(resource: dict, url: str, rid: str) -> dict | None:
    """The one extension with this url (None when absent; EndpointError when repeated)."""
    found = [e for e in resource.get("extension") or [] if isinstance(e, dict) and e.get("url") == url]
    if len(found) > 1:
        raise EndpointError(f"Endpoint/{rid} has {len(found)} extensions {url}; give it once")
    return found[0] if found else None


def _parts(ext: dict, url: str, rid: str, allowed: dict[str, str]) -> dict[str, object]:
    """The sub-extensions of a complex extension as {name: value}; each allowed once, with its value type."""
    values: dict[str, object] = {}
    for part in ext.get("extension") or []:
        name = part.get("url") if isinstance(part, dict) else None
        if name not in allowed or name in values:
            raise EndpointError(f"Endpoint/{rid}: {url} has an unknown or repeated part {name!r} (allowed: {', '.join(allowed)})")
        value = part.get(allowed[name])
        if value is None:
            raise EndpointError(f"Endpoint/{rid}: {url} part {name!r} needs a {allowed[name]}")
        values[name] = value
    return values


def _token_env(resource: dict, rid: str) -> str | None:
    ext = extension(resource, TOKEN_EXTENSION, rid)
    if ext is None:
        return None
    name = ext.get("valueString")
    if not isinstance(name, str) or not SECRET_ENV.match(name):
        raise EndpointError(f"Endpoint/{rid}: {TOKEN_EXTENSION} must name an environment variable IOP_SECRET_…")
    return name


SMART_PARTS = {"clientId": "valueString", "tokenUrl": "valueUrl", "keyEnv": "valueString", "keyFile": "valueString",
               "kid": "valueString", "alg": "valueCode", "scope": "valueString"}


def _smart(resource: dict, rid: str) -> SmartBackend | None:
    ext = extension(resource, SMART_EXTENSION, rid)
    if ext is None:
        return None
    parts = _parts(ext, SMART_EXTENSION, rid, SMART_PARTS)
    missing = [p for p in ("clientId", "kid", "alg", "scope") if not isinstance(parts.get(p), str) or not str(parts[p]).strip()]
    if missing:
        raise EndpointError(f"Endpoint/{rid}: {SMART_EXTENSION} needs {', '.join(missing)}")
    if parts["alg"] not in ALGORITHMS:
        raise EndpointError(f"Endpoint/{rid}: {SMART_EXTENSION} alg must be RS384 or ES384, not {parts['alg']!r}")
    token_url = parts.get("tokenUrl")
    if token_url is not None and not (isinstance(token_url, str) and re.match(r"^https?://[^/?#\s]+", token_url) and private(token_url)):
        raise EndpointError(f"Endpoint/{rid}: {SMART_EXTENSION} tokenUrl must be an https URL (or http to this machine)")
    return SmartBackend(str(parts["clientId"]), token_url, *_key_source(parts, rid), str(parts["kid"]), str(parts["alg"]),
                        " ".join(str(parts["scope"]).split()))


def _key_source(parts: dict[str, object], rid: str) -> tuple[str | None, str | None]:
    env, path = parts.get("keyEnv"), parts.get("keyFile")
    if (env is None) == (path is None):
        raise EndpointError(f"Endpoint/{rid}: {SMART_EXTENSION} needs exactly one of keyEnv and keyFile")
    if env is not None and not (isinstance(env, str) and SECRET_ENV.match(env)):
        raise EndpointError(f"Endpoint/{rid}: {SMART_EXTENSION} keyEnv must name an environment variable IOP_SECRET_…")
    if path is not None and not (isinstance(path, str) and path.startswith("/") and "\x00" not in path):
        raise EndpointError(f"Endpoint/{rid}: {SMART_EXTENSION} keyFile must be an absolute path")
    return env, path  # type: ignore[return-value]


def _seconds(value: object, name: str, rid: str, url: str, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= high:
        raise EndpointError(f"Endpoint/{rid}: {url} {name} must be a number of seconds above 0 and at most {high:g}")
    return float(value)


def _timeout(resource: dict, rid: str) -> tuple[float, float]:
    ext = extension(resource, TIMEOUT_EXTENSION, rid)
    if ext is None:
        return DEFAULT_TIMEOUT
    parts = _parts(ext, TIMEOUT_EXTENSION, rid, {"connect": "valueDecimal", "read": "valueDecimal"})
    connect = _seconds(parts.get("connect", DEFAULT_TIMEOUT[0]), "connect", rid, TIMEOUT_EXTENSION, MAX_TIMEOUT)
    return connect, _seconds(parts.get("read", DEFAULT_TIMEOUT[1]), "read", rid, TIMEOUT_EXTENSION, MAX_TIMEOUT)


def _rate(resource: dict, rid: str) -> float | None:
    ext = extension(resource, RATE_EXTENSION, rid)
    if ext is None:
        return None
    value = ext.get("valueDecimal")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.01 <= value <= 1000:
        raise EndpointError(f"Endpoint/{rid}: {RATE_EXTENSION} valueDecimal must be requests per second, 0.01 to 1000")
    return float(value)

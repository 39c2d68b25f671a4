"""SMART Backend Services: the token endpoint (client_credentials with a private_key_jwt assertion) and
the discovery document. https://hl7.org/fhir/smart-app-launch/backend-services.html

Access tokens are JWTs signed HS256 with a server secret (IOP_TOKEN_SECRET, else one drawn once and
stored in the database so that every worker shares it): verifying one costs a few microseconds; the
client's status is looked up on each request (service/auth.py) so a disabled client is refused at once.
Errors follow RFC 6749 §5.2 (JSON `error`, `error_description`).
"""
from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from . import access, clients, dates
from .db import get_db
from .tables import auth_jti, auth_secret

log = logging.getLogger(__name__)

bp = Blueprint("smart", __name__)

GRANT = "client_credentials"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# The algorithms SMART requires of servers; each one bound to the key type it is used with, so that a
# public key can never be taken as an HMAC secret (and "none" is never accepted).
ALGORITHMS = {"RS384": "RSA", "ES384": "EC"}
MAX_ASSERTION_LIFETIME = 300  # exp at most 5 minutes ahead (SMART: "no more than five minutes in the future")
LEEWAY = 10  # seconds of clock skew allowed on exp, nbf and iat
TOKEN_ALG = "HS256"
SECRET_NAME = "access-token-hs256"


class OAuthError(Exception):
    """An RFC 6749 §5.2 error response."""

    def __init__(self, error: str, description: str, status: int = 400):
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

    @app.errorhandler(OAuthError)
    def _oauth(err: OAuthError) -> Response:
        resp = jsonify({"error": err.error, "error_description": err.description})
        resp.status_code = err.status
        resp.headers["Cache-Control"] = "no-store"
        if err.status == 401:
            resp.headers["WWW-Authenticate"] = 'Bearer realm="iop-token"'
        return resp


def invalid_client(description: str) -> OAuthError:
    # SMART: an assertion that does not verify is answered with invalid_client (RFC 6749 §5.2: 401).
    return OAuthError("invalid_client", description, 401)


# ------------------------------------------------------------------------------- URLs
def root_url() -> str:
    """The service root: IOP_BASE_URL without its /fhir, or the request's URL root."""
    configured = current_app.config["IOP"]["BASE_URL"]
    if configured:
        return configured.removesuffix("/fhir")
    return request.host_url.rstrip("/")


def token_url() -> str:
    return root_url() + "/auth/token"


# ------------------------------------------------------------------------------- token endpoint
@bp.post("/auth/token")
def token() -> Response:
    form = request.form
    if form.get("grant_type") != GRANT:
        raise OAuthError("unsupported_grant_type", "grant_type must be client_credentials")
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise invalid_client(f"client_assertion_type must be {ASSERTION_TYPE}")
    assertion, requested = form.get("client_assertion"), form.get("scope", "")
    if not assertion:
        raise invalid_client("client_assertion is missing")
    if not requested.strip():
        raise OAuthError("invalid_scope", "scope is missing: ask for the system scopes you need")
    client, claims = verify_assertion(assertion)
    granted = grant(requested, client.scopes)
    if not granted:
        raise OAuthError("invalid_scope", f"none of the requested scopes is allowed to this client (allowed: {client.scopes})")
    remember_jti(client.client_id, claims)
    lifetime = current_app.config["IOP"]["TOKEN_LIFETIME"]
    resp = jsonify({"access_token": issue(client.client_id, granted, lifetime), "token_type": "bearer",
                    "expires_in": lifetime, "scope": granted})
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Pragma"] = "no-cache"
    return resp


def verify_assertion(assertion: str) -> tuple[clients.Client, dict]:
    """The client and the verified claims of its assertion, or invalid_client."""
    try:
        header = jwt.get_unverified_header(assertion)
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError as err:
        raise invalid_client(f"client_assertion is not a JWT ({err})") from err
    alg, kid, iss = header.get("alg"), header.get("kid"), unverified.get("iss")
    if alg not in ALGORITHMS:
        raise invalid_client(f"client_assertion alg must be one of {', '.join(ALGORITHMS)}, not {alg!r}")
    if not isinstance(kid, str) or not kid:
        raise invalid_client("client_assertion has no kid header")
    if not isinstance(iss, str) or not iss:
        raise invalid_client("client_assertion has no iss")
    client = clients.find(iss[:64])
    if client is None or not client.active:
        raise invalid_client("unknown or disabled client")
    key = _key(client, header, kid, alg)
    return client, _claims(assertion, key, alg, client.client_id)


def _key(client: clients.Client, header: dict, kid: str, alg: str):
    jku = header.get("jku")
    if jku is not None and jku != client.jwks_url:
        raise invalid_client("the jku header is not the JWKS URL registered for this client")
    try:
        jwk = clients.keys(client, kid)
    except clients.KeyError_ as err:
        raise invalid_client(str(err)) from err
    if jwk is None:
        raise invalid_client(f"no key with kid {kid!r} among the client's keys")
    if jwk.get("kty") != ALGORITHMS[alg] or jwk.get("alg", alg) != alg:
        raise invalid_client(f"key {kid!r} is not a key for {alg}")
    try:
        return jwt.PyJWK(jwk, algorithm=alg).key
    except jwt.PyJWTError as err:
        raise invalid_client(f"key {kid!r} is not a usable {alg} key") from err


def _claims(assertion: str, key, alg: str, client_id: str) -> dict:
    try:
        claims = jwt.decode(assertion, key, algorithms=[alg], audience=token_url(), issuer=client_id, leeway=LEEWAY,
                            options={"require": ["iss", "sub", "aud", "exp", "jti"]})
    except jwt.PyJWTError as err:
        raise invalid_client(f"client_assertion rejected: {err}") from err
    now = time.time()
    if claims["sub"] != client_id:
        raise invalid_client("client_assertion sub must equal iss (the client_id)")
    if claims["exp"] > now + MAX_ASSERTION_LIFETIME + LEEWAY:
        raise invalid_client("client_assertion exp is more than five minutes ahead")
    if isinstance(claims.get("iat"), int | float) and claims["iat"] > now + LEEWAY:
        raise invalid_client("client_assertion iat is in the future")
    if not isinstance(claims["jti"], str) or not 0 < len(claims["jti"]) <= 255:
        raise invalid_client("client_assertion jti must be a string of at most 255 characters")
    return claims


def remember_jti(client_id: str, claims: dict) -> None:
    """Record the assertion's jti until it expires; a jti seen before is a replay. Expired rows are pruned."""
    now = dates.utcnow()
    expires = datetime.fromtimestamp(claims["exp"] + LEEWAY, UTC).replace(tzinfo=None)
    try:
        with get_db().write() as conn:
            conn.execute(delete(auth_jti).where(auth_jti.c.expires_at < now))
            conn.execute(insert(auth_jti).values(client_id=client_id, jti=claims["jti"], expires_at=expires))
    except IntegrityError as err:
        raise invalid_client("client_assertion jti was used before (replay)") from err


# ------------------------------------------------------------------------------- scopes
def grant(requested: str, allowed: str) -> str:
    """Requested ∩ allowed, per resource type and letter (system/*.rs ∩ system/Task.cruds = system/Task.rs)."""
    letters: dict[str, set[str]] = {}
    allowed_scopes = access.parse_scopes(allowed)
    for want in access.parse_scopes(requested):
        if want.context != "system" or want.query is not None:
            continue
        for have in allowed_scopes:
            if have.rtype in ("*", want.rtype) or want.rtype == "*":
                rtype = want.rtype if have.rtype == "*" else have.rtype
                letters.setdefault(rtype, set()).update(set(want.letters) & set(have.letters))
    return " ".join(f"system/{t}.{''.join(c for c in access.LETTERS if c in ls)}" for t, ls in letters.items() if ls)


# ------------------------------------------------------------------------------- access tokens
@dataclass(frozen=True)
class TokenClaims:
    client_id: str
    scope: str


def issue(client_id: str, scope: str, lifetime: int) -> str:
    now = int(time.time())
    claims = {"sub": client_id, "scope": scope, "iat": now, "exp": now + lifetime, "jti": secrets.token_urlsafe(12)}
    return jwt.encode(claims, token_secret(), algorithm=TOKEN_ALG, headers={"typ": "at+jwt"})


def verify(token: str) -> TokenClaims | None:
    """The claims of a valid, unexpired access token of ours, else None.

    A token verified once is remembered (by its full text, with its expiry) so that a client's later
    requests cost a dictionary lookup instead of an HMAC and JSON parsing; expiry is checked every time.
    """
    secret = token_secret()
    hit = _verified.get(token)
    if hit is not None and hit[0] is secret:
        return hit[2] if time.time() < hit[1] else None
    try:
        claims = jwt.decode(token, secret, algorithms=[TOKEN_ALG], options={"require": ["sub", "exp", "scope"]})
    except jwt.PyJWTError:
        return None
    if len(_verified) >= VERIFIED_MAX:
        _verified.clear()  # crude but bounded: tokens live 5 minutes at most, so live ones are soon back
    result = TokenClaims(claims["sub"], claims["scope"])
    _verified[token] = (secret, claims["exp"], result)
    return result


VERIFIED_MAX = 10000
_verified: dict[str, tuple[bytes, float, TokenClaims]] = {}


def token_secret() -> bytes:
    """IOP_TOKEN_SECRET, else the secret stored in the database (drawn by the first worker that needs one)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    cached = app.extensions.get("iop.token_secret")
    if cached is None:
        configured = app.config["IOP"]["TOKEN_SECRET"]
        cached = configured.encode() if configured else _stored_secret()
        app.extensions["iop.token_secret"] = cached
    return cached


def _stored_secret() -> bytes:
    db = get_db()
    with db.read() as conn:
        value = conn.execute(select(auth_secret.c.value).where(auth_secret.c.name == SECRET_NAME)).scalar()
    if value is None:
        try:
            with db.write() as conn:
                conn.execute(insert(auth_secret).values(name=SECRET_NAME, value=secrets.token_urlsafe(48)))
        except IntegrityError:
            pass  # another worker drew it first: use theirs
        with db.read() as conn:
            value = conn.execute(select(auth_secret.c.value).where(auth_secret.c.name == SECRET_NAME)).scalar_one()
    return value.encode()


# ------------------------------------------------------------------------------- discovery
@bp.get("/fhir/.well-known/smart-configuration")
def smart_configuration() -> Response:
    """SMART discovery (https://hl7.org/fhir/smart-app-launch/conformance.html): JSON whatever the Accept header."""
    resp = jsonify(configuration())
    resp.headers["Cache-Control"] = "public, max-age=3600"
    return resp


def configuration() -> dict:
    return {
        "token_endpoint": token_url(),
        "grant_types_supported": [GRANT],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
        "scopes_supported": SCOPES_SUPPORTED,
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
        # required by the spec even without authorization-code launches
        "code_challenge_methods_supported": ["S256"],
    }


SCOPES_SUPPORTED = ["system/*.cruds", "system/*.rs", "system/*.read", "system/*.write", "system/Task.cruds",
                    "system/ServiceRequest.c", "system/Subscription.cruds"]

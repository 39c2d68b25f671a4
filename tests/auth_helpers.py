"""Authorization for tests: register a client, sign its assertion, get a token through the real token endpoint.

    client_id, key = make_client(auth_app, "Hospital EHR", "system/Task.cruds system/*.rs", organization="Organization/hosp")
    headers = bearer(auth_client, auth_app, client_id, key)            # all the client's scopes
    auth_client.get("/fhir/Task", headers=headers)

`auth_app` is our app with IOP_AUTH on over the same database as `app` (which it depends on, so that the
tables are emptied after each test); `auth_client` is its test client.
"""
from __future__ import annotations

import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from service import clients, create_app
from service.db import get_db


def new_key(alg: str = "ES384", kid: str | None = None) -> dict:
    """A fresh private JWK (with kid and alg) for ES384 (P-384) or RS384 (RSA 2048)."""
    private = ec.generate_private_key(ec.SECP384R1()) if alg == "ES384" else rsa.generate_private_key(65537, 2048)
    jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(private))
    return {**jwk, "kid": kid or uuid.uuid4().hex[:16], "alg": alg}


def public(jwk: dict) -> dict:
    """The public half of a private JWK."""
    return {k: v for k, v in jwk.items() if k not in clients.PRIVATE_MEMBERS}


def register(app, name: str, scopes: str, *, jwks: dict | None = None, jwks_url: str | None = None,
             organization: str | None = None, internal: bool = False) -> str:
    with app.app_context(), get_db().write() as conn:
        return clients.register(conn, {"name": name, "scope": scopes, "jwks": jwks, "jwks_url": jwks_url,
                                       "organization": organization, "internal": internal})


def make_client(app, name: str, scopes: str, organization: str | None = None, internal: bool = False,
                alg: str = "ES384") -> tuple[str, dict]:
    """Register a client with an inline JWKS of one fresh key; (client_id, its private JWK)."""
    key = new_key(alg)
    return register(app, name, scopes, jwks={"keys": [public(key)]}, organization=organization, internal=internal), key


def token_url(app) -> str:
    base = app.config["IOP"]["BASE_URL"]
    return (base.removesuffix("/fhir") if base else "http://localhost") + "/auth/token"


def assertion(client_id: str, key: dict, aud: str, **overrides) -> str:
    """A signed client assertion (SMART Backend Services); overrides replace claims (None removes one),
    and `headers` replaces header fields."""
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": aud, "exp": now + 240, "iat": now, "jti": uuid.uuid4().hex}
    headers = {"kid": key["kid"], "typ": "JWT", **overrides.pop("headers", {})}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    signing = jwt.PyJWK(key, algorithm=key["alg"]).key
    return jwt.encode(claims, signing, algorithm=key["alg"], headers=headers)


def token_form(client_assertion: str, scope: str) -> dict:
    return {"grant_type": "client_credentials", "scope": scope, "client_assertion": client_assertion,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}


def get_token(client, app, client_id: str, key: dict, scope: str | None = None):
    """POST /auth/token through the test client; the response."""
    if scope is None:
        with app.app_context():
            scope = clients.find(client_id).scopes
    return client.post("/auth/token", data=token_form(assertion(client_id, key, token_url(app)), scope))


def bearer(client, app, client_id: str, key: dict, scope: str | None = None) -> dict:
    """{"Authorization": "Bearer …"} with a token fetched through the real token endpoint."""
    resp = get_token(client, app, client_id, key, scope)
    assert resp.status_code == 200, resp.get_json()
    return {"Authorization": f"Bearer {resp.get_json()['access_token']}"}


@pytest.fixture(scope="session")
def auth_app(app, database_url: str):
    """Our app with IOP_AUTH on, over the same database as `app`."""
    secured = create_app({"DATABASE_URL": database_url, "AUTH": "on", "LOG_LEVEL": "WARNING", "MAX_BODY_BYTES": 4 * 1024 * 1024,
                          "AUTO_MIGRATE": False})
    secured.config["TESTING"] = True
    yield secured
    secured.extensions["iop.db"].dispose()


@pytest.fixture
def auth_client(auth_app):
    return auth_app.test_client()

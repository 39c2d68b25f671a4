"""SMART Backend Services, client side (service/backend_auth.py): our outbound client gets tokens from a real
token endpoint (our own service's /auth/token with authorization on, over real HTTP) and uses them; the token
cache's timing is unit-tested with `responses` and a clock."""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator

import jwt
import pytest
import responses
from auth_helpers import make_client, new_key, public, register
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select
from werkzeug.serving import make_server

from service import backend_auth, endpoints
from service.backend_auth import BackendAuth, TokenError
from service.fhirclient import FhirRequestError
from service.tables import auth_jti

SD = "https://iop.example.org/fhir/StructureDefinition"
REST = {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"}


@pytest.fixture(scope="module")
def secured_server(auth_app) -> Iterator[str]:
    """Our service with authorization on, over real HTTP: the remote FHIR server and its token endpoint."""
    server = make_server("127.0.0.1", 0, auth_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/fhir"
    server.shutdown()


@pytest.fixture(autouse=True)
def fresh_clients():
    endpoints.forget_clients()
    yield
    endpoints.forget_clients()


def pem(jwk: dict) -> str:
    key = jwt.PyJWK(jwk, algorithm=jwk["alg"]).key
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def endpoint(address: str, client_id: str, key: dict, *, token_url: str | None = None, key_file: str | None = None,
             scope: str = "system/Patient.rs system/Task.rs") -> endpoints.Endpoint:
    parts = [{"url": "clientId", "valueString": client_id}, {"url": "kid", "valueString": key["kid"]},
             {"url": "alg", "valueCode": key["alg"]}, {"url": "scope", "valueString": scope}]
    parts.append({"url": "keyFile", "valueString": key_file} if key_file else {"url": "keyEnv", "valueString": "IOP_SECRET_OUT_KEY"})
    parts += [{"url": "tokenUrl", "valueUrl": token_url}] if token_url else []
    return endpoints.parse({"resourceType": "Endpoint", "id": "ehr-smart", "status": "active", "connectionType": REST,
                            "payloadType": [{"text": "FHIR"}], "address": address,
                            "extension": [{"url": f"{SD}/endpoint-smart-backend", "extension": parts}]})


def token_requests(app, client_id: str) -> int:
    """How many token requests the server accepted for this client (each records its assertion's jti)."""
    with app.extensions["iop.db"].read() as conn:
        return conn.execute(select(func.count()).select_from(auth_jti).where(auth_jti.c.client_id == client_id)).scalar_one()


# ------------------------------------------------------------------------------- against our own token endpoint
@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_a_token_from_the_discovered_token_endpoint_opens_the_server(auth_app, secured_server, monkeypatch, alg):
    """Key in IOP_SECRET_…, token URL from .well-known/smart-configuration: the search is answered (auth is on)."""
    client_id, key = make_client(auth_app, "IOP outbound", "system/Patient.rs system/Task.rs", alg=alg)
    monkeypatch.setenv("IOP_SECRET_OUT_KEY", pem(key))
    fhir = endpoints.client(endpoint(secured_server, client_id, key))

    assert fhir.get("Patient", [("_count", "1")])["type"] == "searchset"
    assert fhir.auth.token_url() == secured_server.removesuffix("/fhir") + "/auth/token"  # type: ignore[union-attr]
    with pytest.raises(FhirRequestError) as refused:
        endpoints.client(endpoints.parse({**_plain(secured_server)})).get("Patient")
    assert refused.value.status == 401  # the same search without a token


def _plain(address: str) -> dict:
    return {"resourceType": "Endpoint", "id": "ehr-plain", "status": "active", "connectionType": REST,
            "payloadType": [{"text": "FHIR"}], "address": address}


def test_the_token_is_reused_until_it_nears_expiry(auth_app, secured_server, monkeypatch):
    """Several requests, one token request (the server saw one assertion)."""
    client_id, key = make_client(auth_app, "IOP outbound", "system/Patient.rs")
    monkeypatch.setenv("IOP_SECRET_OUT_KEY", pem(key))
    fhir = endpoints.client(endpoint(secured_server, client_id, key, scope="system/Patient.rs"))
    for _ in range(3):
        fhir.get("Patient")
    assert token_requests(auth_app, client_id) == 1


def test_a_401_gets_a_fresh_token_and_one_more_try(auth_app, secured_server, monkeypatch):
    """The server stops accepting our token (its signing secret rotated): one new token, the request succeeds."""
    client_id, key = make_client(auth_app, "IOP outbound", "system/Patient.rs")
    monkeypatch.setenv("IOP_SECRET_OUT_KEY", pem(key))
    fhir = endpoints.client(endpoint(secured_server, client_id, key, scope="system/Patient.rs"))
    fhir.get("Patient")
    monkeypatch.setitem(auth_app.extensions, "iop.token_secret", os.urandom(32))  # every token issued so far is now invalid

    assert fhir.get("Patient")["type"] == "searchset"
    assert token_requests(auth_app, client_id) == 2


def test_a_key_file_with_an_explicit_token_url(auth_app, secured_server, tmp_path):
    """Registered as an operator does (`flask clients register --jwks-file`), keyFile (mode 600, ours) and tokenUrl."""
    key = new_key("RS384")
    jwks = tmp_path / "iop-out.jwks.json"
    jwks.write_text(json.dumps({"keys": [public(key)]}))
    registered = auth_app.test_cli_runner().invoke(args=["clients", "register", "--name", "IOP outbound", "--jwks-file", str(jwks),
                                                         "--scope", "system/Patient.rs"])
    assert registered.exit_code == 0, registered.output
    client_id = registered.output.strip()
    path = tmp_path / "iop-out.pem"
    path.write_text(pem(key))
    path.chmod(0o600)
    token_url = secured_server.removesuffix("/fhir") + "/auth/token"
    fhir = endpoints.client(endpoint(secured_server, client_id, key, token_url=token_url, key_file=str(path), scope="system/Patient.rs"))
    assert fhir.get("Patient")["type"] == "searchset"


def test_a_key_file_others_may_read_is_refused(auth_app, secured_server, tmp_path):
    """As ssh does: a private key readable by other users is not used (and its content never appears in the error)."""
    client_id, key = make_client(auth_app, "IOP outbound", "system/Patient.rs")
    path = tmp_path / "loose.pem"
    path.write_text(pem(key))
    path.chmod(0o644)
    fhir = endpoints.client(endpoint(secured_server, client_id, key, key_file=str(path)))
    with pytest.raises(endpoints.CredentialError, match="chmod 600"):
        fhir.get("Patient")
    assert token_requests(auth_app, client_id) == 0


@pytest.mark.parametrize("content, message", [("not a key", "not an unencrypted PEM private key"),
                                              ("RSA", "not a key for ES384")])
def test_a_key_that_is_not_an_es384_key_is_a_clear_error(auth_app, secured_server, monkeypatch, content, message):
    """A variable holding something else (or an RSA key for ES384) fails before any token request; nothing is echoed."""
    client_id, key = make_client(auth_app, "IOP outbound", "system/Patient.rs")
    monkeypatch.setenv("IOP_SECRET_OUT_KEY", pem(new_key("RS384")) if content == "RSA" else content)
    fhir = endpoints.client(endpoint(secured_server, client_id, key))
    with pytest.raises(endpoints.CredentialError, match=message) as caught:
        fhir.get("Patient")
    assert "PRIVATE KEY" not in str(caught.value) and token_requests(auth_app, client_id) == 0


def test_a_key_the_server_does_not_know_is_refused_as_invalid_client(auth_app, secured_server, monkeypatch):
    """Signed with another key (same kid): the server answers invalid_client; TokenError carries it, not retryable."""
    client_id, key = make_client(auth_app, "IOP outbound", "system/Patient.rs")
    other = {**new_key("ES384"), "kid": key["kid"]}
    monkeypatch.setenv("IOP_SECRET_OUT_KEY", pem(other))
    with pytest.raises(TokenError) as caught:
        endpoints.client(endpoint(secured_server, client_id, key)).get("Patient")
    assert caught.value.oauth_error == "invalid_client" and caught.value.status == 401 and not caught.value.retryable


def test_a_scope_the_client_may_not_have_is_invalid_scope(auth_app, secured_server, monkeypatch):
    """Asking only for what the registration does not allow: invalid_scope from the server."""
    client_id, key = make_client(auth_app, "IOP outbound", "system/Patient.rs")
    monkeypatch.setenv("IOP_SECRET_OUT_KEY", pem(key))
    with pytest.raises(TokenError) as caught:
        endpoints.client(endpoint(secured_server, client_id, key, scope="system/Observation.rs")).get("Patient")
    assert caught.value.oauth_error == "invalid_scope"


def test_a_disabled_client_is_refused(auth_app, secured_server, monkeypatch):
    """The registration was disabled on the remote: the token request fails with invalid_client."""
    key = new_key("ES384")
    client_id = register(auth_app, "IOP outbound", "system/Patient.rs", jwks={"keys": [public(key)]})
    runner = auth_app.test_cli_runner()
    assert runner.invoke(args=["clients", "disable", client_id]).exit_code == 0
    monkeypatch.setenv("IOP_SECRET_OUT_KEY", pem(key))
    with pytest.raises(TokenError, match="invalid_client"):
        endpoints.client(endpoint(secured_server, client_id, key)).get("Patient")


# ------------------------------------------------------------------------------- the assertion and the cache (narrow)
TOKEN_URL = "https://ehr.example.org/auth/token"
BASE = "https://ehr.example.org/fhir"


class Clock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


def narrow(monkeypatch, token_url: str | None = TOKEN_URL) -> tuple[BackendAuth, Clock, dict]:
    key = new_key("ES384")
    monkeypatch.setenv("IOP_SECRET_OUT_KEY", pem(key))
    clock = Clock()
    fhir = endpoints.client(endpoint(BASE, "iop-client", key, token_url=token_url))
    return BackendAuth(fhir.auth.endpoint, fhir.session, clock=clock), clock, key  # type: ignore[union-attr]


def test_the_assertion_claims(monkeypatch):
    """iss = sub = client_id, aud = the token URL, exp at most 5 minutes ahead, a new jti each time, kid and alg headers."""
    auth, clock, key = narrow(monkeypatch)
    first, second = auth.assertion(TOKEN_URL), auth.assertion(TOKEN_URL)
    signing = jwt.PyJWK(public(key), algorithm="ES384").key
    claims = jwt.decode(first, signing, algorithms=["ES384"], audience=TOKEN_URL, options={"verify_exp": False})
    assert claims["iss"] == claims["sub"] == "iop-client" and claims["iat"] == int(clock.now)
    assert 0 < claims["exp"] - claims["iat"] <= 300
    assert jwt.get_unverified_header(first) == {"alg": "ES384", "kid": key["kid"], "typ": "JWT"}
    assert claims["jti"] != jwt.decode(second, options={"verify_signature": False})["jti"]


@responses.activate
def test_tokens_are_cached_until_30_seconds_before_expiry(monkeypatch):
    """expires_in 120: reused at 89 s, replaced at 91 s; the form is the SMART client_credentials request."""
    responses.post(TOKEN_URL, json={"access_token": "t1", "token_type": "bearer", "expires_in": 120})
    responses.post(TOKEN_URL, json={"access_token": "t2", "token_type": "Bearer", "expires_in": 120})
    auth, clock, _ = narrow(monkeypatch)
    assert auth.headers() == {"Authorization": "Bearer t1"}
    clock.now += 89
    assert auth.token() == "t1"
    clock.now += 2
    assert auth.token() == "t2"
    assert len(responses.calls) == 2
    form = dict(pair.split("=", 1) for pair in responses.calls[0].request.body.split("&"))
    assert form["grant_type"] == "client_credentials" and form["scope"] == "system%2FPatient.rs+system%2FTask.rs"
    assert form["client_assertion_type"] == "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"


@responses.activate
def test_a_short_lived_token_is_kept_half_its_life(monkeypatch):
    """expires_in 20 (under the 30 s margin): reused for 10 s, not fetched again for every request."""
    responses.post(TOKEN_URL, json={"access_token": "t1", "token_type": "bearer", "expires_in": 20})
    responses.post(TOKEN_URL, json={"access_token": "t2", "token_type": "bearer", "expires_in": 20})
    auth, clock, _ = narrow(monkeypatch)
    assert auth.token() == "t1"
    clock.now += 9
    assert auth.token() == "t1"
    clock.now += 1
    assert auth.token() == "t2"


@responses.activate
def test_the_token_url_is_discovered_once(monkeypatch):
    """No tokenUrl: .well-known/smart-configuration is read once; a token URL over plain http elsewhere is refused."""
    responses.get(f"{BASE}/.well-known/smart-configuration", json={"token_endpoint": TOKEN_URL})
    responses.post(TOKEN_URL, json={"access_token": "t", "token_type": "bearer", "expires_in": 60})
    auth, clock, _ = narrow(monkeypatch, token_url=None)
    auth.token()
    clock.now += 100
    auth.token()
    assert [c.request.method for c in responses.calls] == ["GET", "POST", "POST"]

    responses.replace(responses.GET, f"{BASE}/.well-known/smart-configuration", json={"token_endpoint": "http://evil.example.org/t"})
    fresh, _, _ = narrow(monkeypatch, token_url=None)
    with pytest.raises(TokenError, match="no usable https token_endpoint"):
        fresh.token()


@pytest.mark.parametrize("body, status, retryable", [({"error": "temporarily_unavailable"}, 503, True),
                                                     ({"access_token": "t", "token_type": "mac"}, 200, False),
                                                     ({"access_token": "t", "token_type": "bearer", "expires_in": -5}, 200, False),
                                                     ("<html>", 200, False)])
@responses.activate
def test_bad_token_answers_are_token_errors(monkeypatch, body, status, retryable):
    """A 5xx is retryable; an answer without a usable bearer token is not."""
    if isinstance(body, dict):
        responses.post(TOKEN_URL, json=body, status=status)
    else:
        responses.post(TOKEN_URL, body=body, status=status)
    auth, _, _ = narrow(monkeypatch)
    with pytest.raises(TokenError) as caught:
        auth.token()
    assert caught.value.retryable is retryable


def test_backend_auth_needs_smart_settings():
    """A plain Endpoint has nothing to sign with."""
    with pytest.raises(ValueError, match="no SMART"):
        BackendAuth(endpoints.parse(_plain(BASE)), backend_auth.requests.Session())

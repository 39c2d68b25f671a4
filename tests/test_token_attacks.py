"""Client assertions an attacker could send to the token endpoint: each one is refused with invalid_client
(SMART Backend Services, https://hl7.org/fhir/smart-app-launch/backend-services.html#signature-verification)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from auth_helpers import assertion, make_client, new_key, public, register, token_form, token_url
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SCOPES = "system/Task.cruds system/*.rs"


@pytest.fixture
def hospital(auth_app):
    client_id, key = make_client(auth_app, "Hospital", SCOPES, organization="Organization/hosp")
    return client_id, key


def refused(auth_client, signed: str, text: str | None = None) -> None:
    resp = auth_client.post("/auth/token", data=token_form(signed, SCOPES))
    body = resp.get_json()
    assert resp.status_code == 401 and body["error"] == "invalid_client", body
    assert "access_token" not in body
    if text:
        assert text in body["error_description"]


def _b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(client_id: str, aud: str, **extra) -> dict:
    now = int(time.time())
    return {"iss": client_id, "sub": client_id, "aud": aud, "exp": now + 120, "iat": now, "jti": f"j{now}{time.monotonic_ns()}", **extra}


def test_a_good_assertion_works(auth_app, auth_client, hospital):
    resp = auth_client.post("/auth/token", data=token_form(assertion(*hospital, token_url(auth_app)), SCOPES))
    assert resp.status_code == 200


def test_wrong_key(auth_app, auth_client, hospital):
    client_id, key = hospital
    impostor = {**new_key("ES384"), "kid": key["kid"]}  # same kid, another private key
    refused(auth_client, assertion(client_id, impostor, token_url(auth_app)), "ignature")


def test_alg_none(auth_app, auth_client, hospital):
    client_id, key = hospital
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': key['kid']})}.{_b64(_claims(client_id, token_url(auth_app)))}."
    refused(auth_client, unsigned, "alg")


def test_hs256_with_the_public_key_as_secret(auth_app, auth_client):
    key = new_key("RS384")
    client_id = register(auth_app, "RSA client", SCOPES, jwks={"keys": [public(key)]})
    pem = jwt.PyJWK(public(key), algorithm="RS384").key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "typ": "JWT", "kid": key["kid"]}
    signing_input = f"{_b64(header)}.{_b64(_claims(client_id, token_url(auth_app)))}"
    signature = _b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())
    refused(auth_client, f"{signing_input}.{signature}", "alg")


def test_rs384_header_on_an_ec_key(auth_app, auth_client, hospital):
    client_id, key = hospital
    rsa = {**new_key("RS384"), "kid": key["kid"]}
    refused(auth_client, assertion(client_id, rsa, token_url(auth_app)), "not a key for RS384")


def test_expired(auth_app, auth_client, hospital):
    now = int(time.time())
    refused(auth_client, assertion(*hospital, token_url(auth_app), exp=now - 60, iat=now - 120), "expired")


def test_not_yet_valid(auth_app, auth_client, hospital):
    now = int(time.time())
    refused(auth_client, assertion(*hospital, token_url(auth_app), nbf=now + 120))


def test_issued_in_the_future(auth_app, auth_client, hospital):
    now = int(time.time())
    refused(auth_client, assertion(*hospital, token_url(auth_app), iat=now + 120, exp=now + 200))


def test_replayed_jti(auth_app, auth_client, hospital):
    signed = assertion(*hospital, token_url(auth_app))
    assert auth_client.post("/auth/token", data=token_form(signed, SCOPES)).status_code == 200
    refused(auth_client, signed, "replay")
    again = assertion(*hospital, token_url(auth_app), jti=jwt.decode(signed, options={"verify_signature": False})["jti"])
    refused(auth_client, again, "replay")


def test_missing_jti(auth_app, auth_client, hospital):
    refused(auth_client, assertion(*hospital, token_url(auth_app), jti=None), "jti")


def test_wrong_audience(auth_app, auth_client, hospital):
    refused(auth_client, assertion(*hospital, "https://other.example/auth/token"), "udience")
    refused(auth_client, assertion(*hospital, "http://localhost/fhir"), "udience")


def test_wrong_issuer(auth_app, auth_client, hospital):
    client_id, key = hospital
    other_id, _ = make_client(auth_app, "Other", SCOPES)
    refused(auth_client, assertion(client_id, key, token_url(auth_app), iss=other_id))  # another client's id, our key
    refused(auth_client, assertion(client_id, key, token_url(auth_app), sub="someone-else"))


def test_exp_too_far_ahead(auth_app, auth_client, hospital):
    refused(auth_client, assertion(*hospital, token_url(auth_app), exp=int(time.time()) + 3600), "five minutes")


def test_missing_exp(auth_app, auth_client, hospital):
    refused(auth_client, assertion(*hospital, token_url(auth_app), exp=None), "exp")


def test_unknown_kid(auth_app, auth_client, hospital):
    client_id, key = hospital
    refused(auth_client, assertion(client_id, {**key, "kid": "nope"}, token_url(auth_app)), "kid")


def test_unknown_client(auth_app, auth_client):
    key = new_key()
    refused(auth_client, assertion("not-registered", key, token_url(auth_app)), "unknown")


def test_garbage_assertion(auth_client):
    refused(auth_client, "not.a.jwt")
    refused(auth_client, "x" * 5000)


def test_a_forged_access_token_is_401(auth_app, auth_client, hospital):
    client_id, _ = hospital
    now = int(time.time())
    forged = jwt.encode({"sub": client_id, "scope": SCOPES, "exp": now + 60}, "guessed-secret-guessed-secret-guessed", algorithm="HS256")
    resp = auth_client.get("/fhir/Task", headers={"Authorization": f"Bearer {forged}"})
    assert resp.status_code == 401
    unsigned = f"{_b64({'alg': 'none'})}.{_b64({'sub': client_id, 'scope': SCOPES, 'exp': now + 60})}."
    assert auth_client.get("/fhir/Task", headers={"Authorization": f"Bearer {unsigned}"}).status_code == 401

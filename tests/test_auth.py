"""SMART Backend Services: client registration, the token flow (RS384, ES384; inline JWKS and a JWKS URL),
discovery, bearer tokens on the FHIR API (401 vs 403), disabled clients, and no secrets in the logs."""
from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from auth_helpers import assertion, bearer, get_token, make_client, new_key, public, register, token_form, token_url

from helpers import assert_outcome
from service import clients
from service.db import get_db

SCOPES = "system/Task.cruds system/*.rs"


class _JwksServer:
    """A tiny HTTP server publishing a JWKS that a test can change (a client's key endpoint)."""

    def __init__(self) -> None:
        self.jwks: dict = {"keys": []}
        self.hits = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                owner.hits += 1
                body = json.dumps(owner.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def jwks_server():
    server = _JwksServer()
    yield server
    server.server.shutdown()
    server.server.server_close()
    clients._cache.clear()


# ------------------------------------------------------------------------------- token flow
@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_token_flow_with_inline_jwks(auth_app, auth_client, alg):
    client_id, key = make_client(auth_app, "Hospital", SCOPES, organization="Organization/hosp", alg=alg)
    resp = get_token(auth_client, auth_app, client_id, key, "system/Task.rs system/Patient.read openid")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 300
    assert body["scope"] == "system/Task.rs system/Patient.rs"  # requested ∩ allowed; v1 .read is v2 .rs
    assert resp.headers["Cache-Control"] == "no-store"
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert auth_client.get("/fhir/Task", headers=headers).status_code == 200


def test_token_flow_with_jwks_url(auth_app, auth_client, jwks_server):
    key = new_key("RS384")
    jwks_server.jwks = {"keys": [public(key)]}
    client_id = register(auth_app, "Remote keys", SCOPES, jwks_url=jwks_server.url)
    ok = auth_client.post("/auth/token", data=token_form(assertion(client_id, key, token_url(auth_app), headers={"jku": jwks_server.url}), SCOPES))
    assert ok.status_code == 200, ok.get_json()
    # a rotated key: an unknown kid fetches the JWKS again
    rotated = new_key("ES384")
    jwks_server.jwks = {"keys": [public(rotated)]}
    clients._cache[jwks_server.url] = (clients._cache[jwks_server.url][0] - 60, clients._cache[jwks_server.url][1])
    assert get_token(auth_client, auth_app, client_id, rotated).status_code == 200
    # a jku other than the registered URL is refused (the key set must be the registered one)
    other = auth_client.post("/auth/token", data=token_form(assertion(client_id, rotated, token_url(auth_app), headers={"jku": "https://evil.example/jwks"}), SCOPES))
    assert other.status_code == 401 and other.get_json()["error"] == "invalid_client"


def test_unreachable_jwks_url_is_invalid_client(auth_app, auth_client):
    key = new_key()
    client_id = register(auth_app, "Gone", SCOPES, jwks_url="http://127.0.0.1:9/jwks.json")
    resp = get_token(auth_client, auth_app, client_id, key)
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "invalid_client" and "JWKS URL" in resp.get_json()["error_description"]


def test_scope_not_allowed_is_invalid_scope(auth_app, auth_client):
    client_id, key = make_client(auth_app, "Narrow", "system/Task.rs")
    resp = get_token(auth_client, auth_app, client_id, key, "system/Patient.rs")
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_scope"
    resp = get_token(auth_client, auth_app, client_id, key, " ")
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_scope"


def test_wildcard_request_is_cut_to_allowed_types(auth_app, auth_client):
    client_id, key = make_client(auth_app, "Narrow", "system/Task.cruds system/ServiceRequest.c")
    resp = get_token(auth_client, auth_app, client_id, key, "system/*.cruds")
    assert resp.get_json()["scope"] == "system/Task.cruds system/ServiceRequest.c"


def test_wrong_grant_type_and_assertion_type(auth_app, auth_client):
    client_id, key = make_client(auth_app, "H", SCOPES)
    form = token_form(assertion(client_id, key, token_url(auth_app)), SCOPES)
    resp = auth_client.post("/auth/token", data={**form, "grant_type": "password"})
    assert resp.status_code == 400 and resp.get_json()["error"] == "unsupported_grant_type"
    resp = auth_client.post("/auth/token", data={**form, "client_assertion_type": "urn:other"})
    assert resp.status_code == 401 and resp.get_json()["error"] == "invalid_client"
    resp = auth_client.post("/auth/token", data={k: v for k, v in form.items() if k != "client_assertion"})
    assert resp.status_code == 401 and resp.get_json()["error"] == "invalid_client"


# ------------------------------------------------------------------------------- discovery
def test_smart_configuration_is_public_json(auth_client):
    resp = auth_client.get("/fhir/.well-known/smart-configuration", headers={"Accept": "application/fhir+xml"})
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    conf = resp.get_json()
    assert conf["token_endpoint"] == "http://localhost/auth/token"
    assert conf["grant_types_supported"] == ["client_credentials"]
    assert conf["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert conf["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert {"client-confidential-asymmetric", "permission-v2"} <= set(conf["capabilities"])
    assert conf["code_challenge_methods_supported"] == ["S256"] and "system/*.rs" in conf["scopes_supported"]


def test_capability_statement_declares_smart_security(auth_client):
    resp = auth_client.get("/fhir/metadata")
    assert resp.status_code == 200
    security = resp.get_json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    oauth = next(e for e in security["extension"] if e["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris")
    assert {"url": "token", "valueUri": "http://localhost/auth/token"} in oauth["extension"]


# ------------------------------------------------------------------------------- the FHIR API with auth on
def test_missing_token_is_401_with_challenge(auth_client):
    resp = auth_client.get("/fhir/Patient")
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="iop-fhir"'
    assert_outcome(resp, 401, "login")


@pytest.mark.parametrize("header", ["Bearer not-a-token", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "Basic dXNlcjpwYXNz"])
def test_invalid_token_is_401(auth_client, header):
    resp = auth_client.get("/fhir/Patient", headers={"Authorization": header})
    assert resp.status_code == 401
    if header.startswith("Bearer"):
        assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


def test_expired_token_is_401(auth_app, auth_client):
    client_id, key = make_client(auth_app, "H", SCOPES)
    auth_app.config["IOP"]["TOKEN_LIFETIME"] = 1
    try:
        headers = bearer(auth_client, auth_app, client_id, key)
    finally:
        auth_app.config["IOP"]["TOKEN_LIFETIME"] = 300
    import time
    time.sleep(2.1)
    resp = auth_client.get("/fhir/Patient", headers=headers)
    assert resp.status_code == 401 and 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


def test_insufficient_scope_is_403_naming_the_scope(auth_app, auth_client):
    client_id, key = make_client(auth_app, "Reader", "system/Task.rs")
    headers = bearer(auth_client, auth_app, client_id, key)
    assert auth_client.get("/fhir/Task", headers=headers).status_code == 200
    resp = auth_client.get("/fhir/Patient", headers=headers)
    assert_outcome(resp, 403, "forbidden")
    assert "system/Patient.s" in json.dumps(resp.get_json())


def test_disabled_client_is_refused_at_once(auth_app, auth_client):
    client_id, key = make_client(auth_app, "H", SCOPES)
    headers = bearer(auth_client, auth_app, client_id, key)
    before = auth_client.get("/fhir/Task", headers=headers)
    assert before.status_code == 200, before.get_json()
    runner = auth_app.test_cli_runner()
    result = runner.invoke(args=["clients", "disable", client_id])
    assert result.exit_code == 0, (result.output, result.exception)
    resp = auth_client.get("/fhir/Task", headers=headers)
    assert resp.status_code == 401 and 'error="invalid_token"' in resp.headers["WWW-Authenticate"], (resp.status_code, resp.get_json())
    again = get_token(auth_client, auth_app, client_id, key).get_json()
    assert again["error"] == "invalid_client", again


def test_purpose_of_use_header(auth_app, auth_client):
    client_id, key = make_client(auth_app, "H", SCOPES)
    headers = bearer(auth_client, auth_app, client_id, key)
    assert auth_client.get("/fhir/Task", headers={**headers, "X-Purpose-Of-Use": "CAREMGT"}).status_code == 200
    assert_outcome(auth_client.get("/fhir/Task", headers={**headers, "X-Purpose-Of-Use": "MARKETING"}), 400)


def test_metadata_is_public(auth_client):
    assert auth_client.get("/fhir/metadata").status_code == 200


# ------------------------------------------------------------------------------- operator commands
def test_clients_register_list_disable_commands(auth_app, tmp_path):
    key = new_key("RS384")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public(key)]}))
    runner = auth_app.test_cli_runner()
    result = runner.invoke(args=["clients", "register", "--name", "County Hospital", "--jwks-file", str(jwks),
                                 "--scope", "system/Task.cruds system/*.rs", "--organization", "Organization/county"])
    assert result.exit_code == 0, result.output
    client_id = result.output.strip()
    listing = runner.invoke(args=["clients", "list"]).output
    assert client_id in listing and "County Hospital" in listing and "active" in listing
    assert runner.invoke(args=["clients", "disable", client_id]).exit_code == 0
    assert "disabled" in runner.invoke(args=["clients", "list"]).output
    assert runner.invoke(args=["clients", "disable", "nobody"]).exit_code != 0


@pytest.mark.parametrize("args,message", [
    (["--scope", "system/Task.cruds"], "exactly one"),
    (["--scope", "patient/Task.r", "--jwks-url", "https://h.example/jwks"], "system scope"),
    (["--scope", "system/Task.xyz", "--jwks-url", "https://h.example/jwks"], "system scope"),
    (["--scope", "system/Task.r", "--jwks-url", "http://h.example/jwks"], "https"),
    (["--scope", "system/Task.r", "--jwks-url", "https://h.example/jwks", "--organization", "Patient/1"], "Organization"),
])
def test_register_refuses_bad_input(auth_app, args, message):
    result = auth_app.test_cli_runner().invoke(args=["clients", "register", "--name", "X", *args])
    assert result.exit_code != 0 and message in result.output


def test_register_refuses_private_keys(auth_app, tmp_path):
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [new_key()]}))
    result = auth_app.test_cli_runner().invoke(args=["clients", "register", "--name", "X", "--scope", "system/Task.r", "--jwks-file", str(jwks)])
    assert result.exit_code != 0 and "private key" in result.output
    with auth_app.app_context(), get_db().read() as conn:
        assert clients.all_clients(conn) == []


# ------------------------------------------------------------------------------- no secrets in logs
def test_no_tokens_assertions_or_keys_in_logs(auth_app, auth_client, caplog, live_auth_server):
    caplog.set_level(logging.DEBUG)
    client_id, key = make_client(auth_app, "H", SCOPES)
    signed = assertion(client_id, key, token_url(auth_app))
    token = auth_client.post("/auth/token", data=token_form(signed, SCOPES)).get_json()["access_token"]
    auth_client.get("/fhir/Task", headers={"Authorization": f"Bearer {token}"})
    auth_client.get("/fhir/Task", headers={"Authorization": "Bearer forged"})
    import requests
    requests.get(f"{live_auth_server}/Task", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    secret = auth_app.extensions["iop.token_secret"].decode()
    for text in (token, signed, key["d"], secret, "forged", token.split(".")[2]):
        assert text not in caplog.text


@pytest.fixture
def live_auth_server(auth_app):
    from werkzeug.serving import make_server
    server = make_server("127.0.0.1", 0, auth_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/fhir"
    server.shutdown()


def test_a_client_disabled_by_another_process_is_refused_within_moments(auth_app, auth_client, database_url):
    """PostgreSQL: workers cache client standing and drop it on NOTIFY; another process's disable reaches us at its commit."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite looks the client up on every request")
    import time

    from sqlalchemy import create_engine, text

    from service import standing
    client_id, key = make_client(auth_app, "H", SCOPES)
    headers = bearer(auth_client, auth_app, client_id, key)
    deadline = time.monotonic() + 5
    while standing._listening is None and time.monotonic() < deadline:  # the listener connects in the background
        auth_client.get("/fhir/Task", headers=headers)
        time.sleep(0.02)
    assert auth_client.get("/fhir/Task", headers=headers).status_code == 200
    assert client_id in standing._cache  # served from the cache now
    other = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with other.begin() as conn:  # what `flask clients disable` does, from another process's connection
            conn.execute(text("UPDATE auth_client SET status = 'disabled' WHERE client_id = :c"), {"c": client_id})
            conn.execute(text(f"NOTIFY {standing.CHANNEL}"))
    finally:
        other.dispose()
    deadline = time.monotonic() + 2
    while auth_client.get("/fhir/Task", headers=headers).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert auth_client.get("/fhir/Task", headers=headers).status_code == 401

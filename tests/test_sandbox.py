"""`flask sandbox check URL`: the referral round trip against the Medplum memory peer (and proxies of it that state
less), and against our own service over real HTTP; what the integrator sees is the table, the JSON and the exit code."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import jwt
import pytest
import requests
from auth_helpers import make_client
from cryptography.hazmat.primitives import serialization
from peer_proxy import serving, without
from werkzeug.serving import make_server

from helpers import put
from service import endpoints
from service.sandbox import RUN_SYSTEM

STEPS = ["metadata", "create referral", "poll task", "update task", "read back", "clean up"]


@pytest.fixture(autouse=True)
def fresh_clients():
    endpoints.forget_clients()
    yield
    endpoints.forget_clients()


def run(app, *args: str):
    return app.test_cli_runner().invoke(args=["sandbox", "check", *args])


def report(app, *args: str) -> tuple[int, dict]:
    result = run(app, *args, "--json")
    return result.exit_code, json.loads(result.output)


def results(body: dict) -> list[str]:
    return [s["result"] for s in body["steps"]]


def root(base: str) -> str:
    return base.rsplit("/fhir", 1)[0]


def peer_requests(peer: str) -> list[dict]:
    return [r for r in requests.get(root(peer) + "/_peer/requests", timeout=10).json() if r["url"].startswith("/fhir")]


def dump(peer: str) -> list[dict]:
    return [e["resource"] for e in requests.get(root(peer) + "/_peer/dump", timeout=10).json().get("entry", [])]


def fault(peer: str, **spec) -> None:
    requests.post(root(peer) + "/_peer/faults", json=spec, timeout=5).raise_for_status()


@pytest.fixture
def plain(peer) -> Iterator[str]:
    """The peer behind a proxy stating no transaction, batch, conditional create or update."""
    with serving(peer, without("transaction", "batch", "conditional")) as url:
        yield url


# ------------------------------------------------------------------------------- against the Medplum peer
def test_the_round_trip_passes_against_the_peer_and_leaves_nothing(app, peer):
    """Six steps PASS with timings; one transaction; everything created is deleted; exit 0."""
    result = run(app, peer)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"Sandbox check of {peer} (run ")
    for name in STEPS:
        assert any(line.startswith(name) and " PASS " in line for line in lines), (name, result.output)
    assert lines[-1] == "result: PASS (6 pass)"
    assert "one transaction" in result.output and "transaction: yes" in result.output
    assert [f"{r['method']} {r['url'].split('?')[0]}" for r in peer_requests(peer)].count("POST /fhir") == 1
    assert dump(peer) == []


def test_the_synthetic_data_is_marked(app, peer):
    """What the check sends carries meta.tag HTEST and the run identifier on each resource."""
    code, body = report(app, peer)
    assert code == 0 and body["ok"] and results(body) == ["PASS"] * 6 and all(s["ms"] > 0 for s in body["steps"])
    [posted] = [r["body"] for r in peer_requests(peer) if r["method"] == "POST"]
    for entry in posted["entry"]:
        resource = entry["resource"]
        assert {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HTEST",
                "display": "test health data"} in resource["meta"]["tag"]
        assert {"system": RUN_SYSTEM, "value": body["run"]} in resource["identifier"]


def test_without_transaction_it_sends_single_requests(app, peer, plain):
    """A server stating no transaction: the referral is created one resource at a time and the check still passes."""
    code, body = report(app, plain)
    assert code == 0 and results(body) == ["PASS"] * 6, body
    assert "transaction: no" in body["steps"][0]["detail"] and "single requests" in body["steps"][1]["detail"]
    posts = [r["url"].split("?")[0] for r in peer_requests(peer) if r["method"] == "POST"]
    assert posts == ["/fhir/Patient", "/fhir/ServiceRequest", "/fhir/Task"]
    assert dump(peer) == []


def test_a_server_without_delete_is_a_warning_naming_what_was_left(app, peer):
    """No delete: the clean-up is WARN (not a failure, exit 0) and names the resources left behind."""
    with serving(peer, without("delete"), refuse=frozenset({"DELETE"})) as url:
        code, body = report(app, url)
    assert code == 0 and results(body) == ["PASS"] * 5 + ["WARN"]
    detail = body["steps"][-1]["detail"]
    assert "delete not supported" in detail and f"{RUN_SYSTEM}|{body['run']}" in detail
    assert sorted(r["resourceType"] for r in dump(peer)) == ["Patient", "ServiceRequest", "Task"]
    assert all(ref in detail for ref in (f"{r['resourceType']}/{r['id']}" for r in dump(peer)))


def test_a_failed_update_fails_the_check_and_still_cleans_up(app, peer):
    """The Task update gets 503: update FAIL with the server's answer, read back SKIP, clean-up runs; exit 1."""
    fault(peer, status=503, count=1, match="PUT /Task")
    result = run(app, peer)
    assert result.exit_code == 1
    rows = {line.split("  ")[0]: line for line in result.output.splitlines()[2:-1]}
    assert " FAIL " in rows["update task"] and "HTTP 503" in rows["update task"] and "injected fault 503" in rows["update task"]
    assert " SKIP " in rows["read back"] and " PASS " in rows["clean up"]
    assert result.output.splitlines()[-1] == "result: FAIL (4 pass, 1 fail, 1 skip)"
    assert dump(peer) == []


def test_a_server_that_is_not_r4_fails_at_metadata(app, peer):
    """fhirVersion 5.0.0: metadata FAIL, nothing is written, the rest SKIP (clean-up: nothing created)."""
    def r5(statement: dict) -> dict:
        return {**statement, "fhirVersion": "5.0.0"}
    with serving(peer, r5) as url:
        code, body = report(app, url)
    assert code == 1 and results(body) == ["FAIL", "SKIP", "SKIP", "SKIP", "SKIP", "PASS"]
    assert "needs FHIR R4" in body["steps"][0]["detail"] and body["steps"][-1]["detail"] == "nothing was created"
    assert [r for r in peer_requests(peer) if r["method"] != "GET"] == []


def test_an_unreachable_server_fails_at_metadata(app):
    """Nothing listens there: a transport error at the first step, exit 1."""
    code, body = report(app, "http://127.0.0.1:9/fhir")
    assert code == 1 and body["steps"][0]["result"] == "FAIL" and "ConnectionError" in body["steps"][0]["detail"]


def test_a_bearer_token_is_sent(app, peer):
    """--token: every request to the server carries it."""
    assert run(app, peer, "--token", "sandbox-t0ken").exit_code == 0
    assert {r["headers"].get("authorization") for r in peer_requests(peer)} == {"Bearer sandbox-t0ken"}


def test_an_endpoint_of_ours_gives_address_and_credentials(app, client, peer, monkeypatch):
    """--endpoint ID: the Endpoint's address and its token variable are used."""
    monkeypatch.setenv("IOP_SECRET_SANDBOX_TOKEN", "from-endpoint")
    body = {"resourceType": "Endpoint", "id": "sandbox", "status": "active", "address": peer,
            "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"},
            "payloadType": [{"text": "FHIR R4 sandbox"}],
            "extension": [{"url": "https://iop.example.org/fhir/StructureDefinition/endpoint-token-env",
                           "valueString": "IOP_SECRET_SANDBOX_TOKEN"}]}
    assert put(client, "Endpoint/sandbox", body).status_code == 201
    code, report_ = report(app, "--endpoint", "sandbox")
    assert code == 0 and report_["url"] == peer
    assert {r["headers"].get("authorization") for r in peer_requests(peer)} == {"Bearer from-endpoint"}


@pytest.mark.parametrize("args, message", [([], "FHIR base URL"), (["ftp://example.org/fhir"], "FHIR base URL"),
                                           (["http://sandbox.example.org/fhir", "--token", "t"], "only sent over https"),
                                           (["http://127.0.0.1:1/fhir", "--endpoint", "x"], "give no URL"),
                                           (["--endpoint", "nope"], "Endpoint/nope does not exist")])
def test_bad_invocations_are_usage_errors(app, args, message):
    """Exit 2 with a message; nothing is contacted."""
    result = run(app, *args)
    assert result.exit_code == 2 and message in result.output


# ------------------------------------------------------------------------------- against our own service
def test_the_round_trip_passes_against_our_own_service(app, client, live_server):
    """Our service over real HTTP: transaction, Task state machine (requested → accepted), delete; nothing left."""
    code, body = report(app, live_server)
    assert code == 0 and results(body) == ["PASS"] * 6, body
    assert "one transaction" in body["steps"][1]["detail"]
    for rtype in ("Patient", "ServiceRequest", "Task"):
        found = client.get(f"/fhir/{rtype}?identifier={RUN_SYSTEM}|{body['run']}").get_json()
        assert found["total"] == 0 if "total" in found else not found.get("entry"), rtype


def test_with_smart_backend_services_against_our_own_secured_service(app, client, auth_app, monkeypatch):
    """--endpoint with SMART settings: the check gets a token from our /auth/token (discovered) and passes with
    authorization on; the same check without credentials fails at the first write."""
    server = make_server("127.0.0.1", 0, auth_app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    secured = f"http://127.0.0.1:{server.server_port}/fhir"
    try:
        client_id, key = make_client(auth_app, "Sandbox check", "system/Patient.cruds system/ServiceRequest.cruds system/Task.cruds")
        signing = jwt.PyJWK(key, algorithm=key["alg"]).key
        monkeypatch.setenv("IOP_SECRET_SANDBOX_KEY", signing.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode())
        parts = [{"url": "clientId", "valueString": client_id}, {"url": "keyEnv", "valueString": "IOP_SECRET_SANDBOX_KEY"},
                 {"url": "kid", "valueString": key["kid"]}, {"url": "alg", "valueCode": key["alg"]},
                 {"url": "scope", "valueString": "system/Patient.cruds system/ServiceRequest.cruds system/Task.cruds"}]
        body = {"resourceType": "Endpoint", "id": "ours-secured", "status": "active", "address": secured,
                "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"},
                "payloadType": [{"text": "FHIR R4"}],
                "extension": [{"url": "https://iop.example.org/fhir/StructureDefinition/endpoint-smart-backend", "extension": parts}]}
        assert put(client, "Endpoint/ours-secured", body).status_code == 201

        code, body = report(app, "--endpoint", "ours-secured")
        assert code == 0 and results(body) == ["PASS"] * 6, body

        code, body = report(app, secured)
        assert code == 1 and results(body)[:2] == ["PASS", "FAIL"] and "HTTP 401" in body["steps"][1]["detail"]
    finally:
        server.shutdown()

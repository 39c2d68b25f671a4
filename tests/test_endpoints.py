"""The endpoint registry (service/endpoints.py): Endpoint resources stored through our API, read back as settings,
and one client per Endpoint that applies its credentials, timeouts and rate limit (real HTTP to the Medplum peer)."""
from __future__ import annotations

import copy
from datetime import datetime

import pytest
import requests

from helpers import put
from service import endpoints
from service.endpoints import Endpoint, EndpointError
from service.fhirclient import DEFAULT_TIMEOUT, FhirClientError, FhirTransportError

SD = "https://iop.example.org/fhir/StructureDefinition"
REST = {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"}
FHIR_JSON = {"coding": [{"system": "http://hl7.org/fhir/resource-types", "code": "Task"}]}


def resource(rid: str = "ehr-a", address: str = "https://ehr.example.org/fhir", org: str = "Organization/hosp-org-lakeside",
             extension: list | None = None, **extra) -> dict:
    body = {"resourceType": "Endpoint", "id": rid, "status": "active", "connectionType": REST, "name": f"EHR {rid}",
            "managingOrganization": {"reference": org}, "payloadType": [FHIR_JSON], "address": address}
    if extension:
        body["extension"] = extension
    body.update(extra)
    return body


def smart(**parts) -> dict:
    values = {"clientId": ("valueString", "iop-client"), "tokenUrl": ("valueUrl", "https://ehr.example.org/auth/token"),
              "keyEnv": ("valueString", "IOP_SECRET_EHR_KEY"), "kid": ("valueString", "k1"), "alg": ("valueCode", "ES384"),
              "scope": ("valueString", "system/Task.cru  system/Patient.r")}
    values.update(parts)
    return {"url": f"{SD}/endpoint-smart-backend", "extension": [{"url": k, v[0]: v[1]} for k, v in values.items() if v is not None]}


def timeout(connect=None, read=None) -> dict:
    parts = [{"url": "connect", "valueDecimal": connect}] if connect is not None else []
    return {"url": f"{SD}/endpoint-timeout", "extension": parts + ([{"url": "read", "valueDecimal": read}] if read is not None else [])}


def rate(value) -> dict:
    return {"url": f"{SD}/endpoint-rate-limit", "valueDecimal": value}


def token(name: str = "IOP_SECRET_EHR_TOKEN") -> dict:
    return {"url": f"{SD}/endpoint-token-env", "valueString": name}


def store(client, body: dict) -> dict:
    response = put(client, f"Endpoint/{body['id']}", body)
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    return body


def load(app, rid: str) -> Endpoint:
    with app.extensions["iop.db"].read() as conn:
        return endpoints.load(conn, rid)


@pytest.fixture(autouse=True)
def fresh_clients():
    endpoints.forget_clients()
    yield
    endpoints.forget_clients()


# ------------------------------------------------------------------------------- parsing
def test_an_endpoint_with_every_setting_is_read_into_one_frozen_value():
    """Address, organization, SMART settings (scope whitespace normalised), timeouts and rate come from the resource."""
    body = resource(address="https://ehr.example.org/fhir/", extension=[smart(), timeout(2, 12.5), rate(4)])
    endpoint = endpoints.parse(body)
    assert endpoint.address == "https://ehr.example.org/fhir" and endpoint.organization == "Organization/hosp-org-lakeside"
    assert endpoint.auth == "smart-backend" and endpoint.token_env is None
    assert endpoint.smart == endpoints.SmartBackend("iop-client", "https://ehr.example.org/auth/token", "IOP_SECRET_EHR_KEY", None, "k1",
                                                    "ES384", "system/Task.cru system/Patient.r")
    assert endpoint.timeout == (2.0, 12.5) and endpoint.max_rps == 4.0
    assert ("http://hl7.org/fhir/resource-types", "Task") in endpoint.payload_types
    with pytest.raises(AttributeError):
        endpoint.address = "https://elsewhere.example.org"  # type: ignore[misc]


def test_defaults_without_extensions():
    """No auth extension: none; default (connect, read) timeouts; the caller's rate."""
    endpoint = endpoints.parse(resource())
    assert (endpoint.auth, endpoint.timeout, endpoint.max_rps) == ("none", DEFAULT_TIMEOUT, None)
    assert endpoints.parse(resource(extension=[token()])).auth == "bearer"
    assert endpoints.parse(resource(extension=[timeout(read=5)])).timeout == (DEFAULT_TIMEOUT[0], 5.0)


BAD = [
    ("not active", dict(status="off"), "not active"),
    ("no address", dict(address=None), "address"),
    ("relative address", dict(address="ehr.example.org/fhir"), "address"),
    ("other connection type", dict(connectionType={"system": REST["system"], "code": "hl7-fhir-msg"}), "connectionType"),
    ("token variable outside the prefix", dict(extension=[token("PGPASSWORD")]), "IOP_SECRET_"),
    ("token over plain http", dict(address="http://ehr.example.org/fhir", extension=[token()]), "https"),
    ("SMART over plain http", dict(address="http://ehr.example.org/fhir", extension=[smart(tokenUrl=None)]), "https"),
    ("token and SMART", dict(extension=[token(), smart()]), "choose one"),
    ("two token extensions", dict(extension=[token(), token()]), "give it once"),
    ("SMART without kid", dict(extension=[smart(kid=None)]), "kid"),
    ("SMART with HS256", dict(extension=[smart(alg=("valueCode", "HS256"))]), "RS384 or ES384"),
    ("SMART with two key sources", dict(extension=[smart(keyFile=("valueString", "/etc/iop/key.pem"))]), "exactly one"),
    ("SMART with no key source", dict(extension=[smart(keyEnv=None)]), "exactly one"),
    ("SMART key file relative", dict(extension=[smart(keyEnv=None, keyFile=("valueString", "key.pem"))]), "absolute"),
    ("SMART key variable outside the prefix", dict(extension=[smart(keyEnv=("valueString", "HOME"))]), "IOP_SECRET_"),
    ("SMART token URL over http", dict(extension=[smart(tokenUrl=("valueUrl", "http://ehr.example.org/token"))]), "tokenUrl"),
    ("SMART unknown part", dict(extension=[smart(secret=("valueString", "s3cret"))]), "unknown or repeated part 'secret'"),
    ("SMART part of the wrong type", dict(extension=[smart(kid=("valueInteger", 1))]), "needs a valueString"),
    ("negative timeout", dict(extension=[timeout(connect=-1)]), "connect"),
    ("huge timeout", dict(extension=[timeout(read=100000)]), "read"),
    ("timeout as text", dict(extension=[{"url": f"{SD}/endpoint-timeout", "extension": [{"url": "read", "valueString": "5"}]}]),
     "needs a valueDecimal"),
    ("zero rate", dict(extension=[rate(0)]), "requests per second"),
    ("rate as boolean", dict(extension=[rate(True)]), "requests per second"),
]


@pytest.mark.parametrize("change, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_configuration_is_refused_with_a_clear_message(change, message):
    """Each wrong setting raises EndpointError naming the Endpoint and what to fix."""
    body = resource()
    body.update(change)
    with pytest.raises(EndpointError, match="Endpoint/ehr-a") as caught:
        endpoints.parse({k: v for k, v in body.items() if v is not None})
    assert message in str(caught.value)


def test_credentials_may_go_over_http_to_this_machine_only():
    """Loopback http is allowed (tests, a local tunnel); the token itself never appears in the settings."""
    endpoint = endpoints.parse(resource(address="http://127.0.0.1:8080/fhir", extension=[token()]))
    assert endpoint.token_env == "IOP_SECRET_EHR_TOKEN" and "Bearer" not in repr(endpoint)


# ------------------------------------------------------------------------------- the registry on our server
def test_load_reads_the_stored_endpoint(app, client):
    """An Endpoint written through our API is loaded by id; a missing, deleted or inactive one is a clear error."""
    store(client, resource(extension=[token(), rate(2)]))
    assert load(app, "ehr-a") == endpoints.parse(resource(extension=[token(), rate(2)]))
    with pytest.raises(EndpointError, match="Endpoint/nope does not exist"):
        load(app, "nope")
    with pytest.raises(EndpointError, match="does not exist"):
        load(app, "../Patient/1")
    store(client, resource(rid="ehr-off", status="off"))
    with pytest.raises(EndpointError, match="Endpoint/ehr-off is not active"):
        load(app, "ehr-off")
    assert client.delete("/fhir/Endpoint/ehr-a").status_code in (200, 204)
    with pytest.raises(EndpointError, match="does not exist"):
        load(app, "ehr-a")


def test_for_organization_lists_its_active_fhir_endpoints(app, client):
    """Only the organization's active hl7-fhir-rest Endpoints, in id order; a payloadType narrows them."""
    store(client, resource("b-ehr"))
    store(client, resource("a-ehr", payloadType=[{"coding": [{"system": "https://x.example.org/cs", "code": "aftercare"}]}]))
    store(client, resource("c-off", status="off"))
    store(client, resource("d-other", org="Organization/someone-else"))
    store(client, resource("e-msg", connectionType={"system": REST["system"], "code": "hl7-fhir-msg"}))
    with app.extensions["iop.db"].read() as conn:
        assert [e.id for e in endpoints.for_organization(conn, "Organization/hosp-org-lakeside")] == ["a-ehr", "b-ehr"]
        assert [e.id for e in endpoints.for_organization(conn, "Organization/hosp-org-lakeside",
                                                         ("https://x.example.org/cs", "aftercare"))] == ["a-ehr"]
        assert endpoints.for_organization(conn, "Organization/nobody") == []


def test_for_organization_names_a_misconfigured_endpoint(app, client):
    """One of the organization's Endpoints is wrong: the error names it (nothing is silently skipped)."""
    store(client, resource("good"))
    store(client, resource("broken", extension=[rate(-1)]))
    with app.extensions["iop.db"].read() as conn, pytest.raises(EndpointError, match="Endpoint/broken"):
        endpoints.for_organization(conn, "Organization/hosp-org-lakeside")


# ------------------------------------------------------------------------------- clients (real HTTP to the peer)
def root(base: str) -> str:
    return base.rsplit("/fhir", 1)[0]


def peer_requests(peer: str) -> list[dict]:
    return [r for r in requests.get(root(peer) + "/_peer/requests", timeout=10).json() if r["url"].startswith("/fhir")]


def test_one_client_per_endpoint_with_its_timeouts(peer):
    """The same Endpoint gives the same client (one Session); a changed Endpoint a new one with its settings."""
    endpoint = endpoints.parse(resource(address=peer, extension=[timeout(1, 2)]))
    first = endpoints.client(endpoint)
    assert endpoints.client(copy.deepcopy(endpoint)) is first
    assert first.timeout == (1.0, 2.0) and first.session is endpoints.client(endpoint).session
    changed = endpoints.parse(resource(address=peer, extension=[timeout(1, 3)]))
    assert endpoints.client(changed) is not first and endpoints.client(changed).timeout == (1.0, 3.0)


def test_the_bearer_token_is_read_from_the_named_variable_when_sending(peer, monkeypatch):
    """The peer sees the variable's value as a bearer token; a rotated value is used without a new client."""
    monkeypatch.setenv("IOP_SECRET_EHR_TOKEN", "first-token")
    fhir = endpoints.client(endpoints.parse(resource(address=peer, extension=[token()])))
    fhir.capabilities()
    monkeypatch.setenv("IOP_SECRET_EHR_TOKEN", "second-token")
    fhir.capabilities()
    assert [r["headers"].get("authorization") for r in peer_requests(peer)] == ["Bearer first-token", "Bearer second-token"]


def test_an_unset_token_variable_fails_before_anything_is_sent(peer, monkeypatch):
    """CredentialError (a FhirClientError, not retryable) names the variable; the peer sees no request."""
    monkeypatch.delenv("IOP_SECRET_EHR_TOKEN", raising=False)
    fhir = endpoints.client(endpoints.parse(resource(address=peer, extension=[token()])))
    with pytest.raises(FhirClientError, match="IOP_SECRET_EHR_TOKEN named by Endpoint/ehr-a is not set") as caught:
        fhir.read("Patient", "1")
    assert isinstance(caught.value, endpoints.CredentialError) and not caught.value.retryable
    assert peer_requests(peer) == []


def test_the_rate_limit_spaces_requests_at_the_peer(peer):
    """endpoint-rate-limit 10/s: the peer sees requests at least 100 ms apart."""
    fhir = endpoints.client(endpoints.parse(resource(address=peer, extension=[rate(10)])))
    for _ in range(4):
        fhir.capabilities()
    times = [datetime.fromisoformat(r["t"].replace("Z", "+00:00")) for r in peer_requests(peer)]
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    assert len(gaps) == 3 and min(gaps) >= 0.095, gaps


def test_the_read_timeout_applies(peer):
    """A peer slower than the Endpoint's read timeout: FhirTransportError (retryable), no hang."""
    requests.post(root(peer) + "/_peer/faults", json={"status": 0, "delayMs": 1500, "count": 1}, timeout=5).raise_for_status()
    fhir = endpoints.client(endpoints.parse(resource(address=peer, extension=[timeout(1, 0.3)])))
    with pytest.raises(FhirTransportError, match="ReadTimeout") as caught:
        fhir.capabilities()
    assert caught.value.retryable


# ------------------------------------------------------------------------------- the profile (iop-exchange-endpoint)
def full(**changes) -> dict:
    """An Endpoint claiming iop-exchange-endpoint with SMART Backend Services, timeouts and a rate limit."""
    body = resource(extension=[smart(), timeout(2, 12.5), rate(4)], meta={"profile": [endpoints.PROFILE]})
    body.update(changes)
    return body


def test_an_endpoint_claiming_the_profile_is_valid_here_and_for_medplum(app, client, ig_validator_url):
    """Our server stores it; Medplum's validator with our guide finds no error; the registry reads what was stored."""
    assert put(client, "Endpoint/ehr-a", full()).status_code == 201
    stored = client.get("/fhir/Endpoint/ehr-a").get_json()
    issues = requests.post(f"{ig_validator_url}/validate", json=stored, timeout=30).json()["issue"]
    assert [i for i in issues if i["severity"] in ("error", "fatal")] == []
    assert load(app, "ehr-a").smart.alg == "ES384"


@pytest.mark.parametrize("extension, invariant", [
    ([token(), smart()], "iop-endpoint-1"),
    ([smart(keyFile=("valueString", "/etc/iop/key.pem"))], "iop-endpoint-2"),
    ([smart(keyEnv=("valueString", "DATABASE_PASSWORD"))], "iop-endpoint-3"),
    ([smart(alg=("valueCode", "HS256"))], "iop-endpoint-4"),
    ([timeout(read=0)], "iop-endpoint-5"),
    ([rate(5000)], "iop-endpoint-6"),
    ([smart(kid=None)], "iop-endpoint-7"),
])
def test_the_profile_refuses_what_the_registry_would(client, extension, invariant):
    """A resource claiming the profile is refused at write time (422 naming the rule), not only when used."""
    response = put(client, "Endpoint/ehr-a", full(extension=extension))
    assert response.status_code == 422, response.get_data(as_text=True)
    assert invariant in response.get_data(as_text=True)


def test_for_organization_takes_the_reference_as_one_value(app, client):
    """A reference with search syntax in it (comma, ampersand) is one value, not extra criteria."""
    store(client, resource("plain"))
    with app.extensions["iop.db"].read() as conn:
        assert endpoints.for_organization(conn, "Organization/hosp-org-lakeside&status=off") == []
        assert endpoints.for_organization(conn, "Organization/nobody,Organization/hosp-org-lakeside") == []

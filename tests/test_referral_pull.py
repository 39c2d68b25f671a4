"""Referral pull (workflow option F): poll a referring hospital's FHIR server (the Medplum memory peer) for Tasks
owned by our program and ingest each through our transaction path."""
from __future__ import annotations

import copy
import json
import uuid
from datetime import datetime

import pytest
import requests
from sqlalchemy import text

from helpers import example, put
from service import cursors, referral_pull
from service.tables import sync_cursor

OWNER_EXT = "https://iop.example.org/fhir/StructureDefinition/referral-task-owner"
TOKEN_EXT = "https://iop.example.org/fhir/StructureDefinition/endpoint-token-env"
PROGRAM_EXT = "https://iop.example.org/fhir/StructureDefinition/referral-program"
PAYLOAD = {"system": "https://iop.example.org/fhir/CodeSystem/iop-endpoint-payload", "code": "referral-source"}
OUR_PROGRAM = "Organization/iop-org-riverside"  # how the hospital's server names our program (and, here, what we call it)
DIRECTORY = ("Organization-iop-org-riverside.json", "HealthcareService-iop-hs-adult-evening.json", "Location-iop-loc-riverside-main.json",
             "Organization-hosp-org-lakeside.json")


# ------------------------------------------------------------------------------- fixtures and helpers
@pytest.fixture
def peer(peer_server, client):
    """The hospital's FHIR server, emptied (and its request log and faults cleared); our program is on our server."""
    requests.post(root(peer_server) + "/_peer/reset", timeout=10).raise_for_status()
    for name in DIRECTORY:
        body = example(name)
        assert put(client, f"{body['resourceType']}/{body['id']}", body).status_code in (200, 201), name
    return peer_server


@pytest.fixture(autouse=True)
def quick(app, monkeypatch):
    """Tests poll without the production rate limit unless they set one."""
    monkeypatch.setitem(app.config["IOP"], "PULL_MAX_RPS", 1000.0)
    monkeypatch.setitem(app.config["IOP"], "PULL_PAGE_SIZE", 50)


def root(base: str) -> str:
    return base.rsplit("/fhir", 1)[0]


def endpoint(client, peer_base: str, rid: str = "hospital-a", owner: str = OUR_PROGRAM, **extra) -> dict:
    """Configure the hospital's server as a referral source on our server (an Endpoint)."""
    body = {"resourceType": "Endpoint", "id": rid, "status": "active",
            "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"},
            "name": "Lakeside Example Hospital referrals",
            "managingOrganization": {"reference": "Organization/hosp-org-lakeside"},
            "payloadType": [{"coding": [PAYLOAD]}], "address": peer_base,
            "extension": owner_extensions(peer_base, owner)}
    body.update(extra)
    response = put(client, f"Endpoint/{rid}", body)
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    return body


def owner_extensions(peer_base: str, owner: str = OUR_PROGRAM) -> list[dict]:
    """The remote's reference to our program (what to poll for) and our own (what Task.owner becomes here)."""
    return [{"url": OWNER_EXT, "valueReference": {"reference": f"{peer_base}/{owner}"}},
            {"url": PROGRAM_EXT, "valueReference": {"reference": OUR_PROGRAM}}]


def referral(n: int, owner: str = OUR_PROGRAM) -> dict:
    """A transaction Bundle for the hospital's server: journey-01's Patient, Condition, Coverage, Consent,
    iop-referral ServiceRequest and iop-referral-task Task, with identifiers made unique by `n`."""
    source = {e["resource"]["resourceType"]: e for e in reversed(example("journey-01-referral.json")["entry"])}
    entries = [copy.deepcopy(source[t]) for t in ("Patient", "Condition", "Coverage", "Consent", "ServiceRequest", "Task")]
    urls = {e["resource"]["resourceType"]: e["fullUrl"] for e in entries}
    for e in entries:
        res = e["resource"]
        res.pop("id", None)
        for ident in res.get("identifier", []):
            ident["value"] = f"{ident['value']}-{n}"
        e["request"] = {"method": "POST", "url": res["resourceType"]}
    sr, task = entries[4]["resource"], entries[5]["resource"]
    sr["reasonReference"] = [{"reference": urls["Condition"]}]
    sr["insurance"] = [{"reference": urls["Coverage"]}]
    sr["supportingInfo"] = [{"reference": urls["Consent"], "display": "42 CFR Part 2 consent"}]
    task["input"] = [i for i in task["input"] if i["valueReference"]["reference"] == urls["Consent"]]
    task["owner"] = {"reference": owner}
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def together(*bundles: dict) -> dict:
    """Several referrals in one transaction: the hospital's server gives their Tasks the same lastUpdated."""
    entries = []
    for n, bundle in enumerate(bundles):
        body = json.dumps(bundle["entry"])
        for entry in bundle["entry"]:
            body = body.replace(entry["fullUrl"], str(uuid.uuid5(uuid.NAMESPACE_URL, f"{n}{entry['fullUrl']}")).join(["urn:uuid:", ""]))
        entries += json.loads(body)
    entries.sort(key=lambda e: e["resource"]["resourceType"] == "Task")  # the Tasks last, one after the other
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def seed_tied(peer_base: str, count: int) -> str:
    """`count` referrals whose Tasks share one lastUpdated (re-seeded in the rare case a millisecond ticks between them)."""
    for _ in range(20):
        requests.post(root(peer_base) + "/_peer/reset", timeout=10).raise_for_status()
        seed(peer_base, together(*(referral(n) for n in range(count))))
        stamps = {e["resource"]["meta"]["lastUpdated"] for e in remote(peer_base, "Task")["entry"]}
        if len(stamps) == 1:
            return stamps.pop()
    raise AssertionError("the peer never gave the Tasks one timestamp")


def seed(peer_base: str, bundle: dict) -> dict[str, str]:
    """Post a transaction to the hospital's server; the new ids by resource type."""
    response = requests.post(peer_base, json=bundle, headers={"Content-Type": "application/fhir+json"}, timeout=10)
    assert response.status_code == 200, response.text
    ids = {}
    for entry in response.json()["entry"]:
        rtype, rid = entry["response"]["location"].split("/fhir/", 1)[1].split("/")[:2]
        ids.setdefault(rtype, rid)
    return ids


def remote(peer_base: str, path: str) -> dict:
    response = requests.get(f"{peer_base}/{path}", timeout=10)
    response.raise_for_status()
    return response.json()


def ours(client, query: str) -> list[dict]:
    """Resources on our server matching a search."""
    response = client.get(f"/fhir/{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return [e["resource"] for e in response.get_json()["entry"] if e["search"]["mode"] == "match"] if "entry" in response.get_json() else []


def cursor_row(app, name: str = "referral-pull:Endpoint/hospital-a"):
    return cursors.row(app.extensions["iop.db"], name)


def counts(app) -> tuple[int, int]:
    with app.extensions["iop.db"].read() as conn:
        return (conn.execute(text("SELECT count(*) FROM resource")).scalar_one(),
                conn.execute(text("SELECT count(*) FROM resource_version")).scalar_one())


def peer_requests(peer_base: str) -> list[dict]:
    return [r for r in requests.get(root(peer_base) + "/_peer/requests", timeout=10).json() if r["url"].startswith("/fhir")]


def fault(peer_base: str, **spec) -> None:
    requests.post(root(peer_base) + "/_peer/faults", json=spec, timeout=10).raise_for_status()


def pull_once(app) -> referral_pull.PollResult:
    results = referral_pull.pull(app)
    assert len(results) == 1, results
    return results[0]


# ------------------------------------------------------------------------------- the pull
def test_pull_ingests_our_programs_referral_and_nothing_else(app, client, peer):
    """One poll stores the Patient, ServiceRequest, Task and supporting resources; another program's Task stays out."""
    endpoint(client, peer)
    mine = seed(peer, referral(1))
    theirs = seed(peer, referral(2, owner="Organization/some-other-program"))

    result = pull_once(app)

    assert (result.ingested, result.skipped, result.stopped) == (1, 0, None)
    [patient] = ours(client, "Patient?identifier=https://hospital.example.org/fhir/sid/mrn|H-100345-1")
    [sr] = ours(client, "ServiceRequest?identifier=https://hospital.example.org/fhir/sid/referral|R-2026-0601-1")
    [task] = ours(client, f"Task?identifier={peer}/Task|{mine['Task']}")
    assert task["focus"]["reference"] == f"ServiceRequest/{sr['id']}"
    assert task["for"]["reference"] == f"Patient/{patient['id']}"
    assert sr["subject"]["reference"] == f"Patient/{patient['id']}"
    assert {"system": "https://hospital.example.org/fhir/sid/referral-task", "value": "T-2026-0601-1"} in \
        [{k: i[k] for k in ("system", "value")} for i in task["identifier"]]  # the hospital's own identifier is kept
    assert task["meta"]["security"][1]["code"] == "42CFRPart2"  # Part 2 labels travel with the data
    assert task["owner"]["reference"] == OUR_PROGRAM  # the hospital's name for our program becomes ours
    assert task["requester"]["reference"] == f"{peer}/Practitioner/hosp-pract-discharge-planner"  # not imported: absolute there
    [coverage] = ours(client, "Coverage?identifier=https://payer.example.org/fhir/sid/member-id|EXC-55504321-1")
    assert sr["insurance"] == [{"reference": f"Coverage/{coverage['id']}"}]
    assert len(ours(client, "Consent?identifier=https://hospital.example.org/fhir/sid/consent|CONS-2026-0601-1")) == 1
    assert len(ours(client, "Condition?identifier=https://hospital.example.org/fhir/sid/condition|C-2026-40011-1")) == 1
    # the other program's referral is not ours to see
    assert ours(client, f"Task?identifier={peer}/Task|{theirs['Task']}") == []
    assert ours(client, "Patient?identifier=https://hospital.example.org/fhir/sid/mrn|H-100345-2") == []
    # the cursor is the hospital's lastUpdated of the newest Task handled
    row = cursor_row(app)
    assert row.value == remote(peer, f"Task/{mine['Task']}")["meta"]["lastUpdated"]
    assert row.error_count == 0 and row.last_error is None


def test_the_poll_asks_for_our_tasks_since_the_cursor_with_includes(app, client, peer):
    """The search is Gravity's: owner, _lastUpdated=gt<cursor>, sorted, with the focus and patient included."""
    endpoint(client, peer)
    seed(peer, referral(1))
    pull_once(app)
    cursor = cursor_row(app).value
    requests.delete(root(peer) + "/_peer/requests", timeout=10)

    pull_once(app)

    [search] = peer_requests(peer)
    assert search["method"] == "GET" and search["url"].startswith("/fhir/Task?")
    query = requests.utils.unquote(search["url"])
    for part in (f"owner={OUR_PROGRAM}", f"_lastUpdated=gt{cursor}", "_sort=_lastUpdated", "_include=Task:focus", "_include=Task:patient"):
        assert part in query
    assert search["headers"]["accept"] == "application/fhir+json"


def test_a_second_poll_creates_nothing(app, client, peer):
    """Re-polling the same data writes no resource and no version."""
    endpoint(client, peer)
    seed(peer, referral(1))
    assert pull_once(app).ingested == 1
    before = counts(app)

    again = pull_once(app)

    assert (again.ingested, again.skipped, again.stopped) == (0, 0, None)
    assert counts(app) == before


def test_the_same_tasks_ingested_again_change_nothing(app, client, peer):
    """Even with the cursor gone (a reset, a restored backup), ingesting the same Tasks again is a no-op."""
    endpoint(client, peer)
    seed(peer, referral(1))
    pull_once(app)
    before = counts(app)
    with app.extensions["iop.db"].write() as conn:
        conn.execute(sync_cursor.update().values(value=None))

    assert pull_once(app).ingested == 1
    assert counts(app) == before


def test_a_change_on_the_remote_after_the_cursor_is_picked_up(app, client, peer):
    """The hospital updates its Task: the next poll updates our copy (same resource, new version)."""
    endpoint(client, peer)
    ids = seed(peer, referral(1))
    pull_once(app)
    [before] = ours(client, f"Task?identifier={peer}/Task|{ids['Task']}")
    task = remote(peer, f"Task/{ids['Task']}")
    task["note"] = [{"text": "Patient prefers a morning phone call."}]
    requests.put(f"{peer}/Task/{ids['Task']}", json=task, timeout=10).raise_for_status()

    result = pull_once(app)

    assert result.ingested == 1
    [after] = ours(client, f"Task?identifier={peer}/Task|{ids['Task']}")
    assert after["id"] == before["id"] and after["meta"]["versionId"] == "2"
    assert after["note"] == [{"text": "Patient prefers a morning phone call."}]
    assert cursor_row(app).value == remote(peer, f"Task/{ids['Task']}")["meta"]["lastUpdated"]


def test_pagination_over_several_pages(app, client, peer, monkeypatch):
    """With _count=2, five referrals come over several searches and all are ingested."""
    monkeypatch.setitem(app.config["IOP"], "PULL_PAGE_SIZE", 2)
    endpoint(client, peer)
    tasks = [seed(peer, referral(n))["Task"] for n in range(5)]

    result = pull_once(app)

    assert (result.ingested, result.stopped) == (5, None)
    for rid in tasks:
        assert len(ours(client, f"Task?identifier={peer}/Task|{rid}")) == 1
    searches = [r for r in peer_requests(peer) if r["url"].startswith("/fhir/Task?")]
    assert len(searches) >= 3 and all("_count=2" in r["url"] for r in searches)
    assert cursor_row(app).value == max((remote(peer, f"Task/{rid}")["meta"]["lastUpdated"] for rid in tasks),
                                        key=lambda v: datetime.fromisoformat(v.replace("Z", "+00:00")))


def test_tasks_sharing_a_timestamp_across_pages_are_all_ingested(app, client, peer, monkeypatch):
    """Four Tasks with one lastUpdated over pages of 2: the next link is followed (a keyset step could not move on)."""
    monkeypatch.setitem(app.config["IOP"], "PULL_PAGE_SIZE", 2)
    endpoint(client, peer)
    stamp = seed_tied(peer, 4)

    result = pull_once(app)

    assert (result.ingested, result.stopped) == (4, None)
    assert len(ours(client, "Task?_count=10")) == 4
    assert cursor_row(app).value == stamp
    assert any("_offset=2" in r["url"] for r in peer_requests(peer))  # the next link, as the server wrote it


def test_a_stop_inside_a_group_of_equal_timestamps_keeps_the_cursor_before_the_group(app, client, peer, monkeypatch):
    """The cursor never lands on a timestamp some of whose Tasks are not handled yet (gt would skip them)."""
    monkeypatch.setitem(app.config["IOP"], "PULL_PAGE_SIZE", 2)
    endpoint(client, peer)
    seed_tied(peer, 4)
    fault(peer, status=503, count=1, match="_offset=2")

    failed = pull_once(app)

    assert failed.ingested == 2 and failed.stopped
    assert cursor_row(app).value is None
    again = pull_once(app)
    assert (again.ingested, again.stopped) == (4, None)  # the first two again (no-ops), then the other two
    assert len(ours(client, "Task?_count=10")) == 4


def test_a_503_leaves_the_cursor_and_the_next_poll_succeeds(app, client, peer):
    """The hospital's server is down: nothing is lost, the error is counted, and the next poll catches up."""
    endpoint(client, peer)
    first = seed(peer, referral(1))
    pull_once(app)
    cursor = cursor_row(app).value
    second = seed(peer, referral(2))
    fault(peer, status=503, count=1, match="GET /Task?", retryAfter="60")

    failed = pull_once(app)

    assert failed.ingested == 0 and "503" in failed.stopped
    row = cursor_row(app)
    assert row.value == cursor and row.error_count == 1 and "503" in row.last_error
    assert ours(client, f"Task?identifier={peer}/Task|{second['Task']}") == []

    recovered = pull_once(app)

    assert (recovered.ingested, recovered.stopped) == (1, None)
    assert len(ours(client, f"Task?identifier={peer}/Task|{second['Task']}")) == 1
    assert len(ours(client, f"Task?identifier={peer}/Task|{first['Task']}")) == 1
    assert cursor_row(app).value == remote(peer, f"Task/{second['Task']}")["meta"]["lastUpdated"]


def test_a_503_while_reading_a_supporting_resource_stops_before_that_task(app, client, peer):
    """A failure in the middle of a referral writes none of it and keeps the cursor before it."""
    endpoint(client, peer)
    ids = seed(peer, referral(1))
    fault(peer, status=503, count=1, match="GET /Coverage/")

    failed = pull_once(app)

    assert failed.ingested == 0 and failed.stopped and cursor_row(app).value is None
    assert ours(client, "Patient?identifier=https://hospital.example.org/fhir/sid/mrn|H-100345-1") == []
    assert pull_once(app).ingested == 1
    assert len(ours(client, f"Task?identifier={peer}/Task|{ids['Task']}")) == 1


def test_invalid_remote_data_is_reported_and_skipped(app, client, peer):
    """A referral our server refuses (here: no requested level of care, iop-referral's rule) is recorded and passed over."""
    endpoint(client, peer)
    bad = referral(1)
    sr = bad["entry"][4]["resource"]
    sr["extension"] = [e for e in sr["extension"] if not e["url"].endswith("/requested-level-of-care")]
    bad_ids = seed(peer, bad)
    good_ids = seed(peer, referral(2))

    result = pull_once(app)

    assert (result.ingested, result.skipped, result.stopped) == (1, 1, None)
    assert ours(client, f"Task?identifier={peer}/Task|{bad_ids['Task']}") == []
    assert ours(client, "Patient?identifier=https://hospital.example.org/fhir/sid/mrn|H-100345-1") == []  # all or nothing
    assert len(ours(client, f"Task?identifier={peer}/Task|{good_ids['Task']}")) == 1
    row = cursor_row(app)
    assert row.error_count == 1 and row.last_error.startswith(f"Task/{bad_ids['Task']} skipped: refused (422)")
    assert "iop-4" in row.last_error and f"at ServiceRequest/{bad_ids['ServiceRequest']}" in row.last_error  # the hospital's id
    assert row.value == remote(peer, f"Task/{good_ids['Task']}")["meta"]["lastUpdated"]  # not blocked by the bad one
    assert pull_once(app).skipped == 0  # skipped for good, until the hospital changes it


def test_a_task_whose_service_request_is_missing_is_skipped(app, client, peer):
    """Task.focus pointing at nothing on the remote (404) is that Task's problem, not the poll's."""
    endpoint(client, peer)
    ids = seed(peer, referral(1))
    task = remote(peer, f"Task/{ids['Task']}")
    task["focus"] = {"reference": "ServiceRequest/does-not-exist"}
    requests.put(f"{peer}/Task/{ids['Task']}", json=task, timeout=10).raise_for_status()

    result = pull_once(app)

    assert (result.ingested, result.skipped, result.stopped) == (0, 1, None)
    assert "does-not-exist" in cursor_row(app).last_error
    assert cursor_row(app).value == task_stamp(peer, ids["Task"])


def task_stamp(peer_base: str, rid: str) -> str:
    return remote(peer_base, f"Task/{rid}")["meta"]["lastUpdated"]


def test_a_task_not_owned_by_us_is_ignored_even_if_the_server_returns_it(app, client, peer):
    """A remote that ignored the owner parameter must not hand us another program's referral."""
    source = referral_pull.Source("hospital-a", peer, ("owner", OUR_PROGRAM), OUR_PROGRAM)
    task = {"resourceType": "Task", "owner": {"reference": "Organization/someone-else"}}
    assert not referral_pull._owned(task, source)
    assert referral_pull._owned({"owner": {"reference": f"{peer}/{OUR_PROGRAM}"}}, source)


def test_requests_are_spaced_by_the_configured_rate(app, client, peer, monkeypatch):
    """At most PULL_MAX_RPS requests per second: the peer sees them at least 1/rps apart."""
    monkeypatch.setitem(app.config["IOP"], "PULL_MAX_RPS", 20.0)  # 50 ms
    endpoint(client, peer)
    seed(peer, referral(1))
    requests.delete(root(peer) + "/_peer/requests", timeout=10)

    assert pull_once(app).ingested == 1

    times = [datetime.fromisoformat(r["t"].replace("Z", "+00:00")) for r in peer_requests(peer)]
    assert len(times) >= 3  # the search, then the reads the _include did not bring (Condition, Coverage, Consent)
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.05, gaps


# ------------------------------------------------------------------------------- configuration
def test_an_endpoint_that_is_not_a_referral_source_is_not_polled(app, client, peer):
    """Only active Endpoints with our payloadType are polled."""
    endpoint(client, peer, payloadType=[{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/endpoint-payload-type", "code": "any"}]}])
    endpoint(client, peer, rid="retired", status="off")
    assert referral_pull.pull(app) == []


def test_an_endpoint_without_the_owner_is_reported(app, client, peer):
    """A referral source whose owner extension is missing is reported (result and cursor row), others go on."""
    endpoint(client, peer, extension=owner_extensions(peer)[1:])
    endpoint(client, peer, rid="hospital-b")
    seed(peer, referral(1))

    results = {r.endpoint_id: r for r in referral_pull.pull(app)}

    assert OWNER_EXT in results["hospital-a"].stopped
    assert results["hospital-b"].ingested == 1
    assert OWNER_EXT in cursor_row(app).last_error


def test_the_bearer_token_comes_from_the_variable_the_endpoint_names(app, client, peer, monkeypatch):
    """The token is read from IOP_SECRET_…, sent as a bearer token, and never stored."""
    monkeypatch.setenv("IOP_SECRET_LAKESIDE_TOKEN", "t0ken-value")
    ext = owner_extensions(peer) + [{"url": TOKEN_EXT, "valueString": "IOP_SECRET_LAKESIDE_TOKEN"}]
    endpoint(client, peer, extension=ext)

    assert pull_once(app).stopped is None

    assert {r["headers"].get("authorization") for r in peer_requests(peer)} == {"Bearer t0ken-value"}
    assert "t0ken-value" not in json.dumps(ours(client, "Endpoint"))


def test_a_token_variable_outside_the_secret_prefix_is_refused(app, client, peer, monkeypatch):
    """An Endpoint cannot send an arbitrary environment variable (say, a database password) to a remote."""
    ext = owner_extensions(peer) + [{"url": TOKEN_EXT, "valueString": "PGPASSWORD"}]
    endpoint(client, peer, extension=ext)
    [result] = referral_pull.pull(app)
    assert "IOP_SECRET_" in result.stopped
    assert peer_requests(peer) == []


def test_a_token_variable_that_is_not_set_stops_that_endpoint(app, client, peer, monkeypatch):
    """A named but unset variable is reported; nothing is requested without the token."""
    monkeypatch.delenv("IOP_SECRET_NOT_THERE", raising=False)
    endpoint(client, peer, extension=owner_extensions(peer) + [{"url": TOKEN_EXT, "valueString": "IOP_SECRET_NOT_THERE"}])
    [result] = referral_pull.pull(app)
    assert "IOP_SECRET_NOT_THERE" in result.stopped and "not set" in cursor_row(app).last_error
    assert peer_requests(peer) == []


def test_a_token_is_never_sent_over_plain_http_to_another_host():
    """http:// to anything but this machine would expose the bearer token on the wire."""
    endpoint_ = {"resourceType": "Endpoint", "id": "x", "status": "active", "address": "http://hospital.example.org/fhir",
                 "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"},
                 "payloadType": [{"coding": [PAYLOAD]}],
                 "extension": owner_extensions("http://hospital.example.org/fhir") + [{"url": TOKEN_EXT, "valueString": "IOP_SECRET_X"}]}
    with pytest.raises(referral_pull.SourceError, match="https"):
        referral_pull.source_from_endpoint(endpoint_)
    endpoint_["address"] = "https://hospital.example.org/fhir"
    endpoint_["extension"] = owner_extensions("https://hospital.example.org/fhir") + endpoint_["extension"][2:]
    assert referral_pull.source_from_endpoint(endpoint_).token_env == "IOP_SECRET_X"


def test_an_owner_by_identifier_searches_with_the_identifier_modifier():
    """An owner given by identifier becomes owner:identifier=system|value, with FHIR escapes."""
    endpoint_ = {"resourceType": "Endpoint", "id": "x", "status": "active", "address": "https://h.example.org/fhir/",
                 "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"},
                 "payloadType": [{"coding": [PAYLOAD]}],
                 "extension": [{"url": OWNER_EXT, "valueReference": {"identifier": {"system": "urn:oid:2.16.840.1.1", "value": "IOP|7"}}},
                               {"url": PROGRAM_EXT, "valueReference": {"reference": "HealthcareService/iop-hs-adult-evening"}}]}
    source = referral_pull.source_from_endpoint(endpoint_)
    assert source.base == "https://h.example.org/fhir"
    assert source.owner == ("owner:identifier", "urn:oid:2.16.840.1.1|IOP\\|7")
    assert referral_pull._owned({"owner": {"identifier": {"system": "urn:oid:2.16.840.1.1", "value": "IOP|7"}}}, source)


def test_the_cli_polls_once_and_exits_non_zero_when_a_poll_stopped(app, client, peer):
    """`flask referrals pull --once` prints one line per Endpoint; exit 1 when one could not finish."""
    endpoint(client, peer)
    seed(peer, referral(1))
    runner = app.test_cli_runner()

    ok = runner.invoke(args=["referrals", "pull", "--once", "--endpoint", "hospital-a"])
    assert ok.exit_code == 0, ok.output
    assert "Endpoint/hospital-a: 1 ingested, 0 skipped" in ok.output and "complete" in ok.output

    fault(peer, status=503, count=1)
    failed = runner.invoke(args=["referrals", "pull", "--once"])
    assert failed.exit_code == 1 and "stopped" in failed.output

    unknown = runner.invoke(args=["referrals", "pull", "--once", "--endpoint", "nope"])
    assert unknown.exit_code == 1 and "not an active referral source" in unknown.output


def test_loop_mode_waits_the_poll_interval_between_polls(app, client, peer, monkeypatch):
    """Loop mode polls, then sleeps until PULL_INTERVAL seconds after that poll began."""
    monkeypatch.setitem(app.config["IOP"], "PULL_INTERVAL", 900)
    endpoint(client, peer)
    slept: list[float] = []
    referral_pull.loop(app, polls=2, sleep=slept.append, clock=lambda: 1000.0)
    assert slept == [900.0]  # the poll took no time on this clock: the whole interval is left
    assert len([r for r in peer_requests(peer) if r["url"].startswith("/fhir/Task?")]) == 2


def test_loop_mode_warns_when_polling_more_often_than_gravity_allows(app, monkeypatch, caplog):
    """An interval under 15 minutes is allowed (urgent cases) but logged as a warning."""
    monkeypatch.setitem(app.config["IOP"], "PULL_INTERVAL", 60)
    referral_pull.loop(app, polls=1, sleep=lambda _: None)
    assert any("15 minutes" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")

"""Shared fixtures: our app on a real database, a live HTTP server, and the Node test peers.

The suite runs on SQLite by default and on PostgreSQL when IOP_TEST_DATABASE_URL is set
(.ci/run does both). Every test starts from empty tables.
"""
from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from werkzeug.serving import make_server

from service import audit, create_app
from service.tables import metadata

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT.parent / "shared" / "tools"


def _peers_dir() -> Path:
    return Path(os.environ.get("FHIR_PEERS_DIR") or ROOT / ".peers")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return os.environ.get("IOP_TEST_DATABASE_URL") or f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
def app(database_url: str):
    app = create_app({"DATABASE_URL": database_url, "AUTH": "off", "LOG_LEVEL": "WARNING", "MAX_BODY_BYTES": 4 * 1024 * 1024})
    app.config["TESTING"] = True
    yield app
    app.extensions["iop.db"].dispose()


GUIDE = "SELECT pk FROM resource WHERE type IN ('StructureDefinition', 'ValueSet', 'CodeSystem', 'OperationDefinition', 'Measure', 'Questionnaire')"


@pytest.fixture(autouse=True)
def clean_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test that used the app, delete everything but the implementation guide stored at start-up."""
    yield
    if "app" not in request.fixturenames:
        return
    db = request.getfixturevalue("app").extensions["iop.db"]
    audit.flush_all()  # the test's read audits, before the tables are emptied (service/audit.py)
    with db.write() as conn:
        # DELETE, not TRUNCATE: on PostgreSQL it is 0.8 ms instead of 160 ms for small tables
        for table in reversed(metadata.sorted_tables):
            key = "pk" if table.name == "resource" else "resource_pk"
            if key not in table.c:  # outbox, sync cursors: not tied to a resource row
                conn.execute(text(f"DELETE FROM {table.name}"))
                continue
            conn.execute(text(f"DELETE FROM {table.name} WHERE {key} NOT IN ({GUIDE})"))


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def live_server(app) -> Iterator[str]:
    """Our app over real HTTP on a free loopback port; yields the FHIR base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/fhir"
    server.shutdown()


@pytest.fixture(scope="session")
def peers() -> Path:
    """The Node test peers' packages (installed by the README's test command)."""
    path = _peers_dir()
    if not (path / "node_modules" / "@medplum" / "core").is_dir():
        pytest.fail(f"FHIR test peers are not installed in {path}: run `make test` (or bash ../shared/tools/fhir-peers-setup.sh .peers)")
    return path


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=10)
    if proc.stdout:
        proc.stdout.close()


def _spawn_listening(args: list[str], peers: Path) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, FHIR_PEERS_DIR=str(peers))
    proc = subprocess.Popen(["node", *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    for _ in range(50):
        line = proc.stdout.readline() if proc.stdout else ""
        if line.startswith("LISTENING "):
            return proc, line.split()[1].strip()
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError(f"{args[0]} did not start")


@pytest.fixture(scope="session")
def validator_url(peers: Path) -> Iterator[str]:
    """medplum-validate.mjs --serve: the independent R4 validator as a loopback service."""
    proc, url = _spawn_listening([str(TOOLS / "medplum-validate.mjs"), "--modules", str(peers), "--serve", "0"], peers)
    yield url
    _stop(proc)


@pytest.fixture(scope="session")
def ig_validator_url(peers: Path) -> Iterator[str]:
    """The Medplum validator with our implementation guide loaded (--ig profiles/fsh-generated/resources)."""
    guide = ROOT / "profiles" / "fsh-generated" / "resources"
    proc, url = _spawn_listening([str(TOOLS / "medplum-validate.mjs"), "--modules", str(peers), "--ig", str(guide), "--serve", "0"], peers)
    yield url
    _stop(proc)


@pytest.fixture
def peer(peer_server: str) -> str:
    """The Medplum peer emptied for this test (a referrer's rest-hook receiver: notifications POSTed to <peer>/Bundle)."""
    import requests

    requests.post(f"{peer_server.rsplit('/fhir', 1)[0]}/_peer/reset", timeout=5).raise_for_status()
    return peer_server


@pytest.fixture(scope="session")
def peer_server(peers: Path) -> Iterator[str]:
    """medplum-memory-server.mjs: a real FHIR R4 server standing in for an external EHR."""
    proc, url = _spawn_listening([str(TOOLS / "medplum-memory-server.mjs"), "--modules", str(peers), "--port", "0", "--quiet"], peers)
    yield url
    _stop(proc)


PROGRAM_SETUP = ("Organization", "HealthcareService", "Location", "Practitioner", "PractitionerRole")


@pytest.fixture
def program(client):
    """The IOP's directory entries and staff, and the hospital's clinicians (what a referral points at)."""
    import json

    from helpers import EXAMPLES, put

    for file in sorted(EXAMPLES.glob("*.json")):
        body = json.loads(file.read_text())
        if body["resourceType"] in PROGRAM_SETUP:
            assert put(client, f"{body['resourceType']}/{body['id']}", body).status_code in (200, 201), file.name
    return client


# ------------------------------------------------------------------------------- authorization (issue 7)
# auth_app (IOP_AUTH on, same database) and auth_client: see tests/auth_helpers.py.
from auth_helpers import auth_app, auth_client  # noqa: E402, F401

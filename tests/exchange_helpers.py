"""Builders and peer shortcuts for the exchange tests (the Medplum memory peer is the partner / aftercare EHR)."""
from __future__ import annotations

from pathlib import Path

import requests
from sqlalchemy import select

from service.tables import outbox_message

SYNC = "https://iop.example.org/fhir/StructureDefinition/endpoint-sync"
TIMEOUT = "https://iop.example.org/fhir/StructureDefinition/endpoint-timeout"
RATE = "https://iop.example.org/fhir/StructureDefinition/endpoint-rate-limit"


def endpoint(address: str, *, id: str = "partner", push: list[str] = (), pull: list[str] = (), mode: str | None = None,
             organization: str | None = "Organization/partner", timeout: float | None = None, **extra) -> dict:
    """An Endpoint of ours for a remote FHIR server, with its sync configuration."""
    ext: list[dict] = [{"url": RATE, "valueDecimal": 1000}]  # the registry's default is 5 requests/s
    if timeout:
        ext.append({"url": TIMEOUT, "extension": [{"url": "read", "valueDecimal": timeout}]})
    if push:
        ext.append({"url": SYNC, "extension": [{"url": "direction", "valueCode": "push"}]
                    + [{"url": "type", "valueCode": t} for t in push] + ([{"url": "mode", "valueCode": mode}] if mode else [])})
    if pull:
        ext.append({"url": SYNC, "extension": [{"url": "direction", "valueCode": "pull"}] + [{"url": "type", "valueCode": t} for t in pull]})
    body = {"resourceType": "Endpoint", "id": id, "status": "active",
            "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"},
            "payloadType": [{"text": "FHIR R4 resources"}], "address": address}
    if organization:
        body["managingOrganization"] = {"reference": organization}
    body["extension"] = ext
    body.update(extra)
    return body


def careplan(pid: str, title: str, **extra) -> dict:
    return {"resourceType": "CarePlan", "status": "active", "intent": "plan", "title": title,
            "subject": {"reference": f"Patient/{pid}"}, **extra}


def sync_rows(app, status: str | None = None) -> list:
    stmt = select(outbox_message).where(outbox_message.c.channel == "fhir-sync").order_by(outbox_message.c.pk)
    if status:
        stmt = stmt.where(outbox_message.c.status == status)
    with app.extensions["iop.db"].read() as conn:
        return list(conn.execute(stmt))


def peer_read(peer: str, key: str) -> dict:
    response = requests.get(f"{peer}/{key}", timeout=5)
    response.raise_for_status()
    return response.json()


def peer_history(peer: str, key: str) -> list[dict]:
    """The peer's versions of a resource, oldest first."""
    bundle = requests.get(f"{peer}/{key}/_history", params={"_count": "1000"}, timeout=10).json()
    return [e["resource"] for e in reversed(bundle.get("entry") or [])]


# ------------------------------------------------------------------------------- a worker process (`flask outbox run`)
def start_worker(database_url: str, log: Path, **settings):
    """`flask --app wsgi outbox run` as its own process on the test database, with IOP_ settings."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOP_")}
    env.update({"IOP_DATABASE_URL": database_url, "IOP_AUTH": "off", "IOP_LOG_LEVEL": "WARNING", "IOP_OUTBOX_POLL_SECONDS": "0.1"})
    env.update({f"IOP_{k}": str(v) for k, v in settings.items()})
    flask = Path(sys.executable).parent / "flask"
    with open(log, "a") as err:  # a file, not a pipe: a killed worker leaves nothing to close
        return subprocess.Popen([str(flask), "--app", "wsgi", "outbox", "run"], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=err)


def stop(proc, log: Path) -> str:
    """Stop a worker politely (SIGTERM: it finishes the message in flight); what the workers wrote to stderr."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except Exception:
            proc.kill()
            proc.wait(timeout=5)
    return log.read_text() if log.exists() else ""


def wait_for(predicate, timeout: float, what: str, every: float = 0.1):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def peer_writes(peer: str, method: str = "PUT") -> list[dict]:
    """The writes the peer accepted (2xx), from its request log."""
    log = requests.get(f"{peer.rsplit('/fhir', 1)[0]}/_peer/requests", timeout=5).json()
    return [r for r in log if r["method"] == method and 200 <= r["status"] < 300]

"""What authorization costs a read: the same read of one Patient on two servers of the same build over the
same PostgreSQL database, one with IOP_AUTH=off, one with auth on and a valid bearer token (target: at most
0.3 ms per request). From the repository root:

    python bench/auth.py                  # 3 alternating rounds of 5 s per server, 4 connections
    python bench/auth.py --rounds 5 --seconds 10 --connections 8

Both servers run `gunicorn -w 2 wsgi:app` (sync workers, as bench/run.py) with one shared IOP_TOKEN_SECRET.
A client is registered in-process (service.clients.register), its ES384 assertion signed with PyJWT and a
token fetched from the auth server's /auth/token before each of its rounds (tokens live at most 300 s).
Per-request time is connections / (requests/s) (Little's law: the mean time a request holds a connection);
the overhead is its difference between the servers, and the ratio is reads/s off over reads/s on. The
in-process figure times auth.check alone (token verification, client lookup, access context) on a
request context of the same app: the cost without HTTP and scheduling noise.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
import timeit
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [p for p in (str(ROOT), str(BENCH)) if p not in sys.path]

import jwt  # noqa: E402
import load  # noqa: E402
import psycopg  # noqa: E402
import requests  # noqa: E402
import servers  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PATIENT = {"resourceType": "Patient", "id": "bench-auth-1", "name": [{"family": "Authbench", "given": ["Ada"]}], "gender": "female",
           "birthDate": "1980-01-01"}


def main() -> None:
    args = _arguments()
    dbname = f"iop_bench_auth_{os.getpid()}"
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{dbname}"
    env = {"IOP_DATABASE_URL": url, "IOP_LOG_LEVEL": "WARNING", "IOP_TOKEN_SECRET": secrets.token_urlsafe(48)}
    _admin(f"CREATE DATABASE {dbname}")
    started: list[servers.Gunicorn] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-auth-") as logs:
            off = servers.Gunicorn("wsgi:app", ROOT, {**env, "IOP_AUTH": "off"}, [], Path(logs), "/fhir/metadata")
            started.append(off)
            secured = {**env, "IOP_AUTH": "on", "IOP_AUTO_MIGRATE": "false"}
            on = servers.Gunicorn("wsgi:app", ROOT, secured, [], Path(logs), "/fhir/metadata")
            started.append(on)
            status, _ = servers.request(off.base, "PUT", f"/fhir/Patient/{PATIENT['id']}", json.dumps(PATIENT))
            assert status in (200, 201), status
            client_id, key = _register(url)
            report(measure(off, on, client_id, key, args), in_process(url, client_id, key))
    finally:
        for server in started:
            server.stop()
        _admin(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--engine", choices=["wrk", "python"])
    return parser.parse_args()


def _admin(sql: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


# ------------------------------------------------------------------------------- the client and its tokens
def _register(url: str) -> tuple[str, dict]:
    from service import clients, create_app
    from service.db import get_db

    private = ec.generate_private_key(ec.SECP384R1())
    key = {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private)), "kid": uuid.uuid4().hex[:16], "alg": "ES384"}
    public = {k: v for k, v in key.items() if k != "d"}
    app = create_app({"DATABASE_URL": url, "AUTO_MIGRATE": False, "LOG_LEVEL": "WARNING"})
    with app.app_context(), get_db().write() as conn:
        # internal (the program's staff tool): what is measured is authorization, not the outside-client privacy screen
        client_id = clients.register(conn, {"name": "bench", "scope": "system/*.rs", "jwks": {"keys": [public]}, "internal": True})
    app.extensions["iop.db"].dispose()
    return client_id, key


def token_form(aud: str, client_id: str, key: dict) -> dict:
    """The token request of a SMART backend client: a fresh ES384 assertion for `aud` (the token endpoint)."""
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": aud, "exp": now + 240, "iat": now, "jti": uuid.uuid4().hex}
    signed = jwt.encode(claims, jwt.PyJWK(key, algorithm="ES384").key, algorithm="ES384", headers={"kid": key["kid"]})
    return {"grant_type": "client_credentials", "scope": "system/Patient.rs", "client_assertion": signed,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}


def token(base: str, client_id: str, key: dict) -> str:
    resp = requests.post(f"{base}/auth/token", data=token_form(f"{base}/auth/token", client_id, key), timeout=10)
    resp.raise_for_status()
    return resp.json()["access_token"]


# ------------------------------------------------------------------------------- measuring
def measure(off: servers.Gunicorn, on: servers.Gunicorn, client_id: str, key: dict, args: argparse.Namespace) -> dict:
    path = (f"/fhir/Patient/{PATIENT['id']}",)
    figures: dict[str, list[dict]] = {"off": [], "on": []}
    for _ in range(args.rounds):  # alternating, so that drift on a shared machine hits both alike
        plain = load.Workload("read-auth-off", "GET", path)
        figures["off"].append(load.run(off.base, plain, seconds=args.seconds, connections=args.connections, warmup=1,
                                       engine_name=args.engine))
        authorized = load.Workload("read-auth-on", "GET", path, headers=(("Authorization", f"Bearer {token(on.base, client_id, key)}"),))
        figures["on"].append(load.run(on.base, authorized, seconds=args.seconds, connections=args.connections, warmup=1,
                                      engine_name=args.engine))
    return figures


def in_process(url: str, client_id: str, key: dict, number: int = 2000) -> float:
    """Microseconds per auth.check on a request context of an app with auth on (token from its own endpoint)."""
    from service import access, auth, create_app

    app = create_app({"DATABASE_URL": url, "AUTO_MIGRATE": False, "LOG_LEVEL": "WARNING", "AUTH": "on"})
    with app.test_client() as client:
        bearer = client.post("/auth/token", data=token_form("http://localhost/auth/token", client_id, key)).get_json()["access_token"]
    with app.test_request_context(f"/fhir/Patient/{PATIENT['id']}", headers={"Authorization": f"Bearer {bearer}"}) as ctx:
        auth.check(ctx.request)
        assert access.current().client_id == client_id
        seconds = min(timeit.repeat(lambda: auth.check(ctx.request), number=number, repeat=3))
    app.extensions["iop.db"].dispose()
    return seconds / number * 1e6


def report(figures: dict, check_us: float) -> None:
    def per_request_ms(runs: list[dict]) -> float:  # Little's law over all rounds
        return 1000 * sum(r["connections"] * r["seconds"] for r in runs) / sum(r["requests"] for r in runs)

    def rps(runs: list[dict]) -> float:
        return sum(r["requests"] for r in runs) / sum(r["seconds"] for r in runs)

    for mode in ("off", "on"):
        for r in figures[mode]:
            print(f"auth {mode:3}: {r['rps']:8.1f} reads/s  p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  errors {r['errors']}")
    errors = sum(r["errors"] for runs in figures.values() for r in runs)
    if errors:
        raise SystemExit(f"{errors} requests failed: the figures would not compare like with like")
    off_ms, on_ms = per_request_ms(figures["off"]), per_request_ms(figures["on"])
    overhead = on_ms - off_ms
    p50 = sum(r["p50_ms"] for r in figures["on"]) / len(figures["on"]) - sum(r["p50_ms"] for r in figures["off"]) / len(figures["off"])
    print(f"per request: {off_ms:.3f} ms without auth, {on_ms:.3f} ms with auth → overhead {overhead:.3f} ms "
          f"(p50 difference {p50:.3f} ms); reads/s ratio off/on {rps(figures['off']) / rps(figures['on']):.3f}")
    print(f"in process: auth.check {check_us:.1f} µs per request")
    print(f"target ≤ 0.3 ms per request: {'PASS' if overhead <= 0.3 else 'FAIL'} (HTTP), "
          f"{'PASS' if check_us <= 300 else 'FAIL'} (in process)")


if __name__ == "__main__":
    main()

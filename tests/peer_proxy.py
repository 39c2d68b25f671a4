"""A proxy in front of the Medplum peer that states less than the peer does: its /metadata is rewritten, some
methods can be refused with 405, everything else is passed through. A test peer (another server's behaviour),
not a mock of our code: tests/test_fhirclient.py and tests/test_sandbox.py."""
from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import requests
from werkzeug.serving import make_server

PASSED_HEADERS = {"CONTENT_TYPE": "Content-Type", "HTTP_ACCEPT": "Accept", "HTTP_IF_NONE_EXIST": "If-None-Exist",
                  "HTTP_IF_MATCH": "If-Match", "HTTP_PREFER": "Prefer", "HTTP_AUTHORIZATION": "Authorization"}
REFUSED = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-supported",
                                                          "diagnostics": "this server does not support that interaction"}]}


def without(*interactions: str) -> Callable[[dict], dict]:
    """A rewrite that removes system interactions (transaction, batch), type interactions (delete, …) and, for
    "conditional", conditional create and update."""
    def rewrite(statement: dict) -> dict:
        statement = copy.deepcopy(statement)
        rest = statement["rest"][0]
        rest["interaction"] = [i for i in rest["interaction"] if i["code"] not in interactions]
        for entry in rest["resource"]:
            entry["interaction"] = [i for i in entry["interaction"] if i["code"] not in interactions]
            if "conditional" in interactions:
                entry["conditionalCreate"] = entry["conditionalUpdate"] = False
        return statement
    return rewrite


def proxy_app(target: str, rewrite: Callable[[dict], dict], refuse: frozenset[str] = frozenset()) -> Callable:
    def app(environ, start_response):
        path, query, method = environ["PATH_INFO"], environ.get("QUERY_STRING", ""), environ["REQUEST_METHOD"]
        if path.endswith("/metadata"):
            return _reply(start_response, "200 OK", rewrite(requests.get(f"{target}/metadata", timeout=10).json()))
        if method in refuse:
            return _reply(start_response, "405 Method Not Allowed", REFUSED)
        data = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        headers = {name: environ[key] for key, name in PASSED_HEADERS.items() if environ.get(key)}
        url = target.rsplit("/fhir", 1)[0] + path + (f"?{query}" if query else "")
        answer = requests.request(method, url, data=data or None, headers=headers, timeout=10)
        start_response(f"{answer.status_code} {answer.reason}",
                       [(k, answer.headers[k]) for k in ("Content-Type", "Location", "ETag") if k in answer.headers])
        return [answer.content]
    return app


def _reply(start_response, status: str, body: dict) -> list[bytes]:
    start_response(status, [("Content-Type", "application/fhir+json")])
    return [json.dumps(body).encode()]


@contextmanager
def serving(target: str, rewrite: Callable[[dict], dict], refuse: frozenset[str] = frozenset()) -> Iterator[str]:
    """The proxy on a free loopback port; yields its FHIR base URL."""
    server = make_server("127.0.0.1", 0, proxy_app(target, rewrite, refuse), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/fhir"
    finally:
        server.shutdown()

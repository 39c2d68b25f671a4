"""The bare baseline: the least a Flask app can do to serve a stored resource from the same table.

GET /fhir/<type>/<id> runs one `SELECT content FROM resource WHERE type = %s AND id = %s` (the
table's unique key, the same lookup our read does) on a per-thread psycopg connection and returns
the stored JSON text. No validation, headers, routing rules or pooling layers: our reads/s divided
by these reads/s is the overhead of our read path. Served by gunicorn with the service's settings:

    BASELINE_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/iop_bench gunicorn -w 2 -b 127.0.0.1:8001 baseline:app
"""
from __future__ import annotations

import os
import threading

import psycopg
from flask import Flask, Response

app = Flask(__name__)
_local = threading.local()
_SQL = "SELECT content FROM resource WHERE type = %s AND id = %s AND NOT deleted"


def _conn() -> psycopg.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg.connect(os.environ["BASELINE_DATABASE_URL"], autocommit=True)
    return conn


@app.get("/fhir/<rtype>/<rid>")
def read(rtype: str, rid: str) -> Response:
    row = _conn().execute(_SQL, (rtype, rid)).fetchone()
    if row is None:
        return Response('{"resourceType":"OperationOutcome"}', 404, content_type="application/fhir+json")
    return Response(row[0], 200, content_type="application/fhir+json; charset=utf-8")

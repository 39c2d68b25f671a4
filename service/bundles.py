"""Bundles assembled as text around stored resource JSON (searchset, history, batch/transaction responses).

Stored resources are spliced in as they are, never parsed and re-dumped.
See: https://hl7.org/fhir/R4/bundle.html
"""
from __future__ import annotations

import json
import uuid

from . import dates


def _s(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def entry(full_url: str | None, resource: str | None = None, *, search_mode: str | None = None,
          request: dict | None = None, response: dict | None = None) -> str:
    """One Bundle.entry as JSON text; `resource` is already JSON text."""
    parts = []
    if full_url:
        parts.append(f'"fullUrl":{_s(full_url)}')
    if resource is not None:
        parts.append(f'"resource":{resource}')
    if search_mode:
        parts.append(f'"search":{{"mode":"{search_mode}"}}')
    if request:
        parts.append(f'"request":{_s(request)}')
    if response:
        parts.append(f'"response":{response_json(response)}')
    return "{" + ",".join(parts) + "}"


def response_json(response: dict) -> str:
    """Bundle.entry.response, where `outcome` may be JSON text already."""
    parts = [f'"{k}":{_s(v)}' for k, v in response.items() if k != "outcome" and v is not None]
    if response.get("outcome") is not None:
        outcome = response["outcome"]
        parts.append(f'"outcome":{outcome if isinstance(outcome, str) else _s(outcome)}')
    return "{" + ",".join(parts) + "}"


def bundle(type_: str, entries: list[str], *, total: int | None = None, links: list[tuple[str, str]] = ()) -> str:
    """A Bundle of `type_` holding pre-serialised entries."""
    head = [f'"resourceType":"Bundle","id":"{uuid.uuid4()}"',
            f'"meta":{{"lastUpdated":"{dates.instant(dates.utcnow())}"}}', f'"type":"{type_}"']
    if total is not None:
        head.append(f'"total":{total}')
    if links:
        head.append('"link":' + _s([{"relation": rel, "url": url} for rel, url in links]))
    if entries:
        head.append('"entry":[' + ",".join(entries) + "]")
    return "{" + ",".join(head) + "}"

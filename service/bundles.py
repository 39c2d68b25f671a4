"""Bundles assembled as text around stored resource JSON (searchset, history, batch/transaction responses).

Stored resources are spliced in as they are, never parsed and re-dumped.
See: https://hl7.org/fhir/R4/bundle.html
"""
from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from collections.abc import Sequence

from . import dates

_FULL_URL = re.compile(r'\{"fullUrl":("(?:[^"\\]|\\.)*"),?')


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


def bundle(type_: str, entries: list[str], *, total: int | None = None, links: Sequence[tuple[str, str]] = ()) -> str:
    """A Bundle of `type_` holding pre-serialised entries."""
    head = [f'"resourceType":"Bundle","id":"{uuid.uuid4()}"',
            f'"meta":{{"lastUpdated":"{dates.instant(dates.utcnow())}"}}', f'"type":"{type_}"']
    if total is not None:
        head.append(f'"total":{total}')
    if links:
        head.append('"link":' + _s([{"relation": rel, "url": url} for rel, url in links]))
    if entries:
        entries = entries if type_ == "history" else unique_full_urls(entries)  # bdl-7 exempts history (bundle.html#invs)
        head.append('"entry":[' + ",".join(entries) + "]")
    return "{" + ",".join(head) + "}"


def unique_full_urls(entries: list[str]) -> list[str]:
    """Entries where no two share fullUrl and meta.versionId (bdl-7): a repeat loses its optional fullUrl.

    A transaction may read what it also wrote, and two conditional creates may match one resource;
    the first entry in Bundle order keeps the fullUrl. Only repeated fullUrls are parsed.
    """
    matches = [_FULL_URL.match(e) for e in entries]
    repeated = {u for u, n in Counter(m.group(1) for m in matches if m).items() if n > 1}
    if not repeated:
        return entries
    seen: set[tuple[str, str | None]] = set()
    out = []
    for text, m in zip(entries, matches, strict=True):
        if m and m.group(1) in repeated:
            key = (m.group(1), _version_id(text))
            if key in seen:
                text = "{" + text[m.end():]
            seen.add(key)
        out.append(text)
    return out


def _version_id(entry_text: str) -> str | None:
    meta = (json.loads(entry_text).get("resource") or {}).get("meta") or {}
    return meta.get("versionId")

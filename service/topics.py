"""Subscription topics this server sends, and their filters evaluated in memory on a resource version.

Only the Gravity Task topic is supported (the one our referrers need for the closed loop):
create/update/delete of a Task whose current state matches `status:not=draft&intent=order` (a
delete always passes), filterable by _lastUpdated, code, owner, requester and status.
See: https://hl7.org/fhir/us/sdoh-clinicalcare/checking_task_status.html#task-topic

Filters are FHIR search criteria (https://hl7.org/fhir/R4/search.html) parsed by our search
parser, but matched here against the version that caused the event rather than with SQL: a
deleted Task is no longer in the search index, and a match must not cost a query per subscription.
The matching rules mirror service/search/query.py for the kinds a topic can filter on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from urllib.parse import parse_qsl

from . import dates, indexer
from .definitions import tables
from .errors import BadRequest, Unprocessable
from .search.params import Criterion, parse, split_bar, split_prefix, unescape

GRAVITY_TASK = "http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/Task"

# Modifiers a filter may use, per search parameter kind (chains and :missing are not supported).
_MODIFIERS: dict[str, set[str | None]] = {"token": {None, "not"}, "reference": {None, "identifier"}, "date": {None}}


@dataclass(frozen=True)
class Topic:
    """What a SubscriptionTopic defines that we act on (R5 SubscriptionTopic.resourceTrigger / canFilterBy)."""

    url: str
    resource_type: str
    interactions: frozenset[str]
    current: str  # resourceTrigger.queryCriteria.current; a delete always passes (resultForDelete = test-passes)
    filters: frozenset[str]  # canFilterBy.filterParameter
    criteria: tuple[Criterion, ...] = field(default=(), compare=False)


def _topic(url: str, rtype: str, interactions: set[str], current: str, filters: set[str]) -> Topic:
    topic = Topic(url, rtype, frozenset(interactions), current, frozenset(filters))
    criteria = _parse(topic, current, "SubscriptionTopic.resourceTrigger.queryCriteria.current", internal=True)
    return Topic(url, rtype, topic.interactions, current, topic.filters, criteria)


TOPICS: dict[str, Topic] = {}


def topics() -> dict[str, Topic]:
    """The supported topics by canonical URL (built on first use: parsing needs the R4 definitions)."""
    if not TOPICS:
        TOPICS[GRAVITY_TASK] = _topic(GRAVITY_TASK, "Task", {"create", "update", "delete"}, "status:not=draft&intent=order",
                                      {"_lastUpdated", "code", "owner", "requester", "status"})
    return TOPICS


def parse_filter(topic: Topic, text: object, where: str) -> tuple[Criterion, ...]:
    """A filter as `Task?owner=Organization/x` or `owner=Organization/x`; 422 naming `where` when it cannot be used."""
    if not isinstance(text, str) or not text.strip():
        raise Unprocessable("A filter must be a search string such as 'Task?requester=Organization/123'", expression=where)
    rtype, sep, query = text.strip().partition("?")
    if not sep and "=" in rtype:  # no resource type given: the whole text is the query
        rtype, query = topic.resource_type, text.strip()
    if rtype != topic.resource_type:
        raise Unprocessable(f"Filter '{text}' is on {rtype}; topic {topic.url} filters {topic.resource_type}",
                            expression=where, code="not-supported")
    return _parse(topic, query, where)


def _parse(topic: Topic, query: str, where: str, *, internal: bool = False) -> tuple[Criterion, ...]:
    try:
        args = parse_qsl(query, keep_blank_values=True, strict_parsing=True) if query else []
        criteria = parse(topic.resource_type, args, default_count=1, max_count=1, strict=True).criteria
    except (BadRequest, ValueError) as err:
        raise Unprocessable(f"Filter '{query}' is not valid search criteria: {err}", expression=where) from None
    if len(criteria) != len(args):
        raise Unprocessable(f"Filter '{query}' may only hold search parameters, not result controls", expression=where)
    for c in criteria:
        _check(topic, c, where, internal)
    return tuple(criteria)


def _check(topic: Topic, c: Criterion, where: str, internal: bool) -> None:
    if not internal and c.param.code not in topic.filters:
        raise Unprocessable(f"Topic {topic.url} cannot filter by '{c.param.code}'; it can filter by {', '.join(sorted(topic.filters))}",
                            expression=where, code="not-supported")
    allowed: set[str | None] = _MODIFIERS.get(c.param.type, {None})
    type_modifier = c.param.type == "reference" and c.modifier in tables().resource_types
    if c.chain or (c.modifier not in allowed and not type_modifier):
        raise Unprocessable(f"'{c.name}' is not supported in a subscription filter (no chains; modifiers: "
                            f"{', '.join(sorted(m for m in allowed if m)) or 'none'})", expression=where, code="not-supported")
    if c.param.type == "date":
        for value in c.values:
            try:
                dates.parse_range(split_prefix(value)[1])
            except dates.DateFormatError as err:
                raise Unprocessable(f"Filter '{c.name}': {err}", expression=where) from None


# ------------------------------------------------------------------------------- matching
class Facts:
    """A resource version as filters see it: its search index values, extracted once and shared by all subscriptions."""

    def __init__(self, resource: dict, last_updated: datetime):
        self.resource = resource
        self.last_updated = last_updated

    @cached_property
    def _rows(self) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        for rows in indexer.index_rows(self.resource).values():
            for row in rows:
                out.setdefault(row["name"], []).append(row)
        return out

    def rows(self, code: str) -> list[dict]:
        return self._rows.get(code, [])


def triggers(topic: Topic, interaction: str, facts: Facts, filters: tuple[Criterion, ...], base_url: str) -> bool:
    """Whether a create/update/delete with this version (the last one before a delete) is an event of the topic that passes the filters."""
    if interaction not in topic.interactions:
        return False
    if interaction != "delete" and not matches(topic.criteria, facts, base_url):
        return False
    return matches(filters, facts, base_url)


def matches(criteria: tuple[Criterion, ...], facts: Facts, base_url: str) -> bool:
    """All criteria hold (AND); within one criterion any value (OR)."""
    return all(_criterion(c, facts, base_url) for c in criteria)


def _criterion(c: Criterion, facts: Facts, base_url: str) -> bool:
    if c.param.column == "_lastUpdated":
        return any(_instant(facts.last_updated, v) for v in c.values)
    hit = any(_value(c, v, row, base_url) for v in c.values for row in facts.rows(c.param.code))
    return not hit if c.modifier == "not" else hit


def _value(c: Criterion, value: str, row: dict, base_url: str) -> bool:
    if c.param.type == "token":
        return _system_code(row["system"], row["code"], split_bar(value))
    if c.param.type == "reference":
        return _reference(c.modifier, value, row, base_url)
    return False  # no other kind passes _check


def _system_code(system: str | None, code: str | None, parts: list[str]) -> bool:
    """code, system|code, |code (no system) or system| (any code): https://hl7.org/fhir/R4/search.html#token"""
    if len(parts) == 1:
        return code == parts[0]
    want_system, want_code = parts[0], "|".join(parts[1:])
    if want_system == "":
        return system is None and code == want_code
    return system == want_system and (want_code == "" or code == want_code)


def _reference(modifier: str | None, value: str, row: dict, base_url: str) -> bool:
    if modifier == "identifier":
        return _system_code(row["ident_system"], row["ident_value"], split_bar(value))
    value = unescape(value)
    local = value[len(base_url) + 1:] if base_url and value.startswith(base_url + "/") else value
    parts = local.split("|")[0].split("/")
    if "_history" in parts:
        parts = parts[:parts.index("_history")]
    type_filter = modifier if modifier in tables().resource_types else None
    if len(parts) == 2 and parts[0] in tables().all_resource_types:
        return (not type_filter or type_filter == parts[0]) and _local(row, parts[0], parts[1], base_url)
    if len(parts) == 1 and ":" not in local:
        if type_filter:
            return _local(row, type_filter, local, base_url)
        url = row["url"] or ""
        return row["target_id"] == local or bool(base_url) and url.startswith(base_url + "/") and url.endswith("/" + local)
    return row["url"] == "/".join(parts)


def _local(row: dict, rtype: str, rid: str, base_url: str) -> bool:
    """rtype/rid on this server, referenced relatively or by its absolute URL on our base."""
    return (row["target_type"] == rtype and row["target_id"] == rid) or bool(base_url) and row["url"] == f"{base_url}/{rtype}/{rid}"


def _instant(at: datetime, value: str) -> bool:
    """A _lastUpdated criterion on one instant, as search/query.py _point_condition."""
    prefix, text = split_prefix(value)
    low, high = dates.parse_range(text)
    if prefix == "ap":
        slack = _slack(low)
        return low - slack <= at < high + slack
    return {"eq": low <= at < high, "ne": not low <= at < high, "gt": at >= high, "lt": at < low, "ge": at >= low,
            "le": at < high, "sa": at >= high, "eb": at < low}[prefix]


def _slack(low: datetime) -> timedelta:
    return max(timedelta(days=1), abs(dates.utcnow() - low) / 10)

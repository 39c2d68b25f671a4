"""Parse FHIR search parameters into a SearchRequest: criteria, modifiers, chains and result controls.

See: https://hl7.org/fhir/R4/search.html. Unknown parameters are collected (reported under
`Prefer: handling=lenient`, rejected under `handling=strict`); an unknown or unsupported modifier
is always an error, as the spec requires.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..definitions import SearchParam, tables
from ..errors import BadRequest

CONTROL = {"_count", "_sort", "_total", "_summary", "_elements", "_include", "_revinclude", "_format", "_pretty",
           "_cursor", "_contained", "_containedType"}
MODIFIERS = {
    "string": {"exact", "contains", "missing"},
    "token": {"text", "not", "missing", "of-type"},
    "reference": {"missing", "identifier"},
    "date": {"missing"}, "number": {"missing"}, "quantity": {"missing"},
    "uri": {"below", "above", "missing"},
}
_PREFIX_RE = re.compile(r"^(eq|ne|gt|lt|ge|le|sa|eb|ap)(?=[-\d])")


@dataclass(frozen=True)
class Chain:
    """One hop of a chained search: follow `param` (a reference) to resources of `target`."""

    param: SearchParam
    targets: tuple[str, ...]


@dataclass
class Criterion:
    """One search parameter occurrence: its values are OR'd; criteria are AND'd."""

    name: str
    param: SearchParam
    modifier: str | None
    values: list[str]
    chain: list[Chain] = field(default_factory=list)
    resource_type: str = ""


@dataclass(frozen=True)
class Include:
    """An _include / _revinclude directive: source type, reference parameter, optional target type."""

    source: str
    param: str
    target: str | None
    iterate: bool


@dataclass
class SearchRequest:
    """Everything a search asks for."""

    type: str
    criteria: list[Criterion] = field(default_factory=list)
    count: int = 20
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (param code, descending)
    total: str = "accurate"
    summary: str | None = None
    elements: list[str] | None = None
    includes: list[Include] = field(default_factory=list)
    revincludes: list[Include] = field(default_factory=list)
    cursor: str | None = None
    ignored: list[str] = field(default_factory=list)
    echo: list[tuple[str, str]] = field(default_factory=list)  # understood parameters, for links


def split_values(raw: str) -> list[str]:
    """Split a parameter value on unescaped commas (an OR list) and unescape \\, \\| \\$ \\\\."""
    parts, cur, i = [], "", 0
    while i < len(raw):
        if raw[i] == "\\" and i + 1 < len(raw):
            cur += raw[i:i + 2]
            i += 2
            continue
        if raw[i] == ",":
            parts.append(cur)
            cur = ""
        else:
            cur += raw[i]
        i += 1
    parts.append(cur)
    return [p for p in parts if p != ""]


def split_bar(value: str) -> list[str]:
    """Split a token/quantity value on unescaped '|' and unescape each part."""
    parts = re.split(r"(?<!\\)\|", value)
    return [unescape(p) for p in parts]


def unescape(value: str) -> str:
    return re.sub(r"\\([,|$\\])", r"\1", value)


def split_prefix(value: str) -> tuple[str, str]:
    """("ge", "2020-01-01") for "ge2020-01-01"; eq when no prefix is given."""
    m = _PREFIX_RE.match(value)
    return (m.group(1), value[2:]) if m else ("eq", value)


def parse(rtype: str, args: list[tuple[str, str]], *, default_count: int, max_count: int, strict: bool) -> SearchRequest:
    """A SearchRequest for `rtype` from query/form parameters (name, value) in request order."""
    req = SearchRequest(type=rtype, count=default_count)
    for name, raw in args:
        if "\x00" in name or "\x00" in raw:  # no database stores or compares a NUL character
            raise BadRequest("Search parameters cannot contain NUL characters", expression=name.replace("\x00", ""))
        if name.split(":")[0] in CONTROL:
            _control(req, name, raw, max_count)
            req.echo.append((name, raw))
            continue
        criterion = _criterion(rtype, name, raw, strict)
        if criterion is None:
            req.ignored.append(name)
            continue
        req.criteria.append(criterion)
        req.echo.append((name, raw))
    return req


def _criterion(rtype: str, name: str, raw: str, strict: bool) -> Criterion | None:
    head, dot, rest = name.partition(".")
    code, _, modifier = head.partition(":")
    param = tables().search_params.get(rtype, {}).get(code)
    if param is None:
        if strict:
            raise BadRequest(f"Unknown search parameter '{code}' for {rtype}", expression=code)
        return None
    if dot:
        return _chained(rtype, param, modifier or None, rest, name, raw, strict)
    _check_modifier(param, modifier or None, rtype, name)
    values = split_values(raw)
    if not values:
        raise BadRequest(f"Search parameter '{name}' has no value", expression=name)
    if modifier == "missing" and any(v not in ("true", "false") for v in values):
        raise BadRequest(f"':missing' takes true or false, not '{raw}'", expression=name)
    return Criterion(name, param, modifier or None, values, resource_type=rtype)


def _check_modifier(param: SearchParam, modifier: str | None, rtype: str, name: str) -> None:
    if modifier is None:
        return
    if param.type == "reference" and modifier in tables().resource_types:
        return
    if modifier not in MODIFIERS.get(param.type, set()) or (modifier == "of-type" and param.code != "identifier"):
        raise BadRequest(f"Modifier ':{modifier}' is not supported on {param.type} parameter '{param.code}'", expression=name)


def _chained(rtype: str, param: SearchParam, type_modifier: str | None, rest: str, name: str, raw: str,
             strict: bool) -> Criterion | None:
    if param.type != "reference":
        raise BadRequest(f"'{param.code}' is not a reference parameter and cannot be chained", expression=name)
    targets = (type_modifier,) if type_modifier else param.target
    if type_modifier and type_modifier not in tables().resource_types:
        raise BadRequest(f"Unknown resource type '{type_modifier}' in chain '{name}'", expression=name)
    inner_code = rest.split(".", 1)[0].split(":", 1)[0]
    usable = tuple(t for t in targets if inner_code in tables().search_params.get(t, {}))
    if not usable:
        if strict:
            raise BadRequest(f"No target of '{param.code}' has a search parameter '{inner_code}'", expression=name)
        return None
    known = [i for i in (_criterion(t, rest, raw, strict) for t in usable) if i is not None]
    if not known:  # a later hop names an unknown parameter (lenient: the whole chain is ignored)
        return None
    first = known[0]
    if first.param.special == "near" and first.chain:  # search.near_page orders by the distance of one hop
        raise BadRequest("near can follow one reference, e.g. HealthcareService?location.near=…", expression=name)
    chain = [Chain(param, usable)] + first.chain
    return Criterion(name, first.param, first.modifier, first.values, chain, first.resource_type)


def _control(req: SearchRequest, name: str, raw: str, max_count: int) -> None:
    if name == "_count":
        if not raw.isdigit():
            raise BadRequest(f"_count must be a non-negative integer, not '{raw}'", expression="_count")
        req.count = min(int(raw), max_count)
    elif name == "_sort":
        req.sort = [_sort_key(req.type, key) for key in raw.split(",") if key]
    elif name == "_total":
        if raw not in ("none", "estimate", "accurate"):
            raise BadRequest("_total must be none, estimate or accurate", expression="_total")
        req.total = raw
    elif name == "_summary":
        if raw not in ("true", "false", "text", "data", "count"):
            raise BadRequest("_summary must be true, false, text, data or count", expression="_summary")
        req.summary = None if raw == "false" else raw
    elif name == "_elements":
        req.elements = [e.strip() for e in raw.split(",") if e.strip()]
    elif name.split(":")[0] in ("_include", "_revinclude"):  # with an optional :iterate
        _include(req, name, raw)
    elif name == "_cursor":
        req.cursor = raw


def _sort_key(rtype: str, key: str) -> tuple[str, bool]:
    desc = key.startswith("-")
    code = key.lstrip("-")
    param = tables().search_params.get(rtype, {}).get(code)
    computed = param is not None and param.special in ("near", "open-seats")  # no index rows to sort by
    if param is None or computed or param.type not in ("string", "token", "date", "number", "quantity", "reference", "uri"):
        raise BadRequest(f"Cannot sort {rtype} by '{code}'", expression="_sort")
    return code, desc


def _include(req: SearchRequest, name: str, raw: str) -> None:
    # _include=Source:param[:Target] with optional :iterate (or the R3 spelling :recurse) on the name
    modifier = name.partition(":")[2]
    if modifier not in ("", "iterate", "recurse"):
        raise BadRequest(f"Modifier ':{modifier}' is not supported on {name.partition(':')[0]}", expression=name)
    iterate = bool(modifier)
    parts = raw.split(":")
    if raw == "*":
        raise BadRequest(f"{name}=* is not supported; name the reference parameter", expression=name)
    if len(parts) not in (2, 3) or parts[0] not in tables().resource_types:
        raise BadRequest(f"{name} must be Type:parameter[:TargetType], not '{raw}'", expression=name)
    source, code = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    param = tables().search_params.get(source, {}).get(code)
    if param is None or param.type != "reference":
        raise BadRequest(f"'{code}' is not a reference parameter of {source}", expression=name)
    if target is not None and target not in tables().resource_types:
        raise BadRequest(f"Unknown target type '{target}' in {name}", expression=name)
    bucket = req.includes if name.startswith("_include") else req.revincludes
    bucket.append(Include(source, code, target, iterate))

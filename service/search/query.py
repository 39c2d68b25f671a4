"""Search criteria as SQL over the index tables: value matching per parameter type, chains, sort keys.

Each criterion becomes `resource.pk IN (SELECT resource_pk FROM sp_<kind> WHERE type, name, value…)`,
which both databases answer from the (type, name, value) btree indexes.
See: https://hl7.org/fhir/R4/search.html#ptypes for the matching rules implemented here.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, and_, false, func, literal, not_, or_, select, true

from .. import dates
from ..definitions import SearchParam, tables
from ..errors import BadRequest
from ..indexer import MAX_INDEXED_TEXT, normalize
from ..seats import open_seats_expr
from ..tables import INDEX_TABLES, resource, sp_reference
from . import near
from .params import Criterion, split_bar, split_prefix, unescape

TOP = "\U0010ffff"  # sorts after every other string (byte order on PostgreSQL "C", code points on SQLite)


def criterion_condition(c: Criterion, R, base_url: str) -> ColumnElement:
    """The condition on resource alias R that one criterion (values OR'd) imposes."""
    if c.chain:
        return R.c.pk.in_(_chain_select(c.chain[0].param.code, c, 0, base_url, source=None))
    return _own(c.resource_type, c.param, c, R, base_url)


def _own(rtype: str, param: SearchParam, c: Criterion, R, base_url: str) -> ColumnElement:
    """The condition of criterion `c` on `param` of `rtype` (the last hop's parameter in a chain)."""
    if param.column:
        return _column(param.column, c, R)
    if param.special in ("near", "open-seats"):
        return _computed(param.special, c, R)
    table = INDEX_TABLES[param.type]
    present = select(table.c.resource_pk).where(table.c.type == rtype, table.c.name == param.code)
    if c.modifier == "missing":
        return not_(R.c.pk.in_(present)) if c.values[0] == "true" else R.c.pk.in_(present)
    matches = present.where(or_(*[_value_condition(table, param, c.modifier, v, base_url, c.name) for v in c.values]))
    return not_(R.c.pk.in_(matches)) if c.modifier == "not" else R.c.pk.in_(matches)


def _computed(special: str, c: Criterion, R) -> ColumnElement:
    """Parameters answered by code: near (its bounding box; search.run orders and cuts by distance) and open-seats."""
    if special == "near":
        return near.box_condition(near.parse(c), R)
    seats = open_seats_expr(R)
    if c.modifier == "missing":  # a track that states no seat capacity has no open-seats value
        return seats.is_(None) if c.values[0] == "true" else seats.is_not(None)
    return or_(*[_number(seats, seats, v, c.name) for v in c.values])


def _column(column: str, c: Criterion, R) -> ColumnElement:
    """_id and _lastUpdated, answered from the resource row itself."""
    if c.modifier == "missing":  # every resource has an id and a lastUpdated
        return false() if c.values[0] == "true" else true()
    if column == "_id":
        ids = [unescape(v) for v in c.values]
        return not_(R.c.id.in_(ids)) if c.modifier == "not" else R.c.id.in_(ids)
    return or_(*[_point_condition(R.c.last_updated, v, c.name) for v in c.values])


def _chain_select(code: str, c: Criterion, hop: int, base_url: str, source: str | None) -> Select:
    """resource_pks of sources whose reference `code` points at a target matching the rest of the chain."""
    chain = c.chain[hop]
    ref = sp_reference.alias()
    options = []
    for target in chain.targets:
        T = resource.alias()
        inner: ColumnElement
        if hop + 1 < len(c.chain):
            inner = T.c.pk.in_(_chain_select(c.chain[hop + 1].param.code, c, hop + 1, base_url, target))
        else:
            inner = _own(target, tables().search_params[target][c.param.code], c, T, base_url)
        ids = select(T.c.id).where(T.c.type == target, T.c.deleted == false(), inner)
        options.append(and_(ref.c.target_type == target, ref.c.target_id.in_(ids)))
    stmt = select(ref.c.resource_pk).where(ref.c.name == code, or_(*options))
    return stmt.where(ref.c.type == source) if source else stmt


# ------------------------------------------------------------------------------- value matching
def _value_condition(t, param: SearchParam, modifier: str | None, value: str, base_url: str, where: str) -> ColumnElement:
    """One value of a criterion on index table t; `where` names the parameter in error messages."""
    kind = param.type
    if kind == "string":
        return _string(t, modifier, unescape(value))
    if kind == "token":
        return _token(t, modifier, value)
    if kind == "reference":
        return _reference(t, modifier, value, base_url)
    if kind == "date":
        return _date(t, value, where)
    if kind == "number":
        return _number(t.c.value, t.c.value, value, where)
    if kind == "quantity":
        return _quantity(t, value, where)
    return _uri(t, modifier, unescape(value))


def starts_with(column, prefix: str) -> ColumnElement:
    """column starts with prefix, as an index-friendly range."""
    return and_(column >= prefix, column < prefix + TOP)


def _string(t, modifier: str | None, value: str) -> ColumnElement:
    norm = normalize(value)[:MAX_INDEXED_TEXT]
    if modifier == "exact":
        return and_(t.c.value == norm, t.c.exact == value)
    if modifier == "contains":
        return t.c.value.like(f"%{_like_escape(norm)}%", escape="\\")
    return starts_with(t.c.value, norm)


def _like_escape(text: str) -> str:
    """text with LIKE wildcards escaped (escape character backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _token(t, modifier: str | None, value: str) -> ColumnElement:
    if modifier == "text":
        return starts_with(t.c.text, normalize(unescape(value))[:MAX_INDEXED_TEXT])
    parts = split_bar(value)
    if modifier == "of-type":
        if len(parts) != 3 or not all(parts):
            raise BadRequest(f"identifier:of-type takes type-system|type-code|value, not '{value}'", expression="identifier:of-type")
        return and_(t.c.type_system == parts[0], t.c.type_code == parts[1], t.c.code == parts[2])
    return _system_code(t.c.system, t.c.code, parts)


def _system_code(system_col, code_col, parts: list[str]) -> ColumnElement:
    """code, system|code, |code (no system) or system| (any code): https://hl7.org/fhir/R4/search.html#token"""
    if len(parts) == 1:
        return code_col == parts[0]
    system, code = parts[0], "|".join(parts[1:])
    if system == "":
        return and_(system_col.is_(None), code_col == code)
    if code == "":
        return system_col == system
    return and_(system_col == system, code_col == code)


def _reference(t, modifier: str | None, value: str, base_url: str) -> ColumnElement:
    if modifier == "identifier":  # a token search on Reference.identifier
        return _system_code(t.c.ident_system, t.c.ident_value, split_bar(value))
    value = unescape(value)
    local = value[len(base_url) + 1:] if base_url and value.startswith(base_url + "/") else value
    parts = local.split("|")[0].split("/")  # a canonical's |version is ignored
    if "_history" in parts:
        parts = parts[:parts.index("_history")]
    type_filter = modifier if modifier in tables().resource_types else None
    if len(parts) == 2 and parts[0] in tables().all_resource_types:
        if type_filter and type_filter != parts[0]:
            return false()
        return _local(t, parts[0], parts[1], base_url)
    if len(parts) == 1 and "|" not in local and ":" not in local:
        if type_filter:
            return _local(t, type_filter, local, base_url)
        anywhere = t.c.url.like(f"{_like_escape(base_url)}/%/{_like_escape(local)}", escape="\\")
        return or_(t.c.target_id == local, anywhere) if base_url else t.c.target_id == local
    return t.c.url == "/".join(parts)


def _local(t, rtype: str, rid: str, base_url: str) -> ColumnElement:
    """A reference to rtype/rid on this server, stored relative or as an absolute URL on our base.

    A relative search value resolves against the server base, so it also matches the absolute
    form of the same URL and the other way round (https://hl7.org/fhir/R4/search.html#reference).
    """
    relative = and_(t.c.target_type == rtype, t.c.target_id == rid)
    return or_(relative, t.c.url == f"{base_url}/{rtype}/{rid}") if base_url else relative


def _search_range(value: str, where: str) -> tuple[str, datetime, datetime]:
    prefix, text = split_prefix(value)
    try:
        low, high = dates.parse_range(text)
    except dates.DateFormatError as err:
        raise BadRequest(str(err), expression=where) from None
    return prefix, low, high


def _date(t, value: str, where: str) -> ColumnElement:
    prefix, low, high = _search_range(value, where)
    return _range_condition(t.c.low, t.c.high, prefix, low, high, _date_slack)


def _date_slack(low: datetime, high: datetime) -> timedelta:
    # "ap": within 10 % of the distance from now, at least a day (https://hl7.org/fhir/R4/search.html#prefix)
    return max(timedelta(days=1), abs(dates.utcnow() - low) / 10)


def _range_condition(col_low, col_high, prefix: str, low, high, slack) -> ColumnElement:
    """Compare a stored [col_low, col_high) range with a search range [low, high) by prefix."""
    if prefix == "eq":
        return and_(col_low >= low, col_high <= high)
    if prefix == "ne":
        return not_(and_(col_low >= low, col_high <= high))
    if prefix == "gt":
        return col_high > high
    if prefix == "lt":
        return col_low < low
    if prefix == "ge":  # gt, or eq: col_low >= low with col_high > high already satisfies gt
        return or_(col_high > high, col_low >= low)
    if prefix == "le":  # lt, or eq: col_high <= high with col_low < low already satisfies lt
        return or_(col_low < low, col_high <= high)
    if prefix == "sa":
        return col_low >= high
    if prefix == "eb":
        return col_high <= low
    delta = slack(low, high)
    return and_(col_low < high + delta, col_high > low - delta)


def _point_condition(column, value: str, where: str) -> ColumnElement:
    """A date search on a single instant column (_lastUpdated)."""
    prefix, low, high = _search_range(value, where)
    ops = {"eq": and_(column >= low, column < high), "ne": or_(column < low, column >= high), "gt": column >= high,
           "lt": column < low, "ge": column >= low, "le": column < high, "sa": column >= high, "eb": column < low}
    if prefix == "ap":
        delta = _date_slack(low, high)
        return and_(column >= low - delta, column < high + delta)
    return ops[prefix]


def _number_value(text: str, where: str) -> tuple[float, float, float]:
    """(value, low, high): the implied precision range of a decimal search value."""
    try:
        number = float(text)
    except ValueError:
        raise BadRequest(f"'{text}' is not a number", expression=where) from None
    if not math.isfinite(number):
        raise BadRequest(f"'{text}' is not a finite number", expression=where)
    mantissa = text.lower().split("e")[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    exponent = int(text.lower().split("e")[1]) if "e" in text.lower() else 0
    half = 0.5 * 10 ** (exponent - decimals)
    return number, number - half, number + half


def _number(col_low, col_high, value: str, where: str) -> ColumnElement:
    prefix, text = split_prefix(value)
    number, low, high = _number_value(text, where)
    equal = and_(col_low >= low, col_high < high)  # within the precision of the search value
    if prefix == "eq":
        return equal
    if prefix == "ne":
        return not_(equal)
    if prefix == "ap":
        delta = abs(number) * 0.1
        return and_(col_high >= number - delta, col_low <= number + delta)
    # ge and le also take what eq takes: "… or the range of the search value fully contains the target"
    ops = {"gt": col_high > number, "sa": col_low > number, "lt": col_low < number, "eb": col_high < number,
           "ge": or_(col_high > number, equal), "le": or_(col_low < number, equal)}
    return ops[prefix]


def _quantity(t, value: str, where: str) -> ColumnElement:
    parts = split_bar(value)
    if len(parts) not in (1, 3):
        raise BadRequest(f"A quantity search takes [prefix]number|system|code, not '{value}'", expression=where)
    cond = _number(t.c.low, t.c.high, parts[0], where)
    if len(parts) == 3:
        system, code = parts[1], parts[2]
        if system:
            cond = and_(cond, t.c.system == system)
        if code:
            cond = and_(cond, t.c.code == code)
    return cond


def _uri(t, modifier: str | None, value: str) -> ColumnElement:
    if modifier == "below":
        return starts_with(t.c.value, value)
    if modifier == "above":
        prefixes = [value[:i] for i in range(len(value), 0, -1) if i == len(value) or value[i] == "/"]
        return t.c.value.in_(prefixes)
    return t.c.value == value


# ------------------------------------------------------------------------------- sorting
def sort_key(rtype: str, code: str, desc: bool, R) -> tuple[ColumnElement, str]:
    """(SQL expression, kind) by which to sort on one search parameter; missing values sort last."""
    if code == "_id":
        return R.c.id, "string"
    if code == "_lastUpdated":
        return R.c.last_updated, "date"
    param = tables().search_params[rtype][code]
    t = INDEX_TABLES[param.type]
    column = {"string": t.c.get("value"), "token": t.c.get("code"), "reference": t.c.get("target_id"),
              "uri": t.c.get("value"), "number": t.c.get("value")}.get(param.type)
    if param.type in ("date", "quantity"):
        column = t.c.high if desc else t.c.low
    agg = func.max(column) if desc else func.min(column)
    scalar = select(agg).where(t.c.resource_pk == R.c.pk, t.c.type == rtype, t.c.name == code).scalar_subquery()
    kind = "date" if param.type == "date" else ("number" if param.type in ("number", "quantity") else "string")
    return func.coalesce(scalar, literal(_sentinel(kind, desc))), kind


def _sentinel(kind: str, desc: bool):
    if kind == "date":
        return dates.MIN if desc else dates.MAX
    if kind == "number":
        return -1e308 if desc else 1e308
    return "" if desc else TOP


def keyset(keys: list[tuple[ColumnElement, bool]], values: list, *, reverse: bool) -> ColumnElement:
    """Rows strictly after `values` in the order of `keys` (or strictly before them when reverse)."""
    options = []
    for i, (expr, desc) in enumerate(keys):
        equal = [keys[j][0] == values[j] for j in range(i)]
        after = (expr < values[i]) if (desc != reverse) else (expr > values[i])
        options.append(and_(*equal, after) if equal else after)
    return or_(*options) if options else true()

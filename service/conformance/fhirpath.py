"""Compile the FHIRPath subset of our guide's invariants into Python closures, with fhirpathpy's results.

fhirpathpy interprets its parse tree on every call (~0.4-0.8 ms an invariant: a registry merge per operator,
a node walk, a result visit); the attendance write path evaluates invariants on every resource. This compiler
walks fhirpathpy's own parse tree once (same grammar, same precedence) and builds closures that reuse
fhirpathpy's data model (ResourceNode, the R4 type model) and its operator functions where the semantics are
subtle (equality, ordering, contains, isDistinct, ofType), so results are fhirpathpy's, quirks included:
primitive extensions `_x` are navigated too, `=` compares first items after a count check, a boolean operand
must be a true boolean (no singleton conversion of other types). See http://hl7.org/fhirpath/N1/.
Anything outside the subset makes `compile_fast` return None, and the caller keeps fhirpathpy.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from fhirpathpy.engine import type_specifier
from fhirpathpy.engine.evaluators import boolean_literal, number_literal, string_literal
from fhirpathpy.engine.invocations import collections, equality, existence, filtering, logic, strings
from fhirpathpy.engine.nodes import FP_Type, ResourceNode
from fhirpathpy.models import models
from fhirpathpy.parser import parse

Env = Mapping[str, Any]
Fn = Callable[[list, Env], list]  # (focus collection, environment variables) -> collection
_MODEL = models["r4"]
_VARIABLES = {"resource", "rootResource"}
_IDENTIFIER = re.compile(r"[a-z][A-Za-z0-9]*")


class Unsupported(Exception):
    """The expression leaves the subset: the caller falls back to fhirpathpy."""


def compile_fast(expression: str | dict) -> Callable[[Any, Env], list] | None:
    """A `check(value, env) -> list` equal to fhirpathpy's compiled expression, or None outside the subset."""
    try:
        tree = parse(expression) if isinstance(expression, str) else expression
        body = _expr(tree["children"][0], this_ok=False)
    except Exception:  # noqa: BLE001 - Unsupported, or a tree shape the subset does not know: fhirpathpy then
        return None

    def check(value: Any, env: Env | None = None) -> list:
        return _visit(body(_arraify(value), env or {}))

    return check


# -- collections, as fhirpathpy.engine.util has them --------------------------------------------------------
def _arraify(x: Any) -> list:
    if isinstance(x, list):
        return x
    return [] if x is None else [x]


def _data(x: Any) -> Any:
    """util.get_data: a node's JSON value; a float as a Decimal."""
    if isinstance(x, ResourceNode):
        x = x.data
    return Decimal(str(x)) if isinstance(x, float) else x


def _visit(items: list) -> list:
    """The result as apply_parsed_path returns it: plain data, extension-only objects left out."""
    if all(x is True or x is False for x in items):
        return items
    out = []
    for item in items:
        v = _plain(item)
        if not (isinstance(v, dict) and list(v) == ["extension"]):
            out.append(v)
    return out


def _plain(node: Any) -> Any:
    data = _data(node)
    if isinstance(node, list):
        return _visit(data)
    if isinstance(data, dict) and not isinstance(data, FP_Type):
        return {k: _plain(v) for k, v in data.items()}
    return data


# -- the parse tree ---------------------------------------------------------------------------------------
def _expr(node: dict, this_ok: bool) -> Fn:
    """`this_ok`: $this here equals the focus (an operand of an operator or a criteria body), as fhirpathpy
    sets its shared ctx['$this'] there; elsewhere it may hold a stale value, so it is refused."""
    kind = node.get("type")
    if kind in ("TermExpression", "InvocationTerm", "ParenthesizedTerm"):
        return _expr(_only_child(node), this_ok)
    if kind == "InvocationExpression":
        return _chain(node, this_ok)
    if kind == "LiteralTerm":
        return _literal(_only_child(node))
    if kind == "ExternalConstantTerm":
        return _variable(node)
    if kind == "ThisInvocation" and this_ok:
        return lambda focus, env: focus
    if kind == "MemberInvocation":
        return _member(_name(node))
    if kind == "FunctionInvocation":
        return _function(node)
    if kind in _OPERATORS and len(node.get("terminalNodeText", [])) == 1:
        return _operator(node)
    raise Unsupported(kind)


def _only_child(node: dict) -> dict:
    children = node.get("children", [])
    if len(children) != 1:
        raise Unsupported(node.get("type"))
    return children[0]


def _name(node: dict) -> str:
    ident = _only_child(node)
    text = ident.get("text", "")
    if ident.get("type") != "Identifier" or not _IDENTIFIER.fullmatch(text):
        raise Unsupported(text)  # quoted, capitalised (a type filter in fhirpathpy) or odd names
    return text


def _chain(node: dict, this_ok: bool) -> Fn:
    first, step = node["children"]
    if step.get("type") not in ("MemberInvocation", "FunctionInvocation"):
        raise Unsupported(step.get("type"))
    head, tail = _expr(first, this_ok), _expr(step, False)
    return lambda focus, env: tail(head(focus, env), env)


def _literal(node: dict) -> Fn:
    kinds = {"StringLiteral": string_literal, "NumberLiteral": number_literal, "BooleanLiteral": boolean_literal}
    if node.get("type") not in kinds:
        raise Unsupported(node.get("type"))
    value = kinds[node["type"]](None, None, node)
    return lambda focus, env: value


def _variable(node: dict) -> Fn:
    name = _name(_only_child(node))
    if name not in _VARIABLES:
        raise Unsupported(name)

    def variable(focus: list, env: Env) -> list:
        if name not in env:
            raise ValueError(f"Attempting to access an undefined environment variable: {name}")
        return _arraify(env[name])

    return variable


# -- navigation (evaluators.create_reduce_member_invocation) --------------------------------------------------
def _member(key: str) -> Fn:
    plans: dict = {}

    def member(focus: list, env: Env) -> list:
        out: list = []
        for res in focus:
            if not isinstance(res, ResourceNode):
                res = _node(res, None)
            path = res.path
            if path is None or type(path) is str:
                plan = plans.get(path) or plans.setdefault(path, _plan(path, key))
            else:  # an odd resourceType value (1 and True would share a memo entry)
                plan = _plan(path, key)
            _add(out, res.data, plan, key)
        return out

    return member


def _plan(path: Any, key: str) -> tuple:
    """What `key` reads under a node of type path `path`: ((field, type path), ...) in the model's order,
    then the type path of anything else (a non-object's `length`)."""
    child = f"{path}.{key}" if path else f"_.{key}"
    child = _MODEL["pathsDefinedElsewhere"].get(child, child)
    types = _MODEL["path2Type"]
    choices = _MODEL["choiceTypePaths"].get(child)
    if choices:
        fields = tuple((key + t, types.get(child + t, child + t)) for t in choices)
    else:
        own = "Extension" if key == "extension" else child
        fields = ((key, types.get(own, own)),)
    return fields, types.get(child, child)


def _add(out: list, data: Any, plan: tuple, key: str) -> None:
    fields, other = plan
    if type(data) is dict or isinstance(data, Mapping):
        for field, path in fields:
            value, extension = data.get(field), data.get("_" + field)
            if value is not None or extension is not None:
                _append(out, value, path)
                _append(out, extension, path)
                return
    elif key == "length":
        _append(out, len(data), other)  # fhirpathpy's String length shortcut, on anything that is not an object


def _append(out: list, value: Any, path: str) -> None:
    if type(value) is list:
        out.extend(_node(x, path) for x in value)
    elif isinstance(value, list):
        out.extend(ResourceNode.create_node(x, path) for x in value)
    elif value is not None:
        out.append(_node(value, path))


def _node(data: Any, path: Any) -> ResourceNode:
    """ResourceNode(data, path) without its constructor's abc.Mapping check for the JSON types (a third of
    navigation time); a resource resets the type path to its resourceType, as the constructor does."""
    if type(data) not in _JSON:
        return ResourceNode.create_node(data, path)
    node = _new(ResourceNode)
    if type(data) is dict and "resourceType" in data:
        path = data["resourceType"]
    node.path, node.data, node._data, node.propName, node.index = path, data, None, None, None
    return node


_JSON = {dict, list, str, int, float, bool, type(None)}
_new = object.__new__


# -- functions ------------------------------------------------------------------------------------------------
def _function(node: dict) -> Fn:
    functn = _only_child(node)
    name_node, *params = functn["children"]
    name = name_node.get("text")
    args = params[0]["children"] if params else []
    if (name, len(args)) not in _FUNCTIONS:
        raise Unsupported(f"{name}/{len(args)}")
    return _FUNCTIONS[(name, len(args))](*args)


def _exists(focus: list, env: Env) -> list:
    return [len(focus) != 0]


def _empty(focus: list, env: Env) -> list:
    return [len(focus) == 0]


def _is_distinct(focus: list, env: Env) -> list:
    if all(type(x) is ResourceNode and type(x.data) is str for x in focus):
        return [len({x.data for x in focus}) == len(focus)]  # util.uniq keys by json.dumps: one per string
    return existence.isdistinct_fn(None, focus)


def _where(criteria: dict) -> Fn:
    body = _expr(criteria, this_ok=True)

    def where(focus: list, env: Env) -> list:
        kept = []
        for x in focus:
            result = body(_arraify(x), env)
            if result and result[0]:  # filtering.check_macro_expr: the first item's truth, not a boolean check
                kept.append(x)
        return _flatten(kept)

    return where


def _flatten(items: list) -> list:
    if not any(isinstance(x, list) for x in items):
        return items
    out: list = []
    for x in items:
        out += x if isinstance(x, list) else [x]
    return out


def _exists_where(criteria: dict) -> Fn:
    where = _where(criteria)
    return lambda focus, env: [len(where(focus, env)) != 0]


def _all(criteria: dict) -> Fn:
    body = _expr(criteria, this_ok=True)

    def every(focus: list, env: Env) -> list:
        for x in focus:
            result = body(_arraify(x), env)
            if not (len(result) == 1 and result[0] == True):  # noqa: E712 - util.is_true compares with ==
                return [False]
        return [True]

    return every


def _of_type(param: dict) -> Fn:
    text = param.get("text", "")
    if not re.fullmatch(r"(FHIR\.|System\.)?[A-Za-z]+", text):
        raise Unsupported(text)
    wanted = type_specifier(None, None, {"text": text})
    return lambda focus, env: filtering.of_type_fn(None, focus, wanted)


def _matches(param: dict) -> Fn:
    regex = _string_argument(param)
    try:
        pattern = re.compile(regex, re.DOTALL)
    except re.error:
        raise Unsupported(regex) from None

    def matches(focus: list, env: Env) -> list:
        if not focus or not regex:
            return []
        return [pattern.search(strings.ensure_string_singleton(focus)) is not None]

    return matches


def _string_argument(param: dict) -> str:
    literal = param
    while literal.get("type") in ("TermExpression", "LiteralTerm"):
        literal = _only_child(literal)
    if literal.get("type") != "StringLiteral":
        raise Unsupported("a function argument other than a string literal")
    return string_literal(None, None, literal)[0]


_FUNCTIONS: dict[tuple[str, int], Callable[..., Fn]] = {
    ("exists", 0): lambda: _exists,
    ("empty", 0): lambda: _empty,
    ("isDistinct", 0): lambda: _is_distinct,
    ("exists", 1): _exists_where,
    ("where", 1): _where,
    ("all", 1): _all,
    ("ofType", 1): _of_type,
    ("matches", 1): _matches,
}


# -- operators (engine.infix_invoke: both operands are always evaluated) -------------------------------------------
def _operator(node: dict) -> Fn:
    combine = _OPERATORS[node["type"]].get(node["terminalNodeText"][0])
    if combine is None:
        raise Unsupported(node["terminalNodeText"][0])
    left, right = (_expr(c, this_ok=True) for c in node["children"])
    return lambda focus, env: combine(left(focus, env), right(focus, env))


def _boolean(items: list) -> Any:
    """engine.make_param for a ["Boolean"] operand: empty stays empty; else exactly one true boolean."""
    if not items:
        return []
    if len(items) > 1:
        raise ValueError(f"Unexpected collection of {len(items)}; expected singleton of type Boolean")
    value = _data(items[0])
    if value is True or value is False:
        return value
    raise ValueError(f"Expected boolean, got: {value!r}")


def _logic(fn: Callable) -> Callable[[list, list], list]:
    return lambda a, b: _arraify(fn(None, _boolean(a), _boolean(b)))


def _nullable(fn: Callable) -> Callable[[list, list], list]:
    return lambda a, b: [] if not a or not b else _arraify(fn(None, a, b))


_QUANTITY_PATHS = ("Quantity", "System.Quantity")
_RAW = (str, int, bool, Decimal, float, dict, list, type(None))


def _simple(x: Any) -> bool:
    """Neither a Quantity-typed node (equality.parse_value converts those) nor a FHIRPath date/time."""
    if type(x) is ResourceNode:
        return x.path is None or (type(x.path) is str and x.path not in _QUANTITY_PATHS)
    return type(x) in _RAW


def _equal(a: list, b: list) -> list:
    if not a or not b:
        return []
    if _simple(a[0]) and _simple(b[0]):
        return [len(a) == len(b) and a[0] == b[0]]
    return equality.equal(None, a, b)


def _unequal(a: list, b: list) -> list:
    if not a or not b:
        return []
    if _simple(a[0]) and _simple(b[0]):
        return [not (len(a) == len(b) and a[0] == b[0])]
    return equality.unequal(None, a, b)


def _contains(a: list, b: list) -> list:
    return _arraify(collections.contains(None, a, b))


def _in(a: list, b: list) -> list:
    return _arraify(collections.inn(None, a, b))


_OPERATORS: dict[str, dict[str, Callable[[list, list], list]]] = {
    "AndExpression": {"and": _logic(logic.and_op)},
    "OrExpression": {"or": _logic(logic.or_op), "xor": _logic(logic.xor_op)},
    "ImpliesExpression": {"implies": _logic(logic.implies_op)},
    "EqualityExpression": {"=": _equal, "!=": _unequal},
    "InequalityExpression": {"<": _nullable(equality.lt), "<=": _nullable(equality.lte),
                             ">": _nullable(equality.gt), ">=": _nullable(equality.gte)},
    "MembershipExpression": {"contains": _contains, "in": _in},
}

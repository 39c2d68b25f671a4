"""Base R4 validation of a resource on write: what fhir.resources does not check, then its parse.

One walk over the JSON against the generated R4 element model checks: known elements (R4, not
R4B), JSON types of primitives and their formats (the regular expressions of datatypes.html, and
real calendar days), FHIR JSON rules (no empty objects, arrays or strings; no nulls), cardinality,
required bindings, id and reference formats, narrative safety, contained-resource invariants
(dom-2..dom-5), ext-1 and nesting depth. Then fhir.resources R4B parses what a client sent, once.
A resource the server builds itself from parts already validated (a session's attendance Encounters)
is judged by the walk alone (`parse=False`): the parse found nothing more in them, at ~0.3 ms each.
See: https://hl7.org/fhir/R4/json.html, https://hl7.org/fhir/R4/datatypes.html#primitive and
https://hl7.org/fhir/R4/validation.html
"""
from __future__ import annotations

import re
from datetime import date

from . import fhir
from .definitions import Element, Tables, tables
from .errors import Issue

_PRIMITIVE_STR = {"string", "code", "id", "uri", "url", "canonical", "oid", "uuid", "markdown", "base64Binary",
                  "date", "dateTime", "instant", "time", "xhtml"}
_PRIMITIVE_INT = {"integer", "positiveInt", "unsignedInt"}
_PRIMITIVES = _PRIMITIVE_STR | _PRIMITIVE_INT | {"boolean", "decimal"}
_RELATIVE_REF = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(/_history/[A-Za-z0-9\-.]{1,64})?$")
_ABSOLUTE_REF = re.compile(r"^(https?://[^\s]+|urn:oid:[0-2](\.(0|[1-9][0-9]*))+|urn:uuid:[0-9a-fA-F-]{36})$")
_UNSAFE_XHTML = re.compile(r"<\s*(script|iframe|object|embed|form|base|link|meta)\b|\son\w+\s*=|javascript:", re.I)
_INT32 = (-2**31, 2**31 - 1)
# Control characters other than tab, LF and CR: strings SHOULD NOT hold them (datatypes.html#string), and
# PostgreSQL cannot store NUL at all, so they are refused with a path rather than failing in the database.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# The R4 primitive formats (https://hl7.org/fhir/R4/datatypes.html#primitive), matched whole
_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_ZONE = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
_DAY = r"-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])"
FORMATS = {name: re.compile(rx) for name, rx in {
    "date": rf"{_YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?",
    "dateTime": rf"{_YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T{_TIME}{_ZONE})?)?)?",
    "instant": rf"{_YEAR}{_DAY}T{_TIME}{_ZONE}",
    "time": _TIME,
    "code": r"[^\s]+( [^\s]+)*",
    "oid": r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+",
    "uuid": r"urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    "uri": r"\S*", "url": r"\S*", "canonical": r"\S*",
    "base64Binary": r"(\s*([0-9a-zA-Z+/=]){4}\s*)+",
}.items()}
_CALENDAR = ("date", "dateTime", "instant")  # the regular expressions allow 31 days in every month


class _Walk:
    """State of one validation walk: the issues found and the local references seen."""

    def __init__(self, t: Tables, max_depth: int, envelope_only: bool = False):
        self.t = t
        self.max_depth = max_depth
        self.envelope_only = envelope_only  # skip Bundle.entry.resource (validated entry by entry)
        self.issues: list[Issue] = []
        self.local_refs: set[str] = set()
        self.in_bundle = 0

    def error(self, code: str, text: str, path: str) -> None:
        self.issues.append(Issue("error", code, text, path))

    # -- resources -------------------------------------------------------------------------
    def resource(self, obj: object, path: str, depth: int, contained: bool = False) -> None:
        if not isinstance(obj, dict) or not isinstance(obj.get("resourceType"), str):
            return self.error("structure", "A resource must be a JSON object with a resourceType", path)
        rtype = obj["resourceType"]
        if rtype not in self.t.resource_types:
            return self.error("not-supported", f"Unknown or unsupported resource type '{rtype}'", path)
        rid = obj.get("id")
        if rid is not None and not (isinstance(rid, str) and fhir.ID_RE.match(rid)):
            self.error("value", "Resource id must be 1-64 characters of A-Z, a-z, 0-9, '-' and '.'", f"{path}.id")
        if contained:
            self.contained_rules(obj, path)
        self.in_bundle += rtype == "Bundle"
        self.members(obj, rtype, path, depth, skip=("resourceType",))
        self.in_bundle -= rtype == "Bundle"
        if not contained and "contained" in obj:
            self.contained_referenced(obj, path)

    def contained_rules(self, obj: dict, path: str) -> None:
        if "contained" in obj:
            self.error("invariant", "dom-2: a contained resource cannot contain resources", f"{path}.contained")
        meta = obj["meta"] if isinstance(obj.get("meta"), dict) else {}
        if "versionId" in meta or "lastUpdated" in meta:
            self.error("invariant", "dom-4: a contained resource cannot have meta.versionId or meta.lastUpdated", f"{path}.meta")
        if "security" in meta:
            self.error("invariant", "dom-5: a contained resource cannot have a security label", f"{path}.meta.security")

    def contained_referenced(self, obj: dict, path: str) -> None:
        for i, res in enumerate(obj["contained"] if isinstance(obj["contained"], list) else []):
            cid = res.get("id") if isinstance(res, dict) else None
            if not cid:
                self.error("invariant", "A contained resource needs an id", f"{path}.contained[{i}]")
            elif cid not in self.local_refs:
                self.error("invariant", f"dom-3: contained resource '#{cid}' is not referenced", f"{path}.contained[{i}]")

    # -- complex values ---------------------------------------------------------------------
    def members(self, obj: dict, type_name: str, path: str, depth: int, skip: tuple = ()) -> None:
        if depth > self.max_depth:
            return self.error("too-long", f"Content nested deeper than {self.max_depth} levels", path)
        model = self.t.types.get(type_name, {})
        if not obj:
            return self.error("structure", "ele-1: an element must have a value or children (empty object)", path)
        for key, value in obj.items():
            if key in skip:
                continue
            if key.startswith("_"):
                self.primitive_extension(model, key, value, f"{path}.{key[1:]}", depth)
                continue
            el = model.get(key)
            if el is None:
                self.error("structure", f"Unknown element '{key}'", f"{path}.{key}")
                continue
            self.element(el, type_name, key, value, f"{path}.{key}", depth, obj)
        self.cardinality(obj, type_name, path)
        if type_name == "Extension" and "extension" in obj and any(k.startswith("value") for k in obj):
            self.error("invariant", "ext-1: an extension has either a value or nested extensions, not both", path)

    def cardinality(self, obj: dict, type_name: str, path: str) -> None:
        for key in self.t.required_keys.get(type_name, ()):
            if key not in obj and f"_{key}" not in obj:
                self.error("required", f"Missing required element '{key}'", f"{path}.{key}")
        for base, keys, required in self.t.choice_groups.get(type_name, ()):
            present = [k for k in keys if k in obj or f"_{k}" in obj]
            if len(present) > 1:
                self.error("structure", f"Only one of {base}[x] is allowed, found {', '.join(present)}", f"{path}.{base}[x]")
            elif required and not present:
                self.error("required", f"Missing required element '{base}[x]'", f"{path}.{base}[x]")

    def element(self, el: Element, owner: str, key: str, value: object, path: str, depth: int, parent: dict) -> None:
        if value is None:
            return self.error("structure", "null is not a valid FHIR JSON value", path)
        if el.many:
            if not isinstance(value, list):
                return self.error("structure", f"'{key}' must be an array", path)
            if not value:
                return self.error("structure", "Empty arrays are not allowed in FHIR JSON", path)
            for i, item in enumerate(value):
                if item is None and f"_{key}" in parent:
                    continue  # primitive array with an extension at this index
                self.value(el, owner, key, item, f"{path}[{i}]", depth + 1)
        elif isinstance(value, list):
            self.error("structure", f"'{key}' must be a single value, not an array", path)
        else:
            self.value(el, owner, key, value, path, depth + 1)

    def value(self, el: Element, owner: str, key: str, value: object, path: str, depth: int) -> None:
        if el.type in _PRIMITIVES:
            self.primitive(el.type, value, path, owner, key)
        elif el.type == "Resource":
            if not (self.envelope_only and owner == "Bundle.entry"):
                self.resource(value, path, depth, contained=key == "contained")
        elif not isinstance(value, dict):
            self.error("structure", f"'{key}' must be a JSON object ({el.type})", path)
        else:
            self.members(value, el.type, path, depth)
            if el.type == "Reference":
                self.reference(value, el.targets, path)
        binding = self.t.required_bindings.get(f"{owner}.{key}")
        if binding is not None:
            self.binding(owner, key, value, binding, path)

    def primitive_extension(self, model: dict, key: str, value: object, path: str, depth: int) -> None:
        el = model.get(key[1:])
        if el is None or el.type not in _PRIMITIVES:
            return self.error("structure", f"Unknown element '{key}'", path)
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item is not None and not isinstance(item, dict):
                self.error("structure", f"'{key}' must hold JSON objects", path)
            elif item is not None:
                self.members(item, "Element", path, depth + 1)

    # -- primitives, references, bindings ----------------------------------------------------
    def primitive(self, type_: str, value: object, path: str, owner: str, key: str) -> None:
        if type_ == "boolean":
            ok = isinstance(value, bool)
        elif type_ in _PRIMITIVE_INT:
            ok = isinstance(value, int) and not isinstance(value, bool) and _INT32[0] <= value <= _INT32[1]
            ok = ok and (type_ != "positiveInt" or value > 0) and (type_ != "unsignedInt" or value >= 0)  # type: ignore[operator]
        elif type_ == "decimal":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, str) and value.strip() != ""
        if not ok:
            return self.error("value", f"'{value}' is not a valid FHIR {type_}", path)
        if isinstance(value, str) and _CONTROL.search(value):
            return self.error("value", f"Control characters are not allowed in a FHIR {type_}", path)
        if type_ == "xhtml" and isinstance(value, str):
            self.narrative(value, path)
        elif type_ == "id" and isinstance(value, str) and not fhir.ID_RE.match(value):
            self.error("value", f"'{value}' is not a valid id", path)
        elif type_ in FORMATS and isinstance(value, str) and not _well_formed(type_, value):
            self.error("value", f"'{value[:100]}' is not a valid FHIR {type_}", path)

    def narrative(self, div: str, path: str) -> None:
        if not div.lstrip().startswith("<div") or 'xmlns="http://www.w3.org/1999/xhtml"' not in div:
            self.error("invariant", 'txt-3: the narrative must be a <div> in the XHTML namespace', path)
        elif _UNSAFE_XHTML.search(div):
            self.error("invariant", "txt-1: the narrative may contain only basic HTML formatting (no scripts, forms or event handlers)",
                       path)

    def reference(self, ref: dict, targets: tuple[str, ...] | None, path: str) -> None:
        literal = ref.get("reference")
        if not isinstance(literal, str):
            return
        if literal.startswith("#"):
            self.local_refs.add(literal[1:])
            return
        m = _RELATIVE_REF.match(literal)
        if m:
            if m.group(1) not in self.t.all_resource_types:
                self.error("value", f"Unknown resource type in reference '{literal}'", f"{path}.reference")
            elif targets and m.group(1) not in targets and "Resource" not in targets:
                self.error("value", f"A reference to {m.group(1)} is not allowed here (allowed: {', '.join(targets)})", f"{path}.reference")
            return
        if not _ABSOLUTE_REF.match(literal):
            self.error("value", f"'{literal}' is not a valid reference (Type/id, an absolute URL or #local)", f"{path}.reference")
        elif literal.startswith("urn:uuid:") and not self.in_bundle:
            self.error("not-found", f"Reference '{literal}' does not resolve to a resource (urn:uuid is only meaningful inside a Bundle)",
                       f"{path}.reference")

    def binding(self, owner: str, key: str, value: object, members: frozenset[str], path: str) -> None:
        url = self.t.binding_urls[f"{owner}.{key}"]
        if isinstance(value, str):
            if value not in self.t.binding_codes[f"{owner}.{key}"]:
                self.error("code-invalid", f"'{value}' is not in the required value set {url}", path)
            return
        if not isinstance(value, dict):
            return
        codings = value.get("coding") if "coding" in value else [value]
        coded = [c for c in codings or [] if isinstance(c, dict) and c.get("code")]
        if coded and not any(_in_binding(c, members) for c in coded):
            shown = ", ".join(f"{c.get('system', '')}|{c['code']}" for c in coded)
            self.error("code-invalid", f"'{shown}' is not in the required value set {url}", path)


def _well_formed(type_: str, value: str) -> bool:
    if not FORMATS[type_].fullmatch(value):
        return False
    if type_ in _CALENDAR and len(value) >= 10:
        try:
            date.fromisoformat(value[:10])
        except ValueError:
            return False
    return True


def _in_binding(coding: dict, members: frozenset[str]) -> bool:
    system = coding.get("system")
    if system:
        return f"{system}|{coding['code']}" in members
    return any(m.endswith(f"|{coding['code']}") for m in members)


def validate_envelope(bundle: dict, max_depth: int = 64) -> list[Issue]:
    """Base-R4 problems of a Bundle outside its entries' resources (those go through the write path one by one)."""
    walk = _Walk(tables(), max_depth, envelope_only=True)
    walk.resource(bundle, "Bundle", 0)
    return walk.issues


def validate(resource: dict, max_depth: int = 64, *, parse: bool = True) -> list[Issue]:
    """All base-R4 problems of `resource` (an empty list when it is valid); `parse=False` for a resource the server
    built from validated parts: the walk without the fhir.resources parse (see the module docstring)."""
    walk = _Walk(tables(), max_depth)
    walk.resource(resource, resource.get("resourceType", "Resource"), 0)
    if walk.issues or not parse:
        return walk.issues
    return fhir.parse_issues(resource)

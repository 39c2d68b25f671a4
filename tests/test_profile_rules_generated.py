"""Generated from the profiles themselves: for every rule of every profile's differential (a required element,
a fixed or pattern value, a required binding, a reference target), break exactly that rule in an example that
meets the profile, and check that our server and the Medplum validator with our guide both refuse it."""
from __future__ import annotations

import copy
import json

import pytest
import requests

from helpers import EXAMPLES, put
from service.conformance import CANONICAL, registry
from service.conformance import compile as rules_compile

BOGUS = "zz-not-a-code"


def _examples_by_profile() -> dict[str, dict]:
    """The first standalone example claiming each profile (as stored: no urn:uuid references to resolve)."""
    out: dict[str, dict] = {}
    for path in sorted(EXAMPLES.glob("*.json")):
        doc = json.loads(path.read_text())
        if doc["resourceType"] != "Bundle":
            for url in registry().claimed(doc):
                out.setdefault(url, doc)
    return out


def _walk(rule: rules_compile.Rule, path: tuple[str, ...] = ()):
    """(JSON path, rule) for every non-slice element rule under `rule`."""
    for name, child in rule.children.items():
        if not name.endswith("[x]"):
            yield path + (name,), child
            yield from _walk(child, path + (name,))


def _at(doc: dict, path: tuple[str, ...]) -> list[tuple[dict, str]]:
    """(parent object, key) pairs where `path` exists in `doc`."""
    parents = [doc]
    for key in path[:-1]:
        nxt = []
        for p in parents:
            v = p.get(key)
            nxt += [x for x in (v if isinstance(v, list) else [v]) if isinstance(x, dict)]
        parents = nxt
    return [(p, path[-1]) for p in parents if path[-1] in p]


def _mutations(rule: rules_compile.Rule, path: tuple[str, ...]):
    """(label, function changing the instance) for each rule on this element."""
    if rule.min and len(path) == 1:
        yield "required", lambda doc: doc.pop(path[0], None)
    if rule.fixed is not rules_compile.UNSET and isinstance(rule.fixed, str):
        yield "fixed", lambda doc: [p.__setitem__(k, BOGUS) for p, k in _at(doc, path)]
    if isinstance(rule.pattern, dict) and "coding" in rule.pattern:
        yield "pattern", lambda doc: [_bogus_codings(p[k]) for p, k in _at(doc, path)]
    if rule.binding and rule.binding[0] == "required" and rule.types in (("code",), None):
        yield "required-binding", lambda doc: [p.__setitem__(k, BOGUS) if isinstance(p[k], str) else _bogus_codings(p[k])
                                               for p, k in _at(doc, path)]
    if rule.target_profiles and rule.types == ("Reference",):
        ours = any(t.startswith(CANONICAL) for t in rule.target_profiles)
        yield "reference-target-ours" if ours else "reference-target", lambda doc: [_retarget(p[k]) for p, k in _at(doc, path)]


def _bogus_codings(value: object) -> None:
    for item in value if isinstance(value, list) else [value]:
        for coding in item.get("coding", [item]) if isinstance(item, dict) else []:
            coding["code"] = BOGUS


def _retarget(value: object) -> None:
    for ref in value if isinstance(value, list) else [value]:
        if isinstance(ref, dict):
            ref["reference"] = "Basic/not-an-allowed-target"


def _cases() -> list[tuple[str, str, dict]]:
    cases = []
    for url, doc in _examples_by_profile().items():
        profile = registry().profiles[url]
        for path, rule in _walk(profile.rules):
            for label, mutate in _mutations(rule, path):
                broken = copy.deepcopy(doc)
                mutate(broken)
                if _unchanged(doc, broken):
                    continue  # the example does not use this element: nothing to break
                cases.append((f"{profile.id}:{'.'.join(path)}:{label}", label, broken))
    return cases


def _unchanged(before: dict, after: dict) -> bool:
    return json.dumps(before, sort_keys=True) == json.dumps(after, sort_keys=True)


CASES = _cases()
# What Medplum's validator does not enforce (see test_profile_rules.MEDPLUM_GAPS): a wrong reference target type
# is only a warning, and targets that are our profiles are not resolved at all. There our server's refusal is the check.
MEDPLUM_WARNS = {"reference-target"}
MEDPLUM_ACCEPTS = {"reference-target-ours"}


def test_every_profile_has_generated_cases():
    profiled = {c[0].split(":")[0] for c in CASES}
    assert profiled == {p.id for p in registry().profiles.values() if p.kind == "resource"}


@pytest.mark.parametrize(("name", "label", "broken"), CASES, ids=[c[0] for c in CASES])
def test_both_validators_refuse(client, ig_validator_url, name, label, broken):
    resp = put(client, f"{broken['resourceType']}/{broken['id']}", broken)
    assert resp.status_code in (400, 422), f"{name}: our server accepted it"
    issues = requests.post(f"{ig_validator_url}/validate", data=json.dumps(broken), timeout=30).json()["issue"]
    severities = {i["severity"] for i in issues}
    if label in MEDPLUM_ACCEPTS:
        assert not severities & {"error", "fatal"}, f"{name}: Medplum now checks this; move it out of MEDPLUM_ACCEPTS"
    elif label in MEDPLUM_WARNS:
        assert severities & {"error", "fatal", "warning"}, (name, issues)
    else:
        assert severities & {"error", "fatal"}, (name, issues)

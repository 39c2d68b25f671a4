"""The only importer of fhir.resources: R4B models parse what we write; constants of the wire format.

fhir.resources 8.x has no R4 (4.0.1) models; R4B (4.3.0) is near-identical for the types we serve.
We serve `fhirVersion` 4.0.1 and check R4 specifics ourselves (validation.py). Parsing happens once,
on write; reads never touch pydantic.
"""
from __future__ import annotations

import re
from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from .errors import Issue

FHIR_VERSION = "4.0.1"
ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

# pydantic error type → FHIR issue-type code (http://hl7.org/fhir/issue-type)
_ISSUE_CODES = {
    "extra_forbidden": "structure",
    "missing": "required",
    "model_field_validation.missing": "required",
    "list_type": "structure",
    "dict_type": "structure",
    "model_type": "structure",
}


@cache
def model_class(resource_type: str) -> Any:
    """The R4B pydantic model for a resource type name."""
    return get_fhir_model_class(resource_type)


def parse_issues(resource: dict) -> list[Issue]:
    """Parse `resource` with its R4B model; return the problems found as issues (empty when valid)."""
    rtype = resource["resourceType"]
    try:
        model_class(rtype).model_validate(resource)
    except ValidationError as err:
        return [_issue(rtype, e) for e in err.errors(include_url=False)]
    except (KeyError, ValueError, TypeError) as err:  # fhir_core raises bare errors for some inputs
        return [Issue("error", "structure", f"Unparsable {rtype}: {err}", rtype)]
    return []


def _issue(rtype: str, error: Any) -> Issue:
    code = _ISSUE_CODES.get(error["type"], "value" if error["type"].endswith(("_parsing", "_mismatch", "value_error")) else "structure")
    return Issue("error", code, f"{error['msg']}", expression(rtype, error["loc"]))


def expression(rtype: str, loc: tuple) -> str:
    """A FHIRPath expression for a pydantic error location, e.g. Patient.name[0].given[1]."""
    out = rtype
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += "." + str(part).removesuffix("__ext").lstrip("_")
    return out

"""An instrument's items and options, read from its Questionnaire, and a response's answers checked against them.

An answer outside the item's options, an item the Questionnaire does not have, or an enabled item left unanswered is
a 422 naming the item: the instruments' published scoring needs every item, so the service never guesses
(R4 Questionnaire.item.required and enableWhen: https://hl7.org/fhir/R4/questionnaire.html#enableWhen).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import Unprocessable

ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"


@dataclass(frozen=True)
class Option:
    system: str
    code: str
    display: str
    score: int | None  # ordinalValue; None for unscored options (C-SSRS yes/no)


@dataclass(frozen=True)
class Item:
    link_id: str
    text: str
    required: bool
    options: tuple[Option, ...]
    enable_when: tuple[tuple[str, str], ...]  # (question linkId, answer code): all must hold

    def option(self, coding: dict) -> Option | None:
        """The option a valueCoding picks: same code, and same system when the answer gives one."""
        return next((o for o in self.options if o.code == coding.get("code")
                     and coding.get("system", o.system) == o.system), None)


@dataclass(frozen=True)
class Result:
    """What a response scores to: the result Observation's code, profile, value, interpretation, and any alert."""

    code: tuple[str, str, str]  # (system, code, display) of the score or risk level
    profile: str  # our profile id (iop-phq9 ...)
    value: int | dict  # valueInteger, or valueCodeableConcept
    interpretation: list[dict]
    alert: str | None = None  # why a safety alert is raised (service/workflows/safety.py), None for none


@dataclass(frozen=True)
class Rules:
    """An instrument's scoring rules (scales.py, cssrs.py)."""

    code: tuple[str, str, str]
    profile: str
    score: Callable[[dict[str, Option], str | None], Result]  # (answers by linkId, patient's administrative gender)
    needs_sex: bool = False


@dataclass(frozen=True)
class Instrument:
    url: str
    id: str
    title: str
    items: dict[str, Item]
    rules: Rules = field(repr=False)

    @classmethod
    def load(cls, questionnaire: dict, rules: Rules) -> Instrument:
        items = {i["linkId"]: _item(i) for i in questionnaire.get("item", [])}
        short = re.search(r"\(([^()]+)\)\s*$", questionnaire.get("title", ""))  # "... (PHQ-9)" -> PHQ-9
        return cls(questionnaire["url"], questionnaire["id"], short.group(1) if short else questionnaire["id"], items, rules)

    def enabled(self, item: Item, given: dict[str, Option]) -> bool:
        return all(q in given and given[q].code == code for q, code in item.enable_when)


def _item(item: dict) -> Item:
    options = tuple(_option(o["valueCoding"]) for o in item.get("answerOption", []))
    enable = tuple((w["question"], w["answerCoding"]["code"]) for w in item.get("enableWhen", []))
    return Item(item["linkId"], item.get("text", item["linkId"]), bool(item.get("required")), options, enable)


def _option(coding: dict) -> Option:
    ordinal = next((e["valueDecimal"] for e in coding.get("extension", []) if e.get("url") == ORDINAL), None)
    return Option(coding["system"], coding["code"], coding.get("display", coding["code"]), None if ordinal is None else int(ordinal))


def answers(instrument: Instrument, response: dict) -> dict[str, Option]:
    """The option chosen for each answered item (linkId -> Option); 422 naming the item for anything else."""
    given: dict[str, Option] = {}
    for i, entry in enumerate(response.get("item", [])):
        where = f"QuestionnaireResponse.item[{i}]"
        link = entry.get("linkId")
        item = instrument.items.get(link)
        if item is None:
            raise _refuse(f"Item '{link}' is not a question of the {instrument.title} ({instrument.url})", where + ".linkId")
        if link in given:
            raise _refuse(f"Item '{link}' is answered twice", where)
        option = _chosen(instrument, item, entry.get("answer", []), where)
        if option is not None:
            given[link] = option
    _check_complete(instrument, given)
    return given


def _chosen(instrument: Instrument, item: Item, answer: list, where: str) -> Option | None:
    if not answer:
        return None
    if len(answer) > 1:
        raise _refuse(f"Item '{item.link_id}' ({item.text}) takes one answer, not {len(answer)}", f"{where}.answer")
    coding = answer[0].get("valueCoding")
    option = item.option(coding) if isinstance(coding, dict) else None
    if option is None:
        allowed = ", ".join(f"{o.code} ({o.display})" for o in item.options)
        raise _refuse(f"The answer to item '{item.link_id}' ({item.text}) is not one of the {instrument.title}'s options: "
                      f"{allowed}", f"{where}.answer[0]")
    return option


def _check_complete(instrument: Instrument, given: dict[str, Option]) -> None:
    """Every enabled required item answered, no disabled item answered (in the Questionnaire's order)."""
    for item in instrument.items.values():
        enabled = instrument.enabled(item, given)
        if enabled and item.required and item.link_id not in given:
            raise _refuse(f"Item '{item.link_id}' ({item.text}) is not answered; the {instrument.title} is scored only when "
                          "every item is answered (the service does not guess missing answers)", "QuestionnaireResponse.item",
                          code="required")
        if not enabled and item.link_id in given:
            raise _refuse(f"Item '{item.link_id}' ({item.text}) is answered although its question is not enabled by the "
                          "earlier answers", "QuestionnaireResponse.item")


def _refuse(message: str, where: str, code: str = "business-rule") -> Unprocessable:
    return Unprocessable(message, code=code, expression=where)

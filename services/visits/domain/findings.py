"""Findings forms as data: parsing findings.toml strictly, checking a visit's findings.

Pure: no I/O. The caller reads findings.toml and hands the parsed dict, with the service codes
the plans use, to ``parse_forms`` (services/visits/forms.py does, once).

A visit record's ``findings`` are keyed by the step's service: each service has a short form
(the fields a worker's phone shows). ``check_findings`` returns the mistakes in a record's
findings, one ``{"field": "findings.<code>", "message": <zh>}`` per mistake, in the shape of
the ``errors`` of a validation problem (shared/errors.py), so a caller can answer 422 with them.

Field types and what a value must be (JSON as the phone sends it):

    text      a string of at most ``max_length`` characters
    number    an int or a float (not a boolean: true is not 1), ``min`` <= value <= ``max``
    integer   a whole number (3 or 3.0, not 3.5, not a boolean), ``min`` <= value <= ``max``
    choice    one of the option codes
    boolean   true or false (not 0 / 1)
    date      an ISO date string "YYYY-MM-DD"

A key left out, or sent as null, is not recorded: that is only a mistake for a ``required``
field. Keys that are not fields of the form are notes: accepted when the form allows
free text and the value is a string of at most 500 characters. ``notes`` is free text on every
form, whatever ``free_text`` says.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from services.visits.domain.plans import _code, _keys, _text

FieldType = Literal["text", "number", "integer", "choice", "boolean", "date"]
FIELD_TYPES: tuple[FieldType, ...] = ("text", "number", "integer", "choice", "boolean", "date")
NOTES = "notes"  # free text on every form
MAX_FREE_TEXT = 500
# A text field is a short answer; longer writing belongs in notes.
MAX_TEXT_LENGTH = MAX_FREE_TEXT
# Bounds far beyond any measurement, so a typo in the file ("1e9") is refused.
_MAX_MAGNITUDE = 1_000_000
_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")

# Keys every field may have, and the ones each type adds (required, optional).
_COMMON_REQUIRED = {"code", "name", "type"}
_COMMON_OPTIONAL = {"required", "note"}
_BY_TYPE: dict[str, tuple[set[str], set[str]]] = {
    "text": ({"max_length"}, set()),
    "number": ({"min", "max", "unit"}, set()),
    "integer": ({"min", "max"}, {"unit"}),
    "choice": ({"options"}, set()),
    "boolean": (set(), set()),
    "date": (set(), set()),
}


@dataclass(frozen=True)
class Option:
    code: str
    name: str


@dataclass(frozen=True)
class FormField:
    code: str
    name: str
    type: FieldType
    required: bool = False
    max_length: int | None = None  # text
    min: float | None = None  # number, integer
    max: float | None = None  # number, integer
    unit: str = ""  # number (always), integer (optional)
    options: tuple[Option, ...] = ()  # choice
    note: str = ""

    def option(self, code: str) -> Option | None:
        return next((o for o in self.options if o.code == code), None)


@dataclass(frozen=True)
class Form:
    service: str
    name: str
    source: str
    fields: tuple[FormField, ...]
    free_text: bool = True
    note: str = ""

    def field(self, code: str) -> FormField | None:
        return next((f for f in self.fields if f.code == code), None)


# -- parsing ------------------------------------------------------------------------------


def _bound(raw: dict[str, Any], key: str, where: str, whole: bool) -> float:
    value = raw[key]
    if whole:
        ok = type(value) is int
        kind = "a whole number"
    else:
        ok = type(value) in (int, float) and math.isfinite(value)
        kind = "a number"
    if not ok:
        raise ValueError(f"{where}.{key}: expected {kind}, got {value!r}")
    if abs(value) > _MAX_MAGNITUDE:
        raise ValueError(f"{where}.{key}: {value!r} is beyond ±{_MAX_MAGNITUDE}")
    return value  # type: ignore[no-any-return]


def _options(raw: object, where: str) -> tuple[Option, ...]:
    if not isinstance(raw, list) or len(raw) < 2:
        raise ValueError(f"{where}: a choice needs a list of at least two options")
    options: list[Option] = []
    for i, o in enumerate(raw):
        here = f"{where}[{i}]"
        r = _keys(o, here, {"code", "name"}, set())
        option = Option(_code(r, "code", here), _text(r, "name", here))
        if any(p.code == option.code for p in options):
            raise ValueError(f"{here}: option code {option.code!r} is used twice")
        options.append(option)
    return tuple(options)


def _field(raw: object, where: str) -> FormField:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a table, got {type(raw).__name__}")
    kind = raw.get("type")
    if kind not in _BY_TYPE:
        raise ValueError(f"{where}.type: {kind!r} is not one of {', '.join(FIELD_TYPES)}")
    required, optional = _BY_TYPE[kind]
    r = _keys(raw, where, _COMMON_REQUIRED | required, _COMMON_OPTIONAL | optional)
    code = _code(r, "code", where)
    where = f"{where} ({code})"
    if code == NOTES:
        raise ValueError(f"{where}.code: {NOTES!r} is free text on every form, not a field")
    is_required = r.get("required", False)
    if type(is_required) is not bool:
        raise ValueError(f"{where}.required: expected true or false, got {is_required!r}")
    max_length: int | None = None
    low: float | None = None
    high: float | None = None
    unit = ""
    options: tuple[Option, ...] = ()
    if kind == "text":
        max_length = r["max_length"]
        if type(max_length) is not int or not 1 <= max_length <= MAX_TEXT_LENGTH:
            raise ValueError(
                f"{where}.max_length: expected a whole number in 1..{MAX_TEXT_LENGTH}, "
                f"got {max_length!r}"
            )
    elif kind in ("number", "integer"):
        low = _bound(r, "min", where, whole=kind == "integer")
        high = _bound(r, "max", where, whole=kind == "integer")
        if not low < high:
            raise ValueError(f"{where}: min {low!r} must be below max {high!r}")
        if "unit" in r:
            unit = _text(r, "unit", where)
    elif kind == "choice":
        options = _options(r["options"], f"{where}.options")
    return FormField(
        code=code,
        name=_text(r, "name", where),
        type=kind,
        required=is_required,
        max_length=max_length,
        min=low,
        max=high,
        unit=unit,
        options=options,
        note=_text(r, "note", where) if "note" in r else "",
    )


def _form(raw: object, where: str) -> Form:
    r = _keys(raw, where, {"service", "name", "source", "fields"}, {"free_text", "note"})
    service = _code(r, "service", where)
    where = f"{where} ({service})"
    free_text = r.get("free_text", True)
    if type(free_text) is not bool:
        raise ValueError(f"{where}.free_text: expected true or false, got {free_text!r}")
    if not isinstance(r["fields"], list) or not r["fields"]:
        raise ValueError(f"{where}.fields: a form needs at least one field")
    fields = tuple(_field(f, f"{where}.fields[{i}]") for i, f in enumerate(r["fields"]))
    seen: set[str] = set()
    for i, f in enumerate(fields):
        if f.code in seen:
            raise ValueError(f"{where}.fields[{i}]: field code {f.code!r} is used twice")
        seen.add(f.code)
    return Form(
        service=service,
        name=_text(r, "name", where),
        source=_text(r, "source", where),
        fields=fields,
        free_text=free_text,
        note=_text(r, "note", where) if "note" in r else "",
    )


def parse_forms(raw: object, services: set[str]) -> dict[str, Form]:
    """Forms by service, in file order. ``services`` are the service codes the plans use:
    each needs exactly one form, and a form for any other service is refused (a typo would
    otherwise leave a service unchecked). Anything malformed raises ValueError naming the place
    (``forms[2] (iud_followup).fields[1] (position).options[0].code: ...``)."""
    r = _keys(raw, "findings.toml", {"forms"}, set())
    if not isinstance(r["forms"], list) or not r["forms"]:
        raise ValueError("findings.toml: no [[forms]]")
    forms: dict[str, Form] = {}
    for i, f in enumerate(r["forms"]):
        form = _form(f, f"forms[{i}]")
        if form.service in forms:
            raise ValueError(f"forms[{i}]: service {form.service!r} has a form already")
        if form.service not in services:
            raise ValueError(
                f"forms[{i}] ({form.service}): no plan step uses service {form.service!r}"
            )
        forms[form.service] = form
    missing = sorted(services - set(forms))
    if missing:
        raise ValueError(f"findings.toml: no form for service(s) {', '.join(missing)}")
    return forms


# -- checking a record's findings --------------------------------------------------------------


def _num(x: float) -> str:
    return f"{x:g}"


def _range(f: FormField) -> str:
    unit = f" {f.unit}" if f.unit else ""
    return f"{_num(f.min or 0)}～{_num(f.max or 0)}{unit}"


def _is_number(value: object) -> bool:
    # bool is a subclass of int: true is not 1. NaN and infinities are no measurement.
    return type(value) is int or (type(value) is float and math.isfinite(value))


def _field_error(f: FormField, value: Any) -> str | None:
    """The zh message for a recorded value of ``f`` that is wrong, or None."""
    if f.type == "text":
        if not isinstance(value, str):
            return f"{f.name}应为文字"
        if f.max_length is not None and len(value) > f.max_length:
            return f"{f.name}不能超过{f.max_length}个字"
        return None
    if f.type in ("number", "integer"):
        if not _is_number(value):
            return f"{f.name}应为{'整数' if f.type == 'integer' else '数值'}"
        if f.type == "integer" and type(value) is float and not value.is_integer():
            return f"{f.name}应为整数"
        if not (f.min or 0) <= value <= (f.max or 0):
            return f"{f.name}应在{_range(f)}之间"
        return None
    if f.type == "choice":
        if not isinstance(value, str) or f.option(value) is None:
            listed = "、".join(f"{o.code}（{o.name}）" for o in f.options)
            return f"{f.name}不是可选项，可选：{listed}"
        return None
    if f.type == "boolean":
        return None if type(value) is bool else f"{f.name}应为是或否（true / false）"
    # date
    if isinstance(value, str) and _ISO_DATE.match(value):
        try:
            date.fromisoformat(value)
        except ValueError:
            pass
        else:
            return None
    return f"{f.name}应为日期（YYYY-MM-DD）"


def check_findings(form: Form, findings: dict[str, Any]) -> list[dict[str, str]]:
    """The mistakes in a visit's ``findings`` for ``form``'s service, as field errors
    ``{"field": "findings.<key>", "message": <zh>}``: the form's fields in form order, then
    keys that are not fields in the order sent. An empty list: the findings are fine."""
    errors: list[dict[str, str]] = []
    for f in form.fields:
        value = findings.get(f.code)
        if value is None:
            if f.required:
                errors.append({"field": f"findings.{f.code}", "message": f"{f.name}必须填写"})
            continue
        message = _field_error(f, value)
        if message is not None:
            errors.append({"field": f"findings.{f.code}", "message": message})
    codes = {f.code for f in form.fields}
    for key, value in findings.items():
        if key in codes or value is None:
            continue
        where = f"findings.{key}"
        if key != NOTES and not form.free_text:
            errors.append({"field": where, "message": f"“{form.name}”没有这一项"})
        elif not isinstance(value, str):
            errors.append(
                {"field": where, "message": f"表单以外的内容只能是文字（不超过{MAX_FREE_TEXT}字）"}
            )
        elif len(value) > MAX_FREE_TEXT:
            errors.append({"field": where, "message": f"备注不能超过{MAX_FREE_TEXT}个字"})
    return errors

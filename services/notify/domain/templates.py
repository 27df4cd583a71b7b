"""Message templates as data: the placeholders of a text, the check of a template before it is
saved (or seeded), and the seed file (templates.toml). Pure: no I/O.

A template's texts use ``{name}`` and ``{name|filter}`` (``routing.FILTERS``); ``{{`` and
``}}`` are literal braces. ``routing.render`` is lenient when it sends a message; this module is
strict when a template is saved, so a mistake is refused with a message in Chinese naming the
field, not found later in a resident's text message.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from services.notify.domain.routing import FILTERS

# Every text message carries the sender's signature first (the SMS gateways require it).
SMS_SIGNATURE = "【零距】"

# The longest text of each field (the ``templates`` columns).
MAX_LENGTHS = {"title": 100, "app_body": 2000, "sms_body": 500, "note": 500}
TEXT_FIELDS = ("title", "app_body", "sms_body")
FIELD_NAMES = {"title": "标题", "app_body": "站内信正文", "sms_body": "短信正文", "note": "备注"}

# A seed file's keys (short, for the county editing it) -> the template's fields.
SEED_KEYS = {"title": "title", "app": "app_body", "sms": "sms_body", "wechat": "wechat"}
SEED_OPTIONAL = {"note": "note"}

_FORMATTER = string.Formatter()


def placeholders(text: str) -> list[tuple[str, str | None]]:
    """The variables of ``text`` in order, each with its filter (or None): ``"{a}，{b|yuan}"``
    -> ``[("a", None), ("b", "yuan")]``. ``{{`` and ``}}`` are literal braces.

    Raises ValueError (in Chinese) on an unbalanced brace. Names and filters are returned as
    written (``check_template`` says which are unknown); a conversion or format spec
    (``{a!r}``, ``{a:>5}``) is kept in the name, so it is reported as an invalid name.
    """
    out: list[tuple[str, str | None]] = []
    try:
        parsed = list(_FORMATTER.parse(text))
    except ValueError as e:
        raise ValueError(_brace_message(str(e))) from e
    for _literal, field_name, spec, conversion in parsed:
        if field_name is None:
            continue
        if conversion:
            field_name += f"!{conversion}"
        if spec:
            field_name += f":{spec}"
        name, bar, filter_name = field_name.partition("|")
        out.append((name, filter_name.strip() if bar else None))
    return out


def _brace_message(error: str) -> str:
    if error.startswith("Single '}'"):
        return "花括号不配对：有多余的“}”（要写花括号本身，请写“}}”）"
    if error.startswith("unexpected '{'"):
        return "花括号不配对：变量中又有“{”（要写花括号本身，请写“{{”）"
    return "花括号不配对：有“{”没有以“}”结束（要写花括号本身，请写“{{”）"


def _error(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}


def check_text(field: str, text: str, allowed: set[str]) -> list[dict[str, str]]:
    """The placeholder errors of one text: braces, variable names, filters."""
    try:
        found = placeholders(text)
    except ValueError as e:
        return [_error(field, str(e))]
    errors: list[dict[str, str]] = []
    reported: set[str] = set()
    for name, filter_name in found:
        if name not in reported and not name.isidentifier():
            reported.add(name)
            message = (
                f"变量“{{{name}}}”写法有误：只能写 {{变量名}} 或 {{变量名|过滤器}}"
                f"（可用变量：{_listing(allowed)}）"
            )
            errors.append(_error(field, message))
        elif name not in reported and name not in allowed:
            reported.add(name)
            errors.append(_error(field, f"未知变量“{name}”（可用变量：{_listing(allowed)}）"))
        if filter_name is not None and filter_name not in FILTERS:
            shown = filter_name or "（空）"
            errors.append(
                _error(field, f"未知过滤器“{shown}”（可用过滤器：{_listing(set(FILTERS))}）")
            )
    return errors


def _listing(names: set[str]) -> str:
    return "、".join(sorted(names)) or "无"


def check_template(fields: Mapping[str, Any], allowed: set[str]) -> list[dict[str, str]]:
    """Everything wrong with a template, per field (``[{"field", "message"}]``, in Chinese);
    empty when it may be saved.

    ``fields``: title, app_body, sms_body (strings), wechat (optional: None or
    ``{"template_id": str, "fields": {name: str}}``), note (optional). ``allowed``: the
    variables its events provide.
    """
    errors: list[dict[str, str]] = []
    for key in TEXT_FIELDS:
        text = fields.get(key)
        label = FIELD_NAMES[key]
        if not isinstance(text, str):
            errors.append(_error(key, f"{label}应为文字"))
            continue
        if not text.strip():
            errors.append(_error(key, f"{label}不能为空"))
            continue
        if len(text) > MAX_LENGTHS[key]:
            errors.append(
                _error(key, f"{label}不能超过 {MAX_LENGTHS[key]} 字（现有 {len(text)} 字）")
            )
        if key == "sms_body" and not text.startswith(SMS_SIGNATURE):
            errors.append(_error(key, f"短信正文须以签名“{SMS_SIGNATURE}”开头"))
        errors.extend(check_text(key, text, allowed))
    note = fields.get("note")
    if note is not None:
        if not isinstance(note, str):
            errors.append(_error("note", "备注应为文字"))
        elif len(note) > MAX_LENGTHS["note"]:
            errors.append(_error("note", f"备注不能超过 {MAX_LENGTHS['note']} 字"))
    errors.extend(check_wechat(fields.get("wechat"), allowed))
    return errors


def check_wechat(wechat: Any, allowed: set[str]) -> list[dict[str, str]]:
    """The errors of a WeChat template message: None (no WeChat message), or
    ``{"template_id": "<the county's id, or empty>", "fields": {"first": "...", ...}}``."""
    if wechat is None:
        return []
    shape = '应为 {"template_id": "模板编号", "fields": {"first": "…", "keyword1": "…"}}'
    if not isinstance(wechat, Mapping):
        return [_error("wechat", f"微信模板消息{shape}")]
    errors: list[dict[str, str]] = []
    unknown = set(wechat) - {"template_id", "fields"}
    if unknown:
        errors.append(
            _error(
                "wechat", f"微信模板消息含未知的项：{_listing(set(map(str, unknown)))}（{shape}）"
            )
        )
    template_id = wechat.get("template_id")
    if not isinstance(template_id, str):
        errors.append(_error("wechat.template_id", "微信模板编号应为文字（未申请时填空字符串）"))
    elif len(template_id) > 100:
        errors.append(_error("wechat.template_id", "微信模板编号不能超过 100 字"))
    table = wechat.get("fields")
    if not isinstance(table, Mapping) or not table:
        errors.append(
            _error("wechat.fields", "微信模板字段应为非空的表（如 first、keyword1、remark）")
        )
        return errors
    for name, text in table.items():
        where = f"wechat.fields.{name}"
        if not isinstance(name, str) or not name.isidentifier():
            errors.append(_error("wechat.fields", f"微信模板字段名“{name}”无效"))
        elif not isinstance(text, str):
            errors.append(_error(where, f"微信模板字段“{name}”应为文字"))
        elif len(text) > 200:
            errors.append(_error(where, f"微信模板字段“{name}”不能超过 200 字"))
        else:
            errors.extend(check_text(where, text, allowed))
    return errors


def variables_used(fields: Mapping[str, Any]) -> set[str]:
    """The variable names a (valid) template's texts use, WeChat fields included."""
    texts = [fields.get(k) for k in TEXT_FIELDS]
    wechat = fields.get("wechat")
    if isinstance(wechat, Mapping) and isinstance(wechat.get("fields"), Mapping):
        texts.extend(wechat["fields"].values())
    used: set[str] = set()
    for text in texts:
        if isinstance(text, str):
            try:
                used.update(name for name, _ in placeholders(text))
            except ValueError:
                pass
    return used


def parse_seed(raw: Any, codes: Mapping[str, set[str]]) -> dict[str, dict[str, Any]]:
    """The seed file (templates.toml, as loaded) as ``{code: {title, app_body, sms_body,
    wechat, note}}``, checked whole: ``codes`` are the template codes notify uses, each with
    the variables its events provide. Refused (ValueError naming the place) if a code is
    missing, unknown, or any template is wrong (``check_template``)."""
    if not isinstance(raw, Mapping):
        raise ValueError("templates: expected a table of templates, one per code")
    unknown = sorted(set(raw) - set(codes))
    if unknown:
        raise ValueError(
            f"templates.{unknown[0]}: 未知的模板代码（路由中没有这个模板；"
            f"已知：{_listing(set(codes))}）"
        )
    missing = sorted(set(codes) - set(raw))
    if missing:
        raise ValueError(f"templates: 缺少模板 {'、'.join(missing)}（路由用到了它们）")
    out: dict[str, dict[str, Any]] = {}
    for code, allowed in codes.items():
        where = f"templates.{code}"
        entry = raw[code]
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}: expected a table (title, app, sms, wechat)")
        keys = set(SEED_KEYS) | set(SEED_OPTIONAL)
        extra = sorted(set(entry) - keys)
        if extra:
            raise ValueError(f"{where}.{extra[0]}: 未知的项（可用：{_listing(keys)}）")
        absent = sorted(set(SEED_KEYS) - {"wechat"} - set(entry))
        if absent:
            raise ValueError(f"{where}: 缺少 {'、'.join(absent)}")
        fields: dict[str, Any] = {SEED_KEYS[k]: entry.get(k) for k in SEED_KEYS}
        fields["note"] = entry.get("note")
        errors = check_template(fields, allowed)
        if errors:
            reverse = {v: k for k, v in {**SEED_KEYS, **SEED_OPTIONAL}.items()}
            first = errors[0]
            head, _, rest = first["field"].partition(".")
            place = ".".join(p for p in (reverse.get(head, head), rest) if p)
            raise ValueError(f"{where}.{place}: {first['message']}")
        out[code] = fields
    return out

"""The base of every record model, and what a reject is made of: a one-line reason and a payload.

- ``Record``: a frozen pydantic model that ignores fields it does not name (a source adding a
  field breaks nothing) and is populated by the source's own field names (aliases).
- ``validate(model, item, context)`` -> ``(record, None)`` or ``(None, reason)``: the reason is
  one line built from the model's ``ValidationError`` (every problem, located:
  ``lineItems[0].state is not one of ...``), never a traceback, at most ``REASON_MAX_CHARS``.
- ``payload(model, item)``: JSON of the fields the model names (the allow-list: the fields
  sources.md names), nested models included, so free text and customer data that a source
  sends beside them (``notes``, ``user``, names...) never reach ``recon.rejects``.
"""
from __future__ import annotations

import functools
import json
import typing
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Mapping, TypeVar

import pydantic

from pipelines.records.values import json_type

REASON_MAX_CHARS = 500
PAYLOAD_MAX_CHARS = 2000
M = TypeVar("M", bound="Record")


class Record(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore", frozen=True, populate_by_name=True,
                                       arbitrary_types_allowed=True)


def validate(model: type[M], item: Any, context: Mapping[str, Any] | None = None) -> tuple[M | None, str | None]:
    try:
        return model.model_validate(item, context=context), None
    except pydantic.ValidationError as exc:
        return None, reason(exc)


def reason(exc: pydantic.ValidationError) -> str:
    """Every problem of a validation error, in field order, as one line."""
    parts = [_problem(error) for error in exc.errors(include_url=False)]
    text = "; ".join(dict.fromkeys(parts))  # the same sentence twice (a union's arms) once
    return text if len(text) <= REASON_MAX_CHARS else text[:REASON_MAX_CHARS - 3] + "..."


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _problem(error: Mapping[str, Any]) -> str:
    kind, where, given = error["type"], _where(tuple(error["loc"])), error.get("input")
    subject = where or "record"
    if kind == "missing":
        return f"{subject} is missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{subject} is not a JSON object (a JSON {json_type(given)})"
    if kind == "list_type":
        return f"{subject} is not a list (a JSON {json_type(given)})"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"{subject} is not one of {expected}: {_shown(given)}"
    if kind == "value_error":  # our own validators: "<field> <sentence>"
        message = str(error.get("ctx", {}).get("error", error["msg"]))
        return f"{subject} {message}" if where else message
    return f"{subject}: {error['msg']}"


def _shown(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return f"a JSON {json_type(value)}"
    return repr(value[:40] if isinstance(value, str) else value)


# --------------------------------------------------------------------------- payloads

@functools.lru_cache(maxsize=None)
def allow_list(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """Source field name -> None (a value) or the allow-list of the nested model it holds (made
    once per model: a payload is computed for every delivery of the refund ledger; never mutate it)."""
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        nested = _nested_model(info.annotation)
        out[info.alias or name] = allow_list(nested) if nested is not None else None
    return out


def _nested_model(annotation: Any) -> type[pydantic.BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def allowed(item: Any, fields: Mapping[str, Any]) -> Any:
    """The allow-listed fields of a record, nested records and lists of them too; a value that
    should be a record but is not is shown as its JSON type only."""
    if isinstance(item, (list, tuple)):
        return [allowed(x, fields) for x in item]
    if not isinstance(item, Mapping):
        return {"_type": json_type(item)}
    out: dict[str, Any] = {}
    for key, nested in fields.items():
        if key not in item:
            continue
        value = item[key]
        if nested is None:
            out[key] = value if not isinstance(value, (dict, list)) else {"_type": json_type(value)}
        else:
            out[key] = allowed(value, nested)
    return out


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def payload(model: type[pydantic.BaseModel], item: Any) -> str:
    """JSON of the allow-listed fields of a source record, at most ``PAYLOAD_MAX_CHARS``."""
    return json.dumps(allowed(item, allow_list(model)), default=_default, ensure_ascii=False)[:PAYLOAD_MAX_CHARS]

"""The pieces every layer's config model is built from: one error type that names the key, strict models,
CIDRs, and pydantic's errors translated into one line that names the key, the value and what is allowed."""

from __future__ import annotations

import ipaddress
import json
import re
import typing
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import pulumi
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    ValidationError,
)
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo

from .stack_file import MAX_DEPTH

NAMESPACE = "pixelstream"
# Kubernetes stores replica counts as int32.
INT32_MAX = 2**31 - 1


class ConfigError(pulumi.RunError):
    """A stack config value is invalid. The message names the key path, the value and what is allowed."""

    def __init__(self, path: str, message: str, namespace: str = NAMESPACE) -> None:
        self.path, self.message, self.namespace = path, message, namespace
        super().__init__(f"{namespace}:{path}: {message}")

    def without(self, secrets: Collection[str]) -> ConfigError:
        """The same error with every secret's text in its message replaced by a placeholder."""
        message = redact(self.message, secrets)
        return self if message == self.message else ConfigError(self.path, message, self.namespace)


# What a message says in place of a value it must not repeat.
NOT_SHOWN = "(secret, not shown)"
# A secret shorter than this is replaced only where it stands as a whole word (so "7" spares "v1.27").
_WHOLE_WORD_BELOW = 8
# A key path pattern: its parts are keys, or "*" for any index of a list.
KeyPattern = tuple[str, ...]


def redact(text: str, secrets: Collection[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= _WHOLE_WORD_BELOW:
            text = text.replace(secret, NOT_SHOWN)
        elif secret:
            text = re.sub(rf"(?<![\w.]){re.escape(secret)}(?![\w.])", NOT_SHOWN, text)
    return text


def matches(path: Sequence[str | int], pattern: KeyPattern) -> bool:
    """Whether `path` is exactly a key `pattern` names."""
    return len(path) == len(pattern) and all(
        isinstance(k, int) if p == "*" else p == k for p, k in zip(pattern, path, strict=True)
    )


def under(path: Sequence[str | int], pattern: KeyPattern) -> bool:
    """Whether `path` is at or inside the key `pattern` names (its list, for a pattern of the list's items)."""
    while pattern and pattern[-1] == "*":
        pattern = pattern[:-1]
    return len(path) >= len(pattern) and all(p == "*" or p == k for p, k in zip(pattern, path, strict=False))


def show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def valid_cidr(value: str) -> str:
    try:
        network = ipaddress.IPv4Network(value, strict=False)
    except ValueError:
        raise ValueError(f"{show(value)} is not an IPv4 CIDR such as 10.0.0.0/16") from None
    if str(network) != value:
        raise ValueError(f"{value} has host bits set; did you mean {network}?")
    return value


Cidr = Annotated[str, AfterValidator(valid_cidr)]


@dataclass(frozen=True)
class Range:
    """The values a number may take, as metadata of its type (`Annotated[int, Range(1, 1440)]`). The layer that
    owns the key refuses anything outside with check_ranges, where it checks its keys (a workload's only while it
    is enabled), and the configuration reference (tools/configref) shows the same bounds."""

    low: int | float
    high: int | float
    unit: str = ""
    why: str = ""

    def __str__(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        why = f" ({self.why})" if self.why else ""
        return f"{_number(self.low)}-{_number(self.high)}{unit}{why}"


def ranges_of(field: FieldInfo) -> list[Range]:
    """The Ranges of a field: in its metadata, or inside its Optional."""
    inner = [m for arg in typing.get_args(field.annotation) for m in getattr(arg, "__metadata__", ())]
    return [m for m in (*field.metadata, *inner) if isinstance(m, Range)]


def check_ranges(model: BaseModel, path: str) -> None:
    """Every number in `model` (a section of the stack config at key `path`) and the sections, lists and maps inside
    it, within its Range."""
    for name, field in type(model).model_fields.items():
        key, value = f"{path}.{field.alias or name}", getattr(model, name)
        for bounds in ranges_of(field):
            if value is not None and not bounds.low <= value <= bounds.high:
                raise ConfigError(key, f"{_number(value)} is outside {bounds}")
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for index, item in items:
            if isinstance(item, BaseModel):
                check_ranges(item, f"{key}[{index}]" if isinstance(index, int) else f"{key}.{index}")
        if isinstance(value, BaseModel):
            check_ranges(value, key)


def _number(value: int | float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


# An allow-list entry wider than a /8 (16.7 million addresses) lets in the internet in all but name.
WIDEST_ALLOW_LIST_PREFIX = 8


def world_wide(cidr: str) -> bool:
    """Whether an allow-list entry is wider than any network a person would name (a /8)."""
    return ipaddress.ip_network(cidr, strict=False).prefixlen < WIDEST_ALLOW_LIST_PREFIX


class ConfigModel(BaseModel):
    # Strict: `true` is not 1 and 1.0 is not a whole number, as a reviewer reading the stack file would expect.
    # Attribute docstrings become the fields' descriptions: the generated configuration reference (tools/configref).
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        strict=True,
        use_attribute_docstrings=True,
    )


def depth(value: Any, limit: int = MAX_DEPTH + 1) -> int:
    """How deep `value` nests, counted no further than `limit` (so a hostile value costs nothing)."""
    if limit <= 0 or not isinstance(value, dict | list):
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((depth(child, limit - 1) for child in children), default=0)


def check_unique(path: str, values: Sequence[Any]) -> None:
    for index, value in enumerate(values):
        if value in values[:index]:
            raise ConfigError(f"{path}[{index}]", f"{show(value)} is listed twice (first at [{values.index(value)}])")


_TYPE_WORDS = {
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "model_type": "a mapping of keys",
    "model_attributes_type": "a mapping of keys",
    "dict_type": "a mapping of keys",
}


def _model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        fields = {f.alias or n: f for n, f in model.model_fields.items()}
        annotation = fields[part].annotation if part in fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _unknown_key(root: type[BaseModel], loc: Sequence[str | int]) -> str:
    """What to say of a key the model at `loc`'s parent does not have: why it went, if it was removed (the
    model's REMOVED_KEYS), and the keys allowed there."""
    model = _model_at(root, loc[:-1])
    if model is None:
        return "unknown key"
    removed = getattr(model, "REMOVED_KEYS", {}).get(loc[-1])
    allowed = ", ".join(f.alias or n for n, f in model.model_fields.items())
    return f"{removed}; allowed here: {allowed}" if removed else f"unknown key; allowed here: {allowed}"


def translate(
    error: ValidationError,
    root: type[BaseModel],
    credentials: Collection[KeyPattern] = (),
    secrets: Collection[str] = (),
) -> ConfigError:
    """One line for pydantic's first error; a value at or inside a `credentials` key, or holding one of
    `secrets`, is never shown."""
    first = error.errors()[0]
    loc = [p for p in first["loc"]]
    path = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in loc).replace(".[", "[")
    kind, value = first["type"], first.get("input")
    if any(under(loc, pattern) for pattern in credentials) or redact(show(value), secrets) != show(value):
        value = NOT_SHOWN
    if kind == "missing":
        hint = " (pulumi config set compartmentId <compartment OCID>)" if path == "compartmentId" else ""
        message = f"is required{hint}"
    elif kind == "extra_forbidden":
        message = _unknown_key(root, loc)
    elif kind == "literal_error":
        message = f"{show(value)} is not allowed; use one of {first['ctx']['expected']}"
    elif kind in _TYPE_WORDS:
        message = f"{show(value)} is not {_TYPE_WORDS[kind]}"
    elif kind == "value_error":
        message = str(first["ctx"]["error"])
    else:
        message = f"{show(value)}: {first['msg']}"
    more = len(error.errors()) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return ConfigError(path, message).without(secrets)

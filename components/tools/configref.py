"""python -m pixelstream.tools.configref: the configuration reference, generated from the config models.

Every key a stack file may set under `pixelstream:`, its type (the values a choice allows), its default and the
model's own docstring for it, one table per top-level key, into docs/configuration.md. The checks a plan makes
beyond a key's type (ranges, cross-key rules) live in each layer's config module and name the key when they
refuse a value; the reference says where. `--check` compares the committed file with what the models give and
fails when they differ, so a model change changes the docs.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from ..config import StackConfig
from ..config_base import Cidr
from .generated import generate_or_check

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "configuration.md"
HEADER = """# Configuration reference

Generated from the config models (`components/**/config.py`) by `python -m pixelstream.tools.configref`; do not
edit: change the model's field or its docstring and run it again (a test fails while this file differs). Every key
is under the stack file's `pixelstream:` namespace; `<name>` stands for a key you choose, `[]` for a list's items.
A plan checks more than a key's type (ranges, rules across keys): its error names the key, the problem and what is
allowed.
"""


# Types with a validator of their own, by what they accept.
NAMED_TYPES: dict[Any, str] = {Cidr: "IPv4 CIDR"}


def type_name(annotation: Any) -> str:
    """A field's type as a reader names it."""
    if annotation in NAMED_TYPES:
        return NAMED_TYPES[annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        present = [a for a in args if a is not type(None)]
        named = " or ".join(type_name(a) for a in present)
        return f"{named} (optional)" if len(present) < len(args) else named
    if origin is list:
        return f"list of {type_name(args[0])}"
    if origin is dict:
        return f"map of {type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "the keys below"
    return {str: "string", int: "int", float: "number", bool: "bool", Any: "any value"}.get(annotation, str(annotation))


def _model_in(annotation: Any) -> tuple[type[BaseModel], str] | None:
    """The model a field holds, and how its keys continue: `.` (a section), `[].` (a list of them), `.<name>.`
    (a map of them)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, "."
    if origin in (typing.Union, types.UnionType):
        models = [m for m in (_model_in(a) for a in args if a is not type(None)) if m]
        return models[0] if len(models) == 1 else None
    if origin is list and _model_in(args[0]):
        return _model_in(args[0])[0], "[]."
    if origin is dict and _model_in(args[1]):
        return _model_in(args[1])[0], ".<name>."
    return None


def default_text(field: FieldInfo) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.default_factory() if field.default_factory else field.default
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return ""
    return f"`{json.dumps(value)}`"


def rows(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str, str, str]]:
    """(key, type, default, description) of every key of `model` and of the models inside it, in field order."""
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        description = _cell(" ".join((field.description or "").split()))
        nested = _model_in(field.annotation)
        if nested and nested[1] == ".":
            if description:
                yield key, "the keys below", "", description
            yield from rows(nested[0], key + ".")
            continue
        yield key, type_name(field.annotation), default_text(field), description
        if nested:
            yield from rows(nested[0], key + nested[1])


def _cell(text: str) -> str:
    """Text for a table cell: pipes escaped, and angle brackets outside code spans (an HTML tag to a renderer)."""
    parts = text.replace("|", "\\|").split("`")
    for index in range(0, len(parts), 2):
        parts[index] = parts[index].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def reference() -> str:
    sections: dict[str, list[tuple[str, str, str, str]]] = {}
    for row in rows(StackConfig):
        section = row[0].split(".")[0].split("[")[0]
        nested = "." in row[0] or "[" in row[0] or row[1] == "the keys below"
        sections.setdefault(section if nested else "the stack", []).append(row)
    lines = [HEADER]
    for section, entries in sections.items():
        title = section if section == "the stack" else f"`{section}`"
        lines += [f"## {title}", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        lines += [f"| `{key}` | {type_} | {default} | {doc} |" for key, type_, default, doc in entries]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    description = __doc__.split("\n")[0]
    return generate_or_check(
        "python -m pixelstream.tools.configref", description, REFERENCE, reference, "the config models", argv
    )


if __name__ == "__main__":
    sys.exit(main())

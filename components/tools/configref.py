"""python -m pixelstream.tools.configref: the configuration reference, generated from the config models.

Every key a stack file may set under `pixelstream:`, its type (the values a choice allows), its default and the
model's own docstring for it, one table per top-level key, into docs/configuration.md. The checks a plan makes
beyond a key's type (ranges, cross-key rules) live in each layer's config module and name the key when they
refuse a value; the reference says where. `--check` compares the committed file with what the models give and
fails when they differ, so a model change changes the docs.
"""

from __future__ import annotations

import json
import re
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
from ..config_base import Cidr, Range
from ..oci.cluster import KUBERNETES_VERSIONS
from ..oci.existing_config import EXISTING_MINORS
from ..oci.shapes import FLEX_SHAPES, GPU_SHAPES
from .generated import generate_or_check

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "configuration.md"
HEADER = """# Configuration reference

Every key a stack file may set, generated from the config models (`components/**/config.py`) by
`python -m pixelstream.tools.configref`; do not edit: change the model's field or its docstring and run it again
(a test fails while this file differs).

All keys live in the `pixelstream` namespace (`pixelstream:<key>` in the stack files;
`pulumi config set --path 'nodePools.gpu.size' 2` sets one nested value); the OCI provider's own keys
(`oci:region`, ...) configure the provider. Only `compartmentId` is required. `<name>` stands for a key you choose,
`[]` for a list's items. The type says the range a number may take; a plan checks more (rules across keys), and
its error names the key, the problem and what is allowed, before anything is declared.

<!-- runnable -->
```sh
python -m pixelstream.tools.configref --check
```
"""


# A docstring's link to a documentation page, `[text](docs/page.md#anchor)`: on the site, pages are siblings.
DOCS_LINK = re.compile(r"\]\(docs/([a-z0-9-]+\.md(#[a-z0-9-]+)?)\)")
# Types with a validator of their own, by what they accept.
NAMED_TYPES: dict[Any, str] = {Cidr: "IPv4 CIDR"}


def type_name(annotation: Any) -> str:
    """A field's type as a reader names it."""
    if annotation in NAMED_TYPES:
        return NAMED_TYPES[annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        ranges = [str(m) for m in annotation.__metadata__ if isinstance(m, Range)]
        return ", ".join([type_name(args[0]), *ranges])
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


def nested_model(annotation: Any) -> tuple[type[BaseModel], str] | None:
    """The model a field holds, and how its keys continue: `.` (a section), `[].` (a list of them), `.<name>.`
    (a map of them)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, "."
    if origin in (typing.Union, types.UnionType):
        models = [m for m in (nested_model(a) for a in args if a is not type(None)) if m]
        return models[0] if len(models) == 1 else None
    if origin is list and nested_model(args[0]):
        return nested_model(args[0])[0], "[]."
    if origin is dict and nested_model(args[1]):
        return nested_model(args[1])[0], ".<name>."
    return None


def annotated(field: FieldInfo) -> Any:
    """A field's type with the metadata pydantic took out of it (a Cidr's validator, a Range)."""
    return typing.Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation


# What a field without a default shows.
REQUIRED = object()


def default_of(field: FieldInfo) -> Any:
    if field.default is PydanticUndefined and field.default_factory is None:
        return REQUIRED
    return field.default_factory() if field.default_factory else field.default


def default_text(value: Any) -> str:
    if value is REQUIRED:
        return "required"
    if value is None:
        return "unset"
    return f"`{json.dumps(value)}`"


def rows(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str, str, str]]:
    """(key, type, default, description) of every key of `model` and of the models inside it, in field order. A
    section's row says what its field's docstring and its model's own docstring say."""
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        nested = nested_model(field.annotation)
        section = nested[0].__dict__.get("__doc__") if nested else None
        description = _cell(" ".join(f"{described(model, name)} {section or ''}".split()))
        if nested and nested[1] == ".":
            if description:
                yield key, "the keys below", "", description
            yield from rows(nested[0], key + ".")
            continue
        yield key, type_name(annotated(field)), default_text(default_of(field)), description
        if nested:
            yield from rows(nested[0], key + nested[1])


def described(model: type[BaseModel], name: str) -> str:
    """A field's docstring, or the one it has in the model it was inherited from (a subclass that gives a field
    another default keeps its meaning)."""
    for base in model.__mro__:
        field = getattr(base, "__pydantic_fields__", {}).get(name)
        if field is not None and field.description:
            return field.description
    return ""


def _cell(text: str) -> str:
    """Text for a table cell: pipes escaped; outside code spans, angle brackets escaped (an HTML tag to a renderer)
    and links to documentation pages made relative to the site's pages."""
    parts = text.replace("|", "\\|").split("`")
    for index in range(0, len(parts), 2):
        escaped = parts[index].replace("<", "&lt;").replace(">", "&gt;")
        parts[index] = DOCS_LINK.sub(r"](\1)", escaped)
    return "`".join(parts)


def shapes() -> list[str]:
    """The shapes nodePools.<pool>.shape accepts (components/oci/shapes.py), and what each can do."""
    lines = [
        "## Shapes",
        "",
        "The shapes `nodePools.<pool>.shape` accepts, from `components/oci/shapes.py`. Flexible shapes take `ocpus` "
        "and `memoryGbs` (between the smallest and largest memory per OCPU); the GPU pool takes a GPU shape with a "
        "hardware video encoder (NVENC), the other pools no GPU shape.",
        "",
        "| shape | kind | most OCPUs | most memory (GB) | memory per OCPU (GB) | architecture |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| `{s.name}` | flexible | {s.max_ocpus} | {s.max_memory_gbs} | "
        f"{s.min_memory_per_ocpu_gbs}-{s.max_memory_per_ocpu_gbs} | {s.arch} |"
        for s in FLEX_SHAPES.values()
    ]
    lines += [
        "",
        "| shape | GPUs | GPU memory (GB) | NVENC: streams | RT cores | OCPUs | memory (GB) | architecture |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| `{s.name}` | {s.gpus} x {s.gpu_model} | {_known(s.gpu_memory_gbs)} | {_yes(s.nvenc)} | "
        f"{_yes(s.ray_tracing)} | {_known(s.ocpus)} | {_known(s.memory_gbs)} | {s.arch} |"
        for s in GPU_SHAPES.values()
    ]
    return [*lines, ""]


def versions() -> list[str]:
    """The Kubernetes versions cluster.kubernetesVersion accepts."""
    oke = ", ".join(f"`{v}`" for v in KUBERNETES_VERSIONS)
    first, last = EXISTING_MINORS.start, EXISTING_MINORS.stop - 1
    return [
        "## Kubernetes versions",
        "",
        f"`cluster.kubernetesVersion` on OKE (`KUBERNETES_VERSIONS` in `components/oci/cluster.py`, the versions OKE "
        f"offers): {oke}. On an existing cluster: its own version, v1.{first}.x to v1.{last}.x.",
        "",
    ]


def _known(value: int | None) -> str:
    return "" if value is None else str(value)


def _yes(value: bool) -> str:
    return "yes" if value else "no"


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
    return "\n".join([*lines, *shapes(), *versions()])


def main(argv: list[str] | None = None) -> int:
    description = __doc__.split("\n")[0]
    return generate_or_check(
        "python -m pixelstream.tools.configref", description, REFERENCE, reference, "the config models", argv
    )


if __name__ == "__main__":
    sys.exit(main())

"""Secret config values keep their secret marking wherever they end up.

Pulumi hands a program structured config as plain JSON and only says which top-level keys hold a secret. The
stack file says which leaves were `secure:`; where it cannot be read, every leaf of a secret key counts as
secret (more than needed, never less). Every resource input that carries one of those values, and every
stack output, is then marked secret: in the preview, the state and the offline plan it shows as "[secret]".
As everywhere in Pulumi, secrecy is per top-level input: a secret inside a Helm release's `values` hides
that release's whole `values`, and nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path as FilePath
from typing import Any

import pulumi
import yaml

from .stack_file import KeyPath, StackFileError, read_stack_file, secure_paths

Path = KeyPath
# Where the stack's settings file is, when it is not `<stackConfigDir>/Pulumi.<stack>.yaml` next to Pulumi.yaml.
STACK_FILE_ENV = "PIXELSTREAM_STACK_FILE"
# A secret shorter than this is matched only as a whole value, not inside longer strings (a URL with a host).
MIN_SUBSTRING = 8


def leaves(value: Any, path: Path = ()) -> list[Path]:
    if isinstance(value, Mapping):
        return [p for key, item in value.items() for p in leaves(item, (*path, key))]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in leaves(item, (*path, index))]
    return [path]


def at(value: Any, path: Path) -> Any:
    for part in path:
        value = value[part]
    return value


def stack_file_path(stack: str) -> FilePath | None:
    """The stack's settings file: from STACK_FILE_ENV, or beside the nearest Pulumi.yaml above the working
    directory (Pulumi runs the program from the project or its `main` folder)."""
    explicit = os.environ.get(STACK_FILE_ENV)
    if explicit:
        return FilePath(explicit)
    for directory in [FilePath.cwd(), *FilePath.cwd().parents]:
        project = directory / "Pulumi.yaml"
        if project.is_file():
            settings = yaml.safe_load(project.read_text()) or {}
            candidate = directory / settings.get("stackConfigDir", ".") / f"Pulumi.{stack}.yaml"
            return candidate if candidate.is_file() else None
    return None


def secret_paths(namespace: str, secret_keys: Iterable[str], raw: Mapping[str, Any], stack: str) -> list[Path]:
    """The leaves of `raw` (this namespace's config) that hold secrets: the stack file's `secure:` leaves of each
    secret key, or every leaf of a secret key the stack file does not explain."""
    file = stack_file_path(stack)
    declared: dict[str, Any] = {}
    if file is not None and file.is_file():
        try:
            declared = read_stack_file(file)
        except StackFileError:
            declared = {}
    found: list[Path] = []
    for key in secret_keys:
        value = declared.get(f"{namespace}:{key}", declared.get(key))
        paths = secure_paths(value) if value is not None else []
        found += [(key, *p) for p in paths] if paths else [(key, *p) for p in leaves(raw.get(key))]
    return found


def secret_values(raw: Mapping[str, Any], paths: Iterable[Path]) -> frozenset[str]:
    """The plain-text values at `paths` (the first part a top-level key of `raw`) that are worth hiding."""
    found = set()
    for path in paths:
        try:
            value = at(raw, path)
        except (KeyError, IndexError, TypeError):
            continue
        if isinstance(value, str | int | float) and not isinstance(value, bool) and str(value):
            found.add(str(value))
    return frozenset(found)


def carries(value: Any, secrets: Collection[str]) -> bool:
    """Whether a plain value holds one of the secrets, as a whole or (for long secrets) inside a string."""
    if isinstance(value, Mapping):
        return any(carries(v, secrets) for v in value.values())
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return any(carries(v, secrets) for v in value)
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        text = str(value)
        return text in secrets or any(len(s) >= MIN_SUBSTRING and s in text for s in secrets)
    return False


def _protect_inputs(props: Mapping[str, Any], secrets: Collection[str]) -> dict[str, Any] | None:
    # Pulumi keeps secrets per top-level input (a secret inside `values` makes all of `values` secret): so do we.
    changed = {key: pulumi.Output.secret(value) for key, value in props.items() if carries(value, secrets)}
    return {**props, **changed} if changed else None


def protect_resources(secrets: Collection[str]) -> None:
    """Mark secret every input of every resource declared from now on that carries one of `secrets`."""
    if not secrets:
        return

    def transformation(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        props = _protect_inputs(args.props, secrets)
        return pulumi.ResourceTransformationResult(props, args.opts) if props is not None else None

    pulumi.runtime.register_stack_transformation(transformation)


def protected(value: Any, secrets: Collection[str]) -> Any:
    """`value` (plain or an Output) as a secret Output when it carries one of `secrets`."""
    if not secrets:
        return value
    return pulumi.Output.from_input(value).apply(
        lambda plain: pulumi.Output.secret(plain) if carries(plain, secrets) else plain
    )

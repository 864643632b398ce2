"""Reading a `Pulumi.<stack>.yaml` the way Pulumi does, with one clear error for anything it would not take.

Bounded: a document nested deeper than MAX_DEPTH or whose aliases would expand past MAX_NODES is refused
before anything walks it, so no stack file can hang or exhaust the plan.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml

MAX_DEPTH = 64
MAX_NODES = 100_000
# The top-level keys of a Pulumi stack settings file.
STACK_FILE_KEYS = ("config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment")
# Config namespaces a stack of this project uses besides its own: the providers it runs.
PROVIDER_NAMESPACES = ("oci", "kubernetes", "random", "pulumi")


# A key path inside a config value: mapping keys and list indexes.
KeyPath = tuple[str | int, ...]
SECRET_PLACEHOLDER = "offline-secret-value"
# Tenancy-specific values that stack files leave to each user; the offline plan stands in for them.
OFFLINE_PLACEHOLDERS = {"compartmentId": "ocid1.compartment.oc1..offlineplan"}


class StackFileError(pulumi.RunError):
    """A stack file that Pulumi would not read, or that says something other than what its author meant."""


class _BoundedLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys, deep nesting and alias bombs."""

    def compose_document(self) -> yaml.Node:
        node = super().compose_document()
        _check_size(node)
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise yaml.MarkedYAMLError(problem="a key must be a plain value", problem_mark=key_node.start_mark)
            if key in seen:
                line = seen[key].start_mark.line + 1
                raise yaml.MarkedYAMLError(
                    problem=f"duplicate key {key!r} (first at line {line}): the last one would win silently",
                    problem_mark=key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _check_size(root: yaml.Node) -> None:
    """Depth and expanded size of the node graph, counting each alias as a full copy (what a walk would see)."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise yaml.MarkedYAMLError(problem=f"nested deeper than {MAX_DEPTH} levels", problem_mark=node.start_mark)
        if id(node) in sizes:
            return sizes[id(node)]
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        total = 1
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_NODES:
                raise yaml.MarkedYAMLError(
                    problem=f"expands to more than {MAX_NODES} values (aliases count once per use)",
                    problem_mark=node.start_mark,
                )
        sizes[id(node)] = total
        return total

    if root is not None:
        size(root, 0)


def _location(path: Path, error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"{where}: {problem}"


def read_stack_file(path: Path) -> dict[str, Any]:
    """The stack file's `config:` mapping (empty for an empty file). Raises StackFileError with file and line."""
    try:
        text = path.read_text()
    except OSError as error:
        raise StackFileError(f"{path}: cannot read: {error.strerror}") from None
    try:
        document = yaml.load(text, Loader=_BoundedLoader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as error:
        raise StackFileError(_location(path, error)) from None
    except RecursionError:
        raise StackFileError(f"{path}: nested deeper than {MAX_DEPTH} levels") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise StackFileError(f"{path}: is a YAML {type(document).__name__}; a stack file is a mapping with config:")
    for key in document:
        if key not in STACK_FILE_KEYS:
            close = _close(str(key), STACK_FILE_KEYS)
            hint = f"did you mean {close!r}?" if close else f"allowed: {', '.join(STACK_FILE_KEYS)}"
            raise StackFileError(f"{path}: unknown top-level key {key!r}; {hint}")
    config = document.get("config")
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise StackFileError(f"{path}: config: is a {type(config).__name__}; it must map keys to values")
    return config


def check_namespaces(config: dict[str, Any], project: str, path: Path) -> None:
    """Keys of a namespace that is not the project's or a provider's, but looks like a typo of one."""
    known = (project, *PROVIDER_NAMESPACES)
    for key in config:
        if not isinstance(key, str):
            raise StackFileError(f"{path}: config key {key!r} is not a string")
        namespace = key.split(":", 1)[0] if ":" in key else project
        close = _close(namespace, known) if namespace not in known else None
        if close:
            raise StackFileError(f"{path}: config key {key}: unknown namespace {namespace!r}; did you mean {close!r}?")


def _close(word: str, choices: tuple[str, ...]) -> str | None:
    """The choice `word` is most likely a typo of, if any."""
    matches = difflib.get_close_matches(word, choices, n=1, cutoff=0.75)
    return matches[0] if matches else None


# A kubeconfig the offline plan stands in for an encrypted one: it names no real cluster or credential.
OFFLINE_KUBECONFIG = yaml.safe_dump(
    {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "offline", "cluster": {"server": "https://offline-secret.invalid:6443"}}],
        "users": [{"name": "offline", "user": {"token": SECRET_PLACEHOLDER}}],
        "contexts": [{"name": "offline", "context": {"cluster": "offline", "user": "offline"}}],
        "current-context": "offline",
    }
)
# IPSec pre-shared keys take letters, digits and spaces only.
OFFLINE_SHARED_SECRET = "offlineSecretValue"
# Placeholders for encrypted values, valid for their key so the plan can go on; any other key gets the default.
SECRET_PLACEHOLDERS = {
    "cluster.existing.kubeconfig": OFFLINE_KUBECONFIG,
    "network.onPremises.sharedSecrets[0]": OFFLINE_SHARED_SECRET,
    "network.onPremises.sharedSecrets[1]": OFFLINE_SHARED_SECRET,
    "compartmentId": "ocid1.compartment.oc1..offlinesecret",
    "streaming.ingress.host": "offline-secret.example.com",
    "addons.certManager.email": "offline-secret@example.com",
    "addons.monitoring.alertReceiver.url": f"https://alerts.offline.invalid/{SECRET_PLACEHOLDER}",
}


def secure_paths(value: Any, path: KeyPath = ()) -> list[KeyPath]:
    """Where a stack-file value holds `secure:` ciphertexts."""
    if isinstance(value, Mapping):
        if set(value) == {"secure"}:
            return [path]
        return [p for key, item in value.items() for p in secure_paths(item, (*path, key))]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in secure_paths(item, (*path, index))]
    return []


def _dotted(path: KeyPath) -> str:
    return ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path).replace(".[", "[")


def _with_placeholders(value: Any, paths: list[KeyPath], key: str) -> Any:
    """A stack-file value with each `secure:` leaf replaced by a placeholder that is valid for its key."""
    if not paths:
        return value
    copy = json.loads(json.dumps(value))
    for path in paths:
        placeholder = SECRET_PLACEHOLDERS.get(_dotted((key, *path)), SECRET_PLACEHOLDER)
        if not path:
            return placeholder
        parent = copy
        for part in path[:-1]:
            parent = parent[part]
        parent[path[-1]] = placeholder
    return copy


@dataclass
class StackSettings:
    """A stack file as the engine passes it to the program, and what the offline plan had to stand in for."""

    values: dict[str, str]
    """`namespace:key` -> value (structured values as JSON)."""
    secret_keys: list[str]
    encrypted: list[str]
    """Every `secure:` value, as `namespace:key.path`."""


def read_stack_config(path: Path, project: str) -> StackSettings:
    """Config of a `Pulumi.<stack>.yaml` as the engine passes it, with placeholders for encrypted values."""
    config = read_stack_file(path)
    check_namespaces(config, project, path)
    settings = StackSettings({}, [], [])
    for key, raw in config.items():
        full_key = key if ":" in key else f"{project}:{key}"
        namespace, name = full_key.split(":", 1)
        encrypted = secure_paths(raw)
        # Placeholders by key only for this project's keys; a provider's encrypted key gets the default one.
        value = _with_placeholders(raw, encrypted, name if namespace == project else f":{name}")
        settings.values[full_key] = value if isinstance(value, str) else json.dumps(value)
        if encrypted:
            settings.secret_keys.append(full_key)
            settings.encrypted += [f"{namespace}:{_dotted((name, *p))}" for p in encrypted]
    return settings

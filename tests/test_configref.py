"""The generated configuration reference: every key of the config models with its type, default and docstring,
and the committed docs/configuration.md what the models give today."""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal

import pytest
from conftest import COMPARTMENT
from pydantic import BaseModel, Field

from pixelstream.config import StackConfig
from pixelstream.config_base import Cidr, ConfigError, ConfigModel, Range, check_ranges, ranges_of
from pixelstream.oci.cluster import KUBERNETES_VERSIONS
from pixelstream.oci.shapes import FLEX_SHAPES, GPU_SHAPES
from pixelstream.tools.configref import REFERENCE, main, nested_model, reference, rows


class Inner(ConfigModel):
    port: int = 8080
    """Where it listens."""


class Sized(Inner):
    """A listener with a size: the base's port keeps its docstring."""

    port: int = 9090
    size: Annotated[int, Range(50, 32768, "GB", "a block volume's")] = 50


class Outer(ConfigModel):
    mode: Literal["fast", "safe"] = "safe"
    """How it runs | carefully."""
    name: str
    inner: Inner = Inner()
    """Its listener."""
    items: list[Inner] = Field(default_factory=list)
    by_name: dict[str, Inner] = Field(default_factory=dict)
    cidr_list: list[str] = Field(default_factory=lambda: ["10.0.0.0/8"])
    maybe: int | None = None
    """A count <n>, or `<unset>` ([how many](docs/capacity.md#a-count)); `docs/capacity.md` in code stays."""
    network: Cidr = "10.0.0.0/16"
    sized: Sized = Sized()
    """The sized one."""
    shares: Annotated[int, Range(1, 64)] | None = None


def test_every_key_of_a_model_with_its_type_default_and_docstring() -> None:
    assert list(rows(Outer)) == [
        ("mode", "`fast` \\| `safe`", '`"safe"`', "How it runs \\| carefully."),
        ("name", "string", "required", ""),
        ("inner", "the keys below", "", "Its listener."),
        ("inner.port", "int", "`8080`", "Where it listens."),
        ("items", "list of the keys below", "`[]`", ""),
        ("items[].port", "int", "`8080`", "Where it listens."),
        ("byName", "map of the keys below", "`{}`", ""),
        ("byName.<name>.port", "int", "`8080`", "Where it listens."),
        ("cidrList", "list of string", '`["10.0.0.0/8"]`', ""),
        (
            "maybe",
            "int (optional)",
            "unset",
            "A count &lt;n&gt;, or `<unset>` ([how many](capacity.md#a-count)); `docs/capacity.md` in code stays.",
        ),
        ("network", "IPv4 CIDR", '`"10.0.0.0/16"`', ""),
        ("sized", "the keys below", "", "The sized one. A listener with a size: the base's port keeps its docstring."),
        ("sized.port", "int", "`9090`", "Where it listens."),
        ("sized.size", "int, 50-32768 GB (a block volume's)", "`50`", ""),
        ("shares", "int, 1-64 (optional)", "unset", ""),
    ]


def test_check_ranges_refuses_what_is_outside_in_the_words_the_reference_shows() -> None:
    check_ranges(Outer(name="a", shares=64, sized={"size": 32768}), "outer")
    for model, path, words in (
        (Outer(name="a", shares=0), "outer.shares", "0 is outside 1-64"),
        (Outer(name="a", shares=65), "outer.shares", "65 is outside 1-64"),
        (Outer(name="a", sized={"size": 49}), "outer.sized.size", "49 is outside 50-32768 GB (a block volume's)"),
    ):
        with pytest.raises(ConfigError) as refused:
            check_ranges(model, "outer")
        assert (refused.value.path, refused.value.message) == (path, words)


def _ranged_keys(model: type[BaseModel], prefix: str = "") -> typing.Iterator[tuple[str, Range]]:
    """Every key whose number has a Range, as the reference names it (`[]` a list's items, `<name>` a map's)."""
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        yield from ((key, bounds) for bounds in ranges_of(field))
        nested = nested_model(field.annotation)
        if nested:
            yield from _ranged_keys(nested[0], key + nested[1])


RANGED = list(_ranged_keys(StackConfig))
# What a key needs around it to be checked: its workload on, and the required keys of a list's or a map's item.
AROUND = {
    "simulation": {"enabled": True},
    "aiWorkers": {"enabled": True},
    "jobs": {"enabled": True},
    "streaming.builds": {"name": "main", "image": "registry.example/game:1.0"},
    "streaming.capacity.schedules": {"name": "launch", "start": "0 9 * * *", "end": "0 18 * * *"},
    "jobs.types": {"image": "registry.example/job:1.0"},
}


def _setting(key: str, value: Any) -> tuple[dict[str, Any], str]:
    """The stack config that sets reference key `key` to `value` (a list's first item, a map's item `a`), and the
    key path its error names."""
    root: dict[str, Any] = {}
    node, path, parts = root, "", key.replace(".<name>", "<name>").split(".")
    for index, part in enumerate(parts):
        name = part.removesuffix("[]").removesuffix("<name>")
        path += ("." if path else "") + name
        if index == len(parts) - 1:
            node[name] = value
            break
        child = dict(AROUND.get(path, {}))
        if part.endswith("[]"):
            node[name], path = [child], path + "[0]"
        elif part.endswith("<name>"):
            node[name], path = {"a": child}, path + ".a"
        else:
            node[name] = child
        node = child
    return root, path


@pytest.mark.parametrize(("key", "bounds"), RANGED, ids=[key for key, _ in RANGED])
def test_every_ranged_key_is_refused_just_outside_its_range_and_says_so(key: str, bounds: Range) -> None:
    """What the reference says a number may take is what a plan refuses beyond, one past each end, naming the key
    (inside a list, the item)."""
    assert f"| `{key}` | int, {bounds}" in reference()
    for value in (bounds.low - 1, bounds.high + 1):
        setting, path = _setting(key, value)
        with pytest.raises(ConfigError) as refused:
            StackConfig.parse({"compartmentId": COMPARTMENT, **setting})
        assert (refused.value.path, refused.value.message) == (path, f"{value} is outside {bounds}")


def test_the_ranges_of_a_disabled_workload_wait_until_it_is_enabled() -> None:
    """A workload's keys are its own check's, which runs only while it is on (as before the ranges moved)."""
    assert StackConfig.parse({"compartmentId": COMPARTMENT, "simulation": {"enabled": False, "instances": 0}})
    with pytest.raises(ConfigError, match=r"simulation\.instances: 0 is outside 1-64"):
        StackConfig.parse({"compartmentId": COMPARTMENT, "simulation": {"enabled": True, "instances": 0}})


def test_the_ranged_keys_reach_lists_and_maps() -> None:
    keys = {key for key, _ in RANGED}
    assert {"streaming.builds[].weight", "jobs.types.<name>.display.resolutionWidth", "simulation.cacheGbs"} <= keys


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[type[BaseModel]]:
    if model not in seen:
        seen.add(model)
        for field in model.model_fields.values():
            nested = nested_model(field.annotation)
            if nested:
                _models(nested[0], seen)
    return seen


MODELS = sorted(_models(StackConfig, set()), key=lambda model: model.__name__)


def test_a_subclass_that_gives_a_field_another_default_keeps_its_type_and_checks() -> None:
    """A field redeclared without its Range (or as another type) would take values the reference does not show."""
    changed = [
        (model.__name__, name)
        for model in MODELS
        for name, field in model.model_fields.items()
        for base in model.__mro__[1:]
        if (inherited := getattr(base, "__pydantic_fields__", {}).get(name)) is not None
        and (inherited.annotation, inherited.metadata) != (field.annotation, field.metadata)
    ]
    assert not changed


def test_a_section_defaults_to_what_its_own_keys_default_to() -> None:
    """The reference shows each key's own default: a section whose default sets other values (the TURN nodes'
    labels once did) would make it wrong."""
    differ = [
        (model.__name__, name)
        for model in MODELS
        for name, field in model.model_fields.items()
        if isinstance(field.default, BaseModel) and field.default != type(field.default)()
    ]
    assert not differ


def test_every_key_says_what_it_means() -> None:
    empty = [key for key, _, _, meaning in rows(StackConfig) if not meaning]
    assert not empty, f"keys without a docstring: {empty}"


def test_the_shapes_and_versions_the_models_accept_are_listed() -> None:
    text = reference()
    for shape in (*FLEX_SHAPES, *GPU_SHAPES):
        assert f"| `{shape}` |" in text, shape
    assert "| `BM.GPU.H100.8` | 8 x NVIDIA H100 | 80 | no |" in text, "no video encoder: no streams"
    assert "| `VM.GPU.A10.1` | 1 x NVIDIA A10 | 24 | yes | yes |" in text
    assert ", ".join(f"`{v}`" for v in KUBERNETES_VERSIONS) in text


def test_the_committed_reference_is_what_the_models_give() -> None:
    assert REFERENCE.read_text() == reference(), "run python -m pixelstream.tools.configref"
    text = reference()
    for key in ("streaming.builds[].weight", "streaming.turn.drainSeconds", "nodePools.gpu.eviction.graceMinutes"):
        assert f"| `{key}` |" in text, key


def test_check_fails_on_a_stale_reference(tmp_path, capsys) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text(reference().replace("drainSeconds", "drainSecs"))
    assert main(["--check", "--out", str(stale)]) == 1
    assert "differs from the config models" in capsys.readouterr().out
    assert main(["--out", str(stale)]) == 0 and main(["--check", "--out", str(stale)]) == 0

"""The generated configuration reference: every key of the config models with its type, default and docstring,
and the committed docs/configuration.md what the models give today."""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal

import pytest
from conftest import COMPARTMENT
from pydantic import BaseModel, Field

from pixelstream.config import StackConfig
from pixelstream.config_base import Cidr, ConfigError, ConfigModel, Range
from pixelstream.oci.cluster import KUBERNETES_VERSIONS
from pixelstream.oci.shapes import FLEX_SHAPES, GPU_SHAPES
from pixelstream.tools.configref import REFERENCE, main, reference, rows


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
    """A count <n>, or `<unset>` (docs/capacity.md)."""
    network: Cidr = "10.0.0.0/16"
    sized: Sized = Sized(port=7070)
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
        ("maybe", "int (optional)", "unset", "A count &lt;n&gt;, or `<unset>` ([capacity](capacity.md))."),
        ("network", "IPv4 CIDR", '`"10.0.0.0/16"`', ""),
        ("sized", "the keys below", "", "A listener with a size: the base's port keeps its docstring."),
        ("sized.port", "int", "`7070`", "Where it listens."),
        ("sized.size", "int, 50-32768 GB (a block volume's)", "`50`", ""),
        ("shares", "int, 1-64 (optional)", "unset", ""),
    ]


def test_a_range_refuses_what_is_outside_it_in_words_the_reference_repeats() -> None:
    assert Outer(name="a", shares=64, sized={"size": 32768}).sized.size == 32768
    for value, words in ((0, "0 is outside 1-64"), (65, "65 is outside 1-64")):
        with pytest.raises(ValueError, match=words):
            Outer(name="a", shares=value)
    with pytest.raises(ValueError, match="49 is outside 50-32768 GB \\(a block volume's\\)"):
        Outer(name="a", sized={"size": 49})


def _ranged_keys(model: type[BaseModel], prefix: str = "") -> typing.Iterator[tuple[str, Range]]:
    """Every key of a section (not inside a list or a map) whose number has a Range, with that Range."""
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        found = [m for m in field.metadata if isinstance(m, Range)]
        found += [
            m for a in typing.get_args(field.annotation) for m in getattr(a, "__metadata__", ()) if isinstance(m, Range)
        ]
        yield from ((key, r) for r in found)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _ranged_keys(field.annotation, key + ".")


RANGED = list(_ranged_keys(StackConfig))


def _nested(key: str, value: Any) -> dict[str, Any]:
    *parents, last = key.split(".")
    raw: dict[str, Any] = {last: value}
    for part in reversed(parents):
        raw = {part: raw}
    return raw


@pytest.mark.parametrize(("key", "bounds"), RANGED, ids=[key for key, _ in RANGED])
def test_every_ranged_key_is_refused_just_outside_its_range_and_says_so(key: str, bounds: Range) -> None:
    """What the reference says a number may take is what a plan refuses beyond: one past each end, by the key."""
    for value in (bounds.low - 1, bounds.high + 1):
        with pytest.raises(ConfigError) as refused:
            StackConfig.parse({"compartmentId": COMPARTMENT, **_nested(key, value)})
        assert refused.value.path == key and f"is outside {bounds}" in refused.value.message
        assert f"| `{key}` | int, {bounds}" in reference()


def test_ranged_keys_cover_the_sections() -> None:
    assert len(RANGED) >= 40, RANGED
    assert {"addons.monitoring.alerts.queuedMinutes", "streaming.turn.userQuota", "simulation.cacheGbs"} <= {
        key for key, _ in RANGED
    }


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[type[BaseModel]]:
    if model not in seen:
        seen.add(model)
        for field in model.model_fields.values():
            for inner in (field.annotation, *typing.get_args(field.annotation)):
                for candidate in (inner, *typing.get_args(inner)):
                    if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                        _models(candidate, seen)
    return seen


def test_a_subclass_that_gives_a_field_another_default_keeps_its_checks() -> None:
    """A field redeclared without its Range (or Cidr) would take any value while the reference showed none."""
    lost = [
        (model.__name__, name)
        for model in _models(StackConfig, set())
        for name, field in model.model_fields.items()
        for base in model.__mro__[1:]
        if (inherited := getattr(base, "__pydantic_fields__", {}).get(name)) is not None
        and inherited.metadata != field.metadata
    ]
    assert not lost
    assert Sized.model_fields["size"].metadata and not Sized.model_fields["port"].metadata


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

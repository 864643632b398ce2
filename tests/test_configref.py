"""The generated configuration reference: every key of the config models with its type, default and docstring,
and the committed docs/configuration.md what the models give today."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pixelstream.config_base import ConfigModel
from pixelstream.tools.configref import REFERENCE, main, reference, rows


class Inner(ConfigModel):
    port: int = 8080
    """Where it listens."""


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
    """A count <n>, or `<unset>`."""


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
        ("maybe", "int (optional)", "unset", "A count &lt;n&gt;, or `<unset>`."),
    ]


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

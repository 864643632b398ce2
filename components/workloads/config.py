"""What every workload's configuration has: a switch, a namespace of its own, and a check of its keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config_base import ConfigModel

if TYPE_CHECKING:
    from ..config import StackConfig


class WorkloadConfig(ConfigModel):
    """A workload's keys, one top-level key of the stack config; StackConfig checks every one it holds."""

    enabled: bool = True
    namespace: str

    def check(self, config: StackConfig) -> None:
        """Raise ConfigError for a bad value of this workload's keys (`config`: the whole stack's, for what the
        workload needs of the layers below)."""
        raise NotImplementedError

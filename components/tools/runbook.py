"""python -m pixelstream.tools.runbook: the alert runbook, generated from the platform's alert rules.

For every alert (components/addons/alerts.py, with the default thresholds): when it fires, its severity, what it
means and what to do (the `runbook` annotation it is sent with), into docs/alerts.md. `--check` fails while the
committed file differs, so a changed rule changes the runbook.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..addons.alerts import AlertThresholds, alert_rules
from .generated import generate_or_check

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "alerts.md"
HEADER = """# Alert runbook

Generated from the alert rules (`components/addons/alerts.py`) by `python -m pixelstream.tools.runbook`; do not
edit (a test fails while it differs from the rules). Thresholds are the defaults (`addons.monitoring.alerts`);
`{{ $labels.x }}` is filled in by Prometheus in the alert as sent, and every alert carries its runbook text as the
annotation `runbook`.

<!-- runnable -->
```sh
python -m pixelstream.tools.runbook --check
```
"""


def runbook(namespace: str = "pixel") -> str:
    lines = [HEADER]
    for group in alert_rules(namespace, AlertThresholds()):
        for rule in group["rules"]:
            notes = rule["annotations"]
            lines += [
                f"## {rule['alert']}",
                "",
                f"- **severity**: {rule['labels']['severity']}",
                f"- **fires when** (for {rule.get('for', 'at once')}): `{rule['expr']}`",
                f"- **summary**: {notes['summary']}",
                f"- **what it means**: {notes['description']}",
                f"- **what to do**: {notes['runbook']}",
                "",
            ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    description = __doc__.split("\n")[0]
    return generate_or_check(
        "python -m pixelstream.tools.runbook", description, RUNBOOK, runbook, "the alert rules", argv
    )


if __name__ == "__main__":
    sys.exit(main())

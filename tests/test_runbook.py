"""The alert runbook: generated from the alert rules, every alert with what to do, sent with the alert too."""

from __future__ import annotations

from pixelstream.addons.alerts import RUNBOOK as STEPS
from pixelstream.addons.alerts import AlertThresholds, alert_rules
from pixelstream.tools.runbook import RUNBOOK, main, runbook


def test_every_alert_says_what_to_do_and_sends_it() -> None:
    rules = [r for g in alert_rules("pixel", AlertThresholds()) for r in g["rules"]]
    assert {r["alert"] for r in rules} == set(STEPS)
    for rule in rules:
        assert rule["annotations"]["runbook"] == STEPS[rule["alert"]]
        assert f"## {rule['alert']}" in runbook()


def test_the_committed_runbook_is_what_the_rules_give(tmp_path, capsys) -> None:
    assert RUNBOOK.read_text() == runbook(), "run python -m pixelstream.tools.runbook"
    stale = tmp_path / "alerts.md"
    stale.write_text(runbook().replace("critical", "warning", 1))
    assert main(["--check", "--out", str(stale)]) == 1
    assert "differs from the alert rules" in capsys.readouterr().out

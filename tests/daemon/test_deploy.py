"""The files in deploy/ use exactly the names the daemon exports and reads."""

from __future__ import annotations

import json
import re
from pathlib import Path

from streamcore.daemon.cli import build_parser
from streamcore.daemon.config import env_name
from streamcore.metrics import METRIC_NAMES

DEPLOY = Path(__file__).parents[2] / "deploy"
METRIC = re.compile(r"\bstreamcore_[a-z_]+\b")


def test_every_metric_the_alerts_and_dashboard_use_is_exported() -> None:
    used: dict[str, set[str]] = {}
    for name in ("prometheus-alerts.yml", "grafana-dashboard.json"):
        found = set(METRIC.findall((DEPLOY / name).read_text()))
        # A histogram's series are <name>_bucket, _sum and _count.
        used[name] = {re.sub(r"_(bucket|sum|count)$", "", m) if re.sub(r"_(bucket|sum|count)$", "", m)
                      in METRIC_NAMES else m for m in found}
        assert used[name], name
        unknown = used[name] - set(METRIC_NAMES)
        assert not unknown, f"{name} uses metrics that are not exported: {sorted(unknown)}"
    # The dashboard shows most of what is exported.
    assert len(used["grafana-dashboard.json"]) >= len(METRIC_NAMES) * 2 // 3


def test_the_dashboard_is_valid_json_with_a_query_per_panel() -> None:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    assert dashboard["panels"] and all(p["targets"] and p["targets"][0]["expr"] for p in dashboard["panels"])


def test_the_systemd_unit_sets_only_settings_streamcore_run_reads() -> None:
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    known = {env_name(a.dest) for a in run._actions if a.option_strings}
    unit = (DEPLOY / "streamcore.service").read_text()
    variables = set(re.findall(r"Environment=(STREAMCORE_[A-Z_]+)=", unit))
    assert variables and variables <= known, sorted(variables - known)
    assert "ExecStart=" in unit and "streamcore run " in unit

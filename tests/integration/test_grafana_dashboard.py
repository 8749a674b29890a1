"""docs/grafana/policyengine-dashboard.json: every query is valid PromQL (the real Prometheus
parses and runs it) and names only metrics the controller exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import requests

from policyengine.controller.metrics import ControllerMetrics
from tests.support.prometheus import PrometheusServer

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "policyengine-dashboard.json"


def _queries() -> list[str]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_the_dashboard_names_only_exported_metrics() -> None:
    metrics = ControllerMetrics()
    metrics.notifications.labels(
        sink="slack", result="sent"
    ).inc()  # labelled series appear once used
    metrics.webhooks.labels(forge="github", result="triggered").inc()
    metrics.passes.labels(result="ok").inc()
    metrics.decisions.labels(decision="advance").inc()
    metrics.holds.labels(reason="dwell").inc()
    exported = set(re.findall(r"^(policyengine_\w+?)(?:\{| )", metrics.exposition().decode(), re.M))
    named = {name for query in _queries() for name in re.findall(r"policyengine_\w+", query)}
    assert named, "the dashboard queries nothing"
    assert named <= exported, sorted(named - exported)
    # Every series the controller exports is on the dashboard (the histogram by its buckets).
    shown = {name for name in exported if not name.endswith("_created")} - {
        "policyengine_pass_duration_seconds_count",
        "policyengine_pass_duration_seconds_sum",
    }
    assert shown <= named, sorted(shown - named)


def test_every_query_is_valid_promql(prometheus_module: PrometheusServer) -> None:
    for query in _queries():
        runnable = query.replace("$namespace", "ml").replace("$__rate_interval", "5m")
        answer = requests.get(
            f"{prometheus_module.url}/api/v1/query", params={"query": runnable}, timeout=10
        )
        assert answer.status_code == 200, (query, answer.text)
        assert answer.json()["status"] == "success"

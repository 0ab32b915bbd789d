"""The bundled dashboard flow's realtime part, read from
scenarios/dashboard-load.yml itself, for tests that run it against other
servers than the bundled scenario does: when the bundled flow changes, these
tests run the change, so the flow and the protocol cannot drift apart unseen.

Each call reads the file anew, so a test may change what it gets (a shorter
heartbeat, no heartbeat) without touching another test's copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

DASHBOARD_PLAN = Path(__file__).resolve().parents[1] / "scenarios" / "dashboard-load.yml"
VIEWER_FLOW = "dashboard"
WRITER_FLOW = "dashboard-sale"


def _flows() -> dict[str, list[dict[str, Any]]]:
    return YAML(typ="safe").load(DASHBOARD_PLAN.read_text(encoding="utf-8"))["flows"]


def realtime_step() -> dict[str, Any]:
    """The viewer flow's `websocket` step (the mapping under `websocket:`), as written."""
    [step] = [step["websocket"] for step in _flows()[VIEWER_FLOW] if "websocket" in step]
    return step


def writer_flow() -> list[dict[str, Any]]:
    """The flow whose request the realtime step's `updates.write` names."""
    return _flows()[WRITER_FLOW]

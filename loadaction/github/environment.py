"""What a GitHub Actions step gets from the runner: inputs, paths and the event.

Inputs arrive as `INPUT_<NAME>` with the name upper-cased and hyphens kept
(`INPUT_GITHUB-TOKEN`). Some runners drop such names for Docker actions, so
action.yml maps every input again under the underscore spelling
(`INPUT_GITHUB_TOKEN`) and both are read here, the runner's own first.
Everything is read from one mapping handed in, so tests build environments
instead of patching os.environ.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target")
DEFAULT_API_URL = "https://api.github.com"


def input_value(env: Mapping[str, str], name: str) -> str | None:
    """The input's value, stripped, or None when neither spelling is set."""
    upper = name.upper()
    for key in (f"INPUT_{upper}", f"INPUT_{upper.replace('-', '_')}"):
        if key in env:
            return env[key].strip()
    return None


class EventError(ValueError):
    """The event payload could not be read."""


@dataclass(frozen=True, slots=True)
class Environment:
    """The parts of a runner's environment the GitHub layer uses."""

    event_name: str | None
    event_path: Path | None
    repository: str | None
    api_url: str
    workspace: Path | None
    output_path: Path | None
    summary_path: Path | None
    run_id: str | None = None  # GITHUB_RUN_ID
    # GITHUB_WORKFLOW_REF: owner/repo/.github/workflows/perf.yml@refs/pull/7/merge
    workflow_ref: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Environment:
        def path(key: str) -> Path | None:
            value = env.get(key)
            return Path(value) if value else None

        return cls(
            event_name=env.get("GITHUB_EVENT_NAME") or None,
            event_path=path("GITHUB_EVENT_PATH"),
            repository=env.get("GITHUB_REPOSITORY") or None,
            api_url=(env.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/"),
            workspace=path("GITHUB_WORKSPACE"),
            output_path=path("GITHUB_OUTPUT"),
            summary_path=path("GITHUB_STEP_SUMMARY"),
            run_id=env.get("GITHUB_RUN_ID") or None,
            workflow_ref=env.get("GITHUB_WORKFLOW_REF") or None,
        )

    @property
    def is_pull_request(self) -> bool:
        return self.event_name in PULL_REQUEST_EVENTS

    def event(self) -> dict[str, Any]:
        """The webhook payload that triggered the run ({} when there is none)."""
        if self.event_path is None:
            return {}
        try:
            payload = json.loads(self.event_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise EventError(f"cannot read the event payload {self.event_path}: {exc}") from None
        if not isinstance(payload, dict):
            raise EventError(f"the event payload {self.event_path} is not a JSON object")
        return payload

    def pull_request_number(self) -> int | None:
        """The PR this run is for, on pull-request events only: other events
        (push, schedule) have no PR to comment on, even when the payload
        mentions one."""
        if not self.is_pull_request:
            return None
        payload = self.event()
        pr = payload.get("pull_request")
        number = pr.get("number") if isinstance(pr, dict) else payload.get("number")
        if isinstance(number, int) and not isinstance(number, bool) and number > 0:
            return number
        raise EventError(f"the {self.event_name} event payload has no pull request number")

    def base_branch(self) -> str | None:
        """The branch a pull request would merge into (`pull_request.base.ref`),
        on pull-request events only; None elsewhere or when the payload has none."""
        if not self.is_pull_request:
            return None
        pr = self.event().get("pull_request")
        base = pr.get("base") if isinstance(pr, dict) else None
        ref = base.get("ref") if isinstance(base, dict) else None
        return ref if isinstance(ref, str) and ref.strip() else None

    def workflow_file(self) -> str | None:
        """The running workflow's file name (`perf.yml`), from GITHUB_WORKFLOW_REF."""
        ref = (self.workflow_ref or "").rsplit("@", 1)[0]
        head, sep, name = ref.rpartition("/.github/workflows/")
        return name if sep and head and name and "/" not in name else None

    def relative_path(self, path: str | Path) -> str:
        """`path` relative to the workspace when inside it: later steps run
        outside the container (where /github/workspace is another directory)
        and annotations want repository-relative paths."""
        p = Path(path)
        base = self.workspace or Path.cwd()
        try:
            return p.resolve().relative_to(base.resolve()).as_posix()
        except (ValueError, OSError):
            return str(path)

"""Inputs under both spellings, the event payload and the PR number."""

from __future__ import annotations

import json

import pytest

from loadaction.github.environment import Environment, EventError, input_value
from tests.github_api import pull_request_event


def test_inputs_are_read_with_the_hyphen_kept_or_as_underscores():
    assert input_value({"INPUT_GITHUB-TOKEN": " a "}, "github-token") == "a"
    assert input_value({"INPUT_GITHUB_TOKEN": "b"}, "github-token") == "b"
    both = {"INPUT_GITHUB-TOKEN": "a", "INPUT_GITHUB_TOKEN": "b"}
    assert input_value(both, "github-token") == "a"
    assert input_value({"INPUT_GITHUB-TOKEN": "", "INPUT_GITHUB_TOKEN": "b"}, "github-token") == ""
    assert input_value({}, "github-token") is None


def _env(tmp_path, event_name, payload):
    path = tmp_path / "event.json"
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    return Environment.from_env({"GITHUB_EVENT_NAME": event_name, "GITHUB_EVENT_PATH": str(path),
                                 "GITHUB_API_URL": "https://ghe.example.com/api/v3/"})


@pytest.mark.parametrize("event", ["pull_request", "pull_request_target"])
def test_the_pr_number_comes_from_the_event_payload(tmp_path, event):
    env = _env(tmp_path, event, pull_request_event(17))
    assert env.is_pull_request
    assert env.pull_request_number() == 17
    assert env.api_url == "https://ghe.example.com/api/v3"


def test_other_events_have_no_pr(tmp_path):
    env = _env(tmp_path, "push", pull_request_event(17))
    assert not env.is_pull_request and env.pull_request_number() is None


@pytest.mark.parametrize("payload", ["{not json", "[]", {"pull_request": {"number": "7"}}])
def test_a_bad_payload_is_an_event_error(tmp_path, payload):
    with pytest.raises(EventError):
        _env(tmp_path, "pull_request", payload).pull_request_number()


def test_defaults_without_a_runner():
    env = Environment.from_env({})
    assert env.api_url == "https://api.github.com"
    assert env.output_path is None and env.summary_path is None and env.event() == {}


def test_paths_are_made_relative_to_the_workspace(tmp_path):
    env = Environment.from_env({"GITHUB_WORKSPACE": str(tmp_path)})
    assert env.relative_path(tmp_path / "plans" / "a.yml") == "plans/a.yml"
    assert env.relative_path("/elsewhere/a.yml") == "/elsewhere/a.yml"

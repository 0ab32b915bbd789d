"""The infrastructure fault adapters against real things: the demo target's
control endpoint, real shell commands, a Toxiproxy API twin, and chaoslib's
own activity runner."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from loadaction.chaos.adapters import AdapterError, build_adapter
from loadaction.demo import DemoTarget, running_target
from loadaction.errors import Source
from loadaction.plan.model import (
    ChaosToolkitFault,
    CommandFault,
    HttpCall,
    HttpFault,
    Renderable,
    ToxiproxyFault,
)
from loadaction.plan.templates import Templates
from tests.fake_toxiproxy import FakeToxiproxy, running_toxiproxy

SRC = Source("plan.yml", 1)
TEMPLATES = Templates()


def t(value: Any) -> Renderable:
    """Compile a plan value as the loader would (strings become templates)."""
    return TEMPLATES.compile_value(value, SRC)


def renderer(env: dict[str, str] | None = None, secrets: dict[str, str] | None = None,
             **vars: Any) -> Callable[[Renderable], Any]:
    ctx = {"env": env or {}, "secrets": secrets or {}, "vars": vars}
    return lambda template: template.render(ctx)


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def current_faults(target: DemoTarget) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, \
            session.get(f"{target.url}/_control/faults",
                        headers={"apikey": target.keys.service_role_key}) as response:
        assert response.status == 200
        return await response.json()


# ---------------------------------------------------------------- http

def control_fault(method_start: str = "PUT", key: str = "{{ env.SUPABASE_SERVICE_ROLE_KEY }}",
                  **start: Any) -> HttpFault:
    url = t("{{ env.SUPABASE_URL }}/_control/faults")
    headers = (("apikey", t(key)),)
    return HttpFault(
        start=HttpCall(method_start, url, SRC, headers=headers,
                       json=t({"latency_ms": "{{ vars.latency }}", "expires_in_s": 30}), **start),
        stop=HttpCall("DELETE", url, SRC, headers=headers))


def test_http_adapter_starts_and_rolls_back_a_demo_fault() -> None:
    async def scenario() -> None:
        async with running_target() as target:
            adapter = build_adapter(control_fault(), renderer(target.env, latency=250),
                                    fault_name="slow", duration_s=10)
            await adapter.start()
            faults = await current_faults(target)
            assert faults["latency_ms"] == 250
            assert 0 < faults["expires_in_s"]["latency_ms"] <= 30
            await adapter.rollback()
            assert (await current_faults(target))["latency_ms"] == 0
            await adapter.rollback()  # nothing left to undo: still fine
    run(scenario())


def test_http_adapter_reports_status_without_query_or_secret() -> None:
    async def scenario() -> None:
        async with running_target() as target:
            fault = HttpFault(
                start=HttpCall("PUT", t("{{ env.SUPABASE_URL }}/_control/faults?token={{ secrets.t }}"),
                               SRC, headers=(("apikey", t("{{ secrets.t }}")),),
                               json=t({"latency_ms": 100})),
                stop=HttpCall("DELETE", t("{{ env.SUPABASE_URL }}/_control/faults"), SRC))
            adapter = build_adapter(fault, renderer(target.env, {"t": "wrong-key-s3cr3t"}),
                                    fault_name="x", duration_s=1)
            with pytest.raises(AdapterError) as caught:
                await adapter.start()
            message = str(caught.value)
            assert message.startswith(f"PUT {target.url}/_control/faults: HTTP 401 (expected 2xx)")
            assert "Invalid API key" in message  # the body excerpt
            assert "s3cr3t" not in message and "token" not in message and "\n" not in message
            assert (await current_faults(target))["latency_ms"] == 0
    run(scenario())


def test_http_adapter_expect_and_template_errors() -> None:
    async def scenario() -> None:
        async with running_target() as target:
            adapter = build_adapter(control_fault(expect=(204,)), renderer(target.env, latency=5),
                                    fault_name="x", duration_s=1)
            with pytest.raises(AdapterError, match=r"HTTP 200 \(expected 204\)"):
                await adapter.start()
            missing = build_adapter(control_fault(key="{{ secrets.nope }}"), renderer(target.env, latency=5),
                                    fault_name="x", duration_s=1)
            with pytest.raises(AdapterError, match="cannot render start header apikey"):
                await missing.start()
    run(scenario())


def test_http_adapter_unreachable_and_silent_endpoints() -> None:
    async def scenario() -> None:
        call = HttpCall("POST", t(f"http://127.0.0.1:{closed_port()}/start?key=abc"), SRC)
        adapter = build_adapter(HttpFault(call, call), renderer(), fault_name="x", duration_s=1)
        with pytest.raises(AdapterError) as caught:
            await adapter.start()
        assert str(caught.value).startswith("POST http://127.0.0.1:")
        assert "key=abc" not in str(caught.value)

        silent = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
        port = silent.sockets[0].getsockname()[1]
        async with silent:
            call = HttpCall("POST", t(f"http://127.0.0.1:{port}/start"), SRC, timeout=0.3)
            adapter = build_adapter(HttpFault(call, call), renderer(), fault_name="x", duration_s=1)
            began = time.monotonic()
            with pytest.raises(AdapterError, match="no answer within 0.3 s"):
                await adapter.start()
            assert time.monotonic() - began < 2
    run(scenario())


# ---------------------------------------------------------------- command

def test_command_adapter_runs_start_and_idempotent_stop(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    fault = CommandFault(
        start=t('echo "$LOADACTION_FAULT_NAME $LOADACTION_FAULT_DURATION_S" > {{ vars.flag }}'),
        stop=t("rm -f {{ vars.flag }}"))
    adapter = build_adapter(fault, renderer(flag=str(flag)), fault_name="disk", duration_s=12.5)

    async def scenario() -> None:
        await adapter.start()
        assert flag.read_text() == "disk 12.5\n"
        await adapter.rollback()
        assert not flag.exists()
        await adapter.rollback()
    run(scenario())


def _gone(pid: int) -> bool:
    """Dead, or a zombie waiting for a parent that may never reap it (PID 1 in containers)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith(("Z", "X"))
    except (FileNotFoundError, IndexError):
        return True


def test_command_adapter_timeout_kills_the_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    # `sleep` as a child of the shell: killing the shell alone would leave it running.
    fault = CommandFault(start=t(f"sleep 30 & echo $! > {pid_file}; wait"), stop=t("true"), timeout=0.5)
    adapter = build_adapter(fault, renderer(), fault_name="x", duration_s=1)

    async def scenario() -> None:
        began = time.monotonic()
        with pytest.raises(AdapterError, match=r"start command timed out after 0.5 s"):
            await adapter.start()
        assert time.monotonic() - began < 1.5
        pid = int(pid_file.read_text())
        for _ in range(50):
            if _gone(pid):
                break
            await asyncio.sleep(0.02)
        assert _gone(pid)
    run(scenario())


def test_command_adapter_cancelled_start_kills_the_command(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    fault = CommandFault(start=t(f"sleep 30 & echo $! > {pid_file}; wait"), stop=t("true"))
    adapter = build_adapter(fault, renderer(), fault_name="x", duration_s=1)

    async def scenario() -> None:
        task = asyncio.create_task(adapter.start())
        while not pid_file.exists() or not pid_file.read_text().strip():
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        pid = int(pid_file.read_text())
        await asyncio.sleep(0.1)
        assert _gone(pid)
    run(scenario())


def test_command_adapter_reports_exit_code_and_last_stderr_line() -> None:
    fault = CommandFault(start=t("echo first >&2; echo 'boom: disk full' >&2; exit 3"),
                         stop=t("kill -9 $$"))
    adapter = build_adapter(fault, renderer(), fault_name="x", duration_s=1)

    async def scenario() -> None:
        with pytest.raises(AdapterError) as caught:
            await adapter.start()
        assert str(caught.value) == "start command exited with code 3: boom: disk full"
        with pytest.raises(AdapterError, match="stop command was killed by SIGKILL"):
            await adapter.rollback()
    run(scenario())


# ---------------------------------------------------------------- toxiproxy

def toxic_fault(api: str, proxy: str = "postgres", toxic_type: str = "latency") -> ToxiproxyFault:
    return ToxiproxyFault(api=t(api), proxy=proxy, toxic_type=toxic_type,
                          attributes=t({"latency": "{{ vars.ms }}", "jitter": 50}),
                          stream="upstream", toxicity=0.5)


async def toxics_of(fake: FakeToxiproxy, proxy: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session, \
            session.get(f"{fake.url}/proxies/{proxy}/toxics") as response:
        assert response.status == 200
        return await response.json()


def test_toxiproxy_adapter_adds_and_removes_its_toxic() -> None:
    async def scenario() -> None:
        async with running_toxiproxy("postgres", "redis") as fake:
            adapter = build_adapter(toxic_fault("{{ env.TOXIPROXY }}/"), renderer({"TOXIPROXY": fake.url}, ms=300),
                                    fault_name="slow-db", duration_s=5)
            await adapter.start()
            assert fake.received == [{"name": "loadaction-slow-db", "type": "latency", "stream": "upstream",
                                      "toxicity": 0.5, "attributes": {"latency": 300, "jitter": 50}}]
            assert await toxics_of(fake, "postgres") == [
                {"attributes": {"latency": 300, "jitter": 50}, "name": "loadaction-slow-db",
                 "type": "latency", "stream": "upstream", "toxicity": 0.5}]
            assert await toxics_of(fake, "redis") == []
            await adapter.rollback()
            assert await toxics_of(fake, "postgres") == []
            await adapter.rollback()  # 404 toxic not found: already rolled back
    run(scenario())


def test_toxiproxy_adapter_replaces_a_leftover_toxic() -> None:
    async def scenario() -> None:
        async with running_toxiproxy("postgres") as fake:
            async with aiohttp.ClientSession() as session:
                leftover = {"name": "loadaction-slow-db", "type": "latency", "attributes": {"latency": 9999}}
                async with session.post(f"{fake.url}/proxies/postgres/toxics", json=leftover) as response:
                    assert response.status == 200
            adapter = build_adapter(toxic_fault(fake.url), renderer(ms=300), fault_name="slow-db", duration_s=5)
            await adapter.start()
            [toxic] = await toxics_of(fake, "postgres")
            assert toxic["attributes"] == {"latency": 300, "jitter": 50}
            assert toxic["stream"] == "upstream"
    run(scenario())


def test_toxiproxy_adapter_errors() -> None:
    async def scenario() -> None:
        async with running_toxiproxy("postgres") as fake:
            unknown = build_adapter(toxic_fault(fake.url, proxy="mysql"), renderer(ms=1),
                                    fault_name="x", duration_s=1)
            with pytest.raises(AdapterError, match=f"toxiproxy at {fake.url}: no proxy named 'mysql'"):
                await unknown.start()
            await unknown.rollback()  # the proxy is gone, so is any toxic of ours

            bad_type = build_adapter(toxic_fault(fake.url, toxic_type="lag"), renderer(ms=1),
                                     fault_name="x", duration_s=1)
            with pytest.raises(AdapterError, match="HTTP 400: invalid toxic type"):
                await bad_type.start()

            bad_value = build_adapter(toxic_fault(fake.url), renderer(ms="fast"), fault_name="x", duration_s=1)
            with pytest.raises(AdapterError, match="HTTP 400: bad request body"):
                await bad_value.start()

        gone = build_adapter(toxic_fault(f"http://127.0.0.1:{closed_port()}"), renderer(ms=1),
                             fault_name="x", duration_s=1)
        with pytest.raises(AdapterError, match="POST http://127.0.0.1:.*/proxies/postgres/toxics"):
            await gone.start()
    run(scenario())


# ---------------------------------------------------------------- chaostoolkit

def process_activity(name: str, path: str, *arguments: str, **extra: Any) -> dict[str, Any]:
    return {"type": "action", "name": name,
            "provider": {"type": "process", "path": path, "arguments": list(arguments)}, **extra}


def test_chaostoolkit_process_action_and_rollback(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    fault = ChaosToolkitFault(action=process_activity("touch-flag", "touch", str(flag)),
                              rollback=process_activity("remove-flag", "rm", "-f", str(flag)))
    adapter = build_adapter(fault, renderer(), fault_name="x", duration_s=1)

    async def scenario() -> None:
        await adapter.start()
        assert flag.exists()
        await adapter.rollback()
        assert not flag.exists()
        await adapter.rollback()
    run(scenario())


def demo_http_activity(name: str, method: str, key: str, **provider: Any) -> dict[str, Any]:
    return {"type": "action", "name": name,
            "provider": {"type": "http", "method": method, "url": "${base_url}/_control/faults",
                         "headers": {"Content-Type": "application/json", "apikey": key}, **provider}}


def test_chaostoolkit_http_action_against_the_demo_target() -> None:
    async def scenario() -> None:
        async with running_target() as target:
            fault = ChaosToolkitFault(
                action=demo_http_activity("slow-down", "PUT", "${service_key}", arguments={
                    "latency_ms": 200, "expires_in_s": "${loadaction_fault_duration_s}"}),
                rollback=demo_http_activity("heal", "DELETE", "${service_key}"),
                configuration=t({"base_url": "{{ env.SUPABASE_URL }}",
                                 "service_key": "{{ env.SUPABASE_SERVICE_ROLE_KEY }}"}))
            adapter = build_adapter(fault, renderer(target.env), fault_name="slow", duration_s=20)
            await adapter.start()
            faults = await current_faults(target)
            assert faults["latency_ms"] == 200
            assert 19 < faults["expires_in_s"]["latency_ms"] <= 20
            await adapter.rollback()
            assert (await current_faults(target))["latency_ms"] == 0

            refused = ChaosToolkitFault(
                action=demo_http_activity("slow-down", "PUT", "wrong", arguments={"latency_ms": 200}),
                rollback=demo_http_activity("heal", "DELETE", "wrong"),
                configuration={"base_url": target.url})
            with pytest.raises(AdapterError, match=r"action 'slow-down': HTTP 401: .*Invalid API key"):
                await build_adapter(refused, renderer(), fault_name="x", duration_s=1).start()
    run(scenario())


def test_chaostoolkit_invalid_rollback_stops_the_action_before_it_runs(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    fault = ChaosToolkitFault(action=process_activity("touch-flag", "touch", str(flag)),
                              rollback={"type": "action", "name": "heal",
                                        "provider": {"type": "carrier-pigeon"}})
    adapter = build_adapter(fault, renderer(), fault_name="x", duration_s=1)

    async def scenario() -> None:
        with pytest.raises(AdapterError,
                           match="chaostoolkit rollback is not a valid activity: unknown provider type"):
            await adapter.start()
        assert not flag.exists()
        missing = ChaosToolkitFault(action=process_activity("x", "no-such-binary-here"),
                                    rollback=process_activity("y", "true"))
        with pytest.raises(AdapterError, match="action is not a valid activity: path 'no-such-binary-here'"):
            await build_adapter(missing, renderer(), fault_name="x", duration_s=1).start()
    run(scenario())


def test_chaostoolkit_failing_process_and_tolerance() -> None:
    failing = ChaosToolkitFault(action=process_activity("fail", "sh", "-c", "echo nope >&2; exit 4"),
                                rollback=process_activity("ok", "true"))
    tolerated = ChaosToolkitFault(action=process_activity("fail", "sh", "-c", "exit 4", tolerance=4),
                                  rollback=process_activity("ok", "true"))
    slow = ChaosToolkitFault(action=process_activity("slow", "sleep", "30", timeout=0.3),
                             rollback=process_activity("ok", "true"))

    async def scenario() -> None:
        with pytest.raises(AdapterError) as caught:
            await build_adapter(failing, renderer(), fault_name="x", duration_s=1).start()
        assert str(caught.value) == "chaostoolkit action 'fail': process exited with code 4: nope"
        await build_adapter(tolerated, renderer(), fault_name="x", duration_s=1).start()
        began = time.monotonic()
        with pytest.raises(AdapterError, match="action 'slow' failed: process activity took too long"):
            await build_adapter(slow, renderer(), fault_name="x", duration_s=1).start()
        assert time.monotonic() - began < 2
    run(scenario())


def test_chaostoolkit_rollback_waits_for_a_cancelled_action(tmp_path: Path) -> None:
    """A cancelled start keeps running in its thread; a rollback that did not
    wait for it would be undone when the action finally lands."""
    flag = tmp_path / "flag"
    fault = ChaosToolkitFault(action=process_activity("late", "sh", "-c", f"sleep 0.4; touch {flag}"),
                              rollback=process_activity("heal", "rm", "-f", str(flag)))
    adapter = build_adapter(fault, renderer(), fault_name="x", duration_s=1)

    async def scenario() -> None:
        task = asyncio.create_task(adapter.start())
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await adapter.rollback()
        assert not flag.exists()
    run(scenario())


def test_chaostoolkit_without_chaoslib_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "chaoslib.activity", None)  # makes the import fail
    fault = ChaosToolkitFault(action=process_activity("x", "true"), rollback=process_activity("y", "true"))
    adapter = build_adapter(fault, renderer(), fault_name="x", duration_s=1)
    with pytest.raises(AdapterError, match=r"pip install 'loadaction\[chaos\]'"):
        run(adapter.start())


def test_command_adapter_sees_the_callers_environment(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    monkeypatch.setenv("LOADACTION_TEST_MARKER", "here")
    out = tmp_path / "out"
    fault = CommandFault(start=t(f'printf %s "$LOADACTION_TEST_MARKER" > {out}'), stop=t("true"))
    run(build_adapter(fault, renderer(), fault_name="x", duration_s=1).start())
    assert out.read_text() == "here"
    assert os.environ["LOADACTION_TEST_MARKER"] == "here"

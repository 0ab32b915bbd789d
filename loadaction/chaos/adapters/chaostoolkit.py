"""The `chaostoolkit` adapter: a Chaos Toolkit action and its rollback, written
in Chaos Toolkit's own activity format and run by chaostoolkit-lib.

Only chaoslib's activity API is used (validate, then run one activity), not
its experiment runner: the runner installs signal handlers, which fails
outside the main thread, and would own a timeline that is ours. chaoslib is
blocking, so each activity runs in a daemon thread of its own; not
asyncio.to_thread, whose pool threads are joined when the loop shuts down, so
one hung activity would hang the whole tool after the run.

What it can guarantee: both activities are validated before the action runs
(a broken rollback is found before anything is broken); a failing provider, a
process exiting non-zero, an HTTP status >= 400 or a result outside the
activity's `tolerance` is an AdapterError; every activity has a deadline (its
`timeout`, else 60 s), which process and http providers enforce themselves.
What it cannot: a python provider past its deadline keeps running in its
thread; and expiry when the runner dies is up to the action itself (e.g. the
demo target's `expires_in_s` in its arguments), for which the configuration
offers `${loadaction_fault_name}` and `${loadaction_fault_duration_s}`.
`pauses` and `background` are experiment-runner features and are ignored;
`ref` activities are refused.
"""

from __future__ import annotations

import asyncio
import numbers
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from loadaction.chaos.adapters.base import AdapterError, Render, last_line, one_line
from loadaction.plan.model import ChaosToolkitFault

DEFAULT_TIMEOUT_S = 60.0
GRACE_S = 2.0  # lets chaoslib report its own timeout before ours fires
INSTALL_HINT = "chaostoolkit-lib is not installed: pip install 'loadaction[chaos]'"


@dataclass(frozen=True, slots=True)
class _Chaoslib:
    """The few chaoslib entry points used, imported only when a plan needs them."""

    ensure_activity_is_valid: Callable[[dict[str, Any]], None]
    run_activity: Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], Any]
    load_configuration: Callable[[dict[str, Any]], dict[str, Any]]
    within_tolerance: Callable[..., bool]
    error: type[Exception]


def _chaoslib() -> _Chaoslib:
    try:
        from chaoslib.activity import ensure_activity_is_valid, run_activity
        from chaoslib.configuration import load_configuration
        from chaoslib.exceptions import ChaosException
        from chaoslib.hypothesis import within_tolerance
    except ImportError:
        raise AdapterError(INSTALL_HINT) from None
    return _Chaoslib(ensure_activity_is_valid, run_activity, load_configuration, within_tolerance,
                     ChaosException)


def _is_renderable(value: Any) -> bool:
    return (not isinstance(value, (str, bytes, Mapping, list, tuple))
            and callable(getattr(value, "render", None)))


def materialize(value: Any, render: Render) -> Any:
    """A plain, private copy: templates rendered wherever the plan loader left
    them, and nothing chaoslib can mutate in the frozen plan."""
    if _is_renderable(value):
        return materialize(render(value), render)
    if isinstance(value, Mapping):
        return {str(key): materialize(item, render) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [materialize(item, render) for item in value]
    return value


def _deadline(activity: dict[str, Any]) -> float:
    timeout = activity.get("timeout")
    if isinstance(timeout, numbers.Real) and not isinstance(timeout, bool) and timeout > 0:
        return float(timeout)
    return DEFAULT_TIMEOUT_S


def _in_daemon_thread(fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """Run a blocking call in a daemon thread; its outcome lands in a future."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    # Retrieve the exception even when nobody awaits any more (a timed-out start).
    future.add_done_callback(lambda f: f.cancelled() or f.exception())

    def settle(ok: bool, value: Any) -> None:
        if not future.done():
            future.set_result(value) if ok else future.set_exception(value)

    def work() -> None:
        try:
            outcome = (True, fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            outcome = (False, exc)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting

    threading.Thread(target=work, name="loadaction-chaostoolkit", daemon=True).start()
    return future


class ChaosToolkitAdapter:
    """Runs the fault's Chaos Toolkit action on start, its rollback activity on rollback."""

    def __init__(self, fault: ChaosToolkitFault, render: Render, *, fault_name: str,
                 duration_s: float) -> None:
        self._fault = fault
        self._render = render
        self._defaults = {"loadaction_fault_name": fault_name,
                          "loadaction_fault_duration_s": duration_s}
        self._inflight: asyncio.Future[Any] | None = None
        self._inflight_until = 0.0

    async def start(self) -> None:
        lib = _chaoslib()
        configuration = self._configuration(lib)
        action = self._activity(lib, self._fault.action, "action")
        self._activity(lib, self._fault.rollback, "rollback")
        await self._run(lib, action, configuration, "action")

    async def rollback(self) -> None:
        lib = _chaoslib()
        if self._inflight is not None and not self._inflight.done():
            # A start that timed out or was cancelled still runs in its thread;
            # rolling back before it ends would let it re-apply the fault after us.
            remaining = self._inflight_until - asyncio.get_running_loop().time()
            await asyncio.wait({self._inflight}, timeout=max(0.0, remaining))
        configuration = self._configuration(lib)
        rollback = self._activity(lib, self._fault.rollback, "rollback")
        await self._run(lib, rollback, configuration, "rollback")

    def _configuration(self, lib: _Chaoslib) -> dict[str, Any]:
        """Chaos Toolkit's `configuration` block; `{"type": "env", "key": ...}`
        entries are resolved by chaoslib, as the `chaos` CLI would."""
        try:
            raw = materialize(self._fault.configuration, self._render)
            if not isinstance(raw, dict):
                raise AdapterError("chaostoolkit configuration must be a mapping")
            return {**self._defaults, **(lib.load_configuration(raw) or {})}
        except AdapterError:
            raise
        except Exception as exc:  # noqa: BLE001 - template and chaoslib errors alike
            raise AdapterError(f"chaostoolkit configuration: {one_line(str(exc) or type(exc).__name__)}") \
                from None

    def _activity(self, lib: _Chaoslib, template: Any, phase: str) -> dict[str, Any]:
        try:
            activity = materialize(template, self._render)
        except Exception as exc:  # noqa: BLE001
            raise AdapterError(f"chaostoolkit {phase}: cannot render: {one_line(str(exc))}") from None
        if not isinstance(activity, dict):
            raise AdapterError(f"chaostoolkit {phase} must be a mapping (an activity), "
                               f"got {type(activity).__name__}")
        if "ref" in activity:
            raise AdapterError(f"chaostoolkit {phase}: activity references (ref) are not supported;"
                               " write the activity inline")
        try:
            lib.ensure_activity_is_valid(activity)
        except Exception as exc:  # noqa: BLE001 - InvalidActivity, or a KeyError on odd shapes
            raise AdapterError(f"chaostoolkit {phase} is not a valid activity:"
                               f" {one_line(str(exc) or type(exc).__name__)}") from None
        provider = activity["provider"]
        if provider.get("type") in ("process", "http") and provider.get("timeout") is None:
            provider["timeout"] = _deadline(activity)  # let chaoslib stop the work itself
        return activity

    async def _run(self, lib: _Chaoslib, activity: dict[str, Any], configuration: dict[str, Any],
                   phase: str) -> None:
        label = f"chaostoolkit {phase} {activity['name']!r}"
        deadline = _deadline(activity)
        future = _in_daemon_thread(lib.run_activity, activity, configuration, {})
        self._inflight = future
        self._inflight_until = asyncio.get_running_loop().time() + deadline + GRACE_S
        try:
            result = await asyncio.wait_for(asyncio.shield(future), deadline + GRACE_S)
        except TimeoutError:
            raise AdapterError(f"{label}: no result within {deadline:g} s") from None
        except lib.error as exc:
            raise AdapterError(f"{label} failed: {one_line(str(exc) or type(exc).__name__)}") from None
        except Exception as exc:  # noqa: BLE001 - a python provider's own exception
            raise AdapterError(f"{label} failed: {type(exc).__name__}: {one_line(str(exc))}") from None
        if problem := _judge(lib, activity, result, configuration):
            raise AdapterError(f"{label}: {problem}")


def _judge(lib: _Chaoslib, activity: dict[str, Any], result: Any,
           configuration: dict[str, Any]) -> str | None:
    """Why a result that chaoslib returned (rather than raised) is a failure, or None.

    chaoslib reports a process's exit code and an HTTP status as data and
    leaves judging them to the experiment; here, as in a rollback, non-zero
    and >= 400 are failures unless the activity states its own `tolerance`.
    """
    if "tolerance" in activity:
        try:
            ok = lib.within_tolerance(activity["tolerance"], result, configuration, {})
        except Exception as exc:  # noqa: BLE001
            return f"cannot check tolerance: {one_line(str(exc) or type(exc).__name__)}"
        return None if ok else f"result outside its tolerance ({_summary(result)})"
    kind = activity["provider"].get("type")
    if kind == "process" and isinstance(result, Mapping) and result.get("status") != 0:
        reason = last_line(str(result.get("stderr") or ""))
        return f"process exited with code {result.get('status')}" + (f": {reason}" if reason else "")
    if kind == "http" and isinstance(result, Mapping):
        status = result.get("status")
        if not isinstance(status, int) or status >= 400:
            body = one_line(str(result.get("body") or ""), 120)
            return f"HTTP {status}" + (f": {body}" if body else "")
    return None


def _summary(result: Any) -> str:
    if isinstance(result, Mapping):
        if "stderr" in result:
            return f"exit code {result.get('status')}"
        if "body" in result:
            return f"HTTP {result.get('status')} {one_line(str(result.get('body')), 120)}"
    return one_line(repr(result), 120)

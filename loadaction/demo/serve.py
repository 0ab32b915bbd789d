"""Start and stop the demo target on a host and port, from code.

    async with running_target() as target:        # 127.0.0.1, ephemeral port, SQLite
        run_plan(env=target.env)                   # SUPABASE_URL, keys, webhook secret

`serve_in_thread()` does the same from synchronous code (a fixture that calls
the CLI in the test's own thread): the target gets a loop of its own, and the
SQLite connection never leaves that loop's thread.
"""

from __future__ import annotations

import asyncio
import ipaddress
import shlex
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

from aiohttp import web

from loadaction.demo.app import make_app
from loadaction.demo.auth import DemoKeys
from loadaction.demo.faults import HEALTHY, Faults, FaultState
from loadaction.demo.pool import DEFAULT_ACQUIRE_TIMEOUT_S, DEFAULT_POOL_SIZE
from loadaction.demo.realtime import RealtimeSettings
from loadaction.demo.store import Store


@dataclass(frozen=True, slots=True)
class DemoTarget:
    """A running target: where it is, and what a client must export to use it."""

    url: str
    keys: DemoKeys
    store_description: str
    faults: FaultState = field(repr=False)

    @property
    def env(self) -> dict[str, str]:
        return client_env(self.url, self.keys)

    def export_lines(self) -> list[str]:
        return [f"export {name}={shlex.quote(value)}" for name, value in self.env.items()]


def client_env(url: str, keys: DemoKeys) -> dict[str, str]:
    """What a client of the target at `url` must export."""
    return {"SUPABASE_URL": url,
            "SUPABASE_ANON_KEY": keys.anon_key,
            "SUPABASE_SERVICE_ROLE_KEY": keys.service_role_key,
            "STRIPE_WEBHOOK_SECRET": keys.webhook_secret}


class StoreUnavailable(RuntimeError):
    """The database could not be opened (as opposed to the port not being free)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_store(database_url: str | None, pool_size: int = DEFAULT_POOL_SIZE) -> Store:
    """SQLite in memory unless a PostgreSQL URL is given (then with `pool_size`
    connections open from the start)."""
    if database_url is None:
        from loadaction.demo.sqlite_store import SqliteStore
        return SqliteStore()
    if not database_url.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"database URL must start with postgresql://, got {database_url.split(':')[0]}:…")
    from loadaction.demo.postgres_store import PostgresStore
    return PostgresStore(database_url, pool_size=pool_size)


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


@asynccontextmanager
async def running_target(host: str = "127.0.0.1", port: int = 0, database_url: str | None = None,
                         faults: Faults = HEALTHY, keys: DemoKeys | None = None, *,
                         allow_remote: bool = False,
                         realtime: RealtimeSettings | None = None,
                         pool_timeout_s: float = DEFAULT_ACQUIRE_TIMEOUT_S,
                         ) -> AsyncIterator[DemoTarget]:
    """Serve until the block exits; the store is created, then closed, with it.

    A non-loopback host needs `allow_remote=True`: the keys are demo keys and
    the fault endpoint can break the target, so exposing it must be a choice.
    Raises ValueError for bad arguments, ImportError when PostgreSQL is asked
    for without asyncpg, StoreUnavailable when the database refuses, and
    OSError when the address cannot be bound.
    """
    if not allow_remote and not is_loopback(host):
        raise ValueError(f"refusing to bind non-loopback host {host!r} (pass allow_remote=True)")
    keys = keys or DemoKeys.generate()
    if problem := keys.problem():
        raise ValueError(problem)
    store = make_store(database_url, faults.pool_size or DEFAULT_POOL_SIZE)
    try:
        await store.start()
    except (ImportError, ValueError):
        raise
    except Exception as exc:  # asyncpg's errors, refused connections, ...
        raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
    try:
        state = FaultState(base=faults)
        # A short shutdown_timeout: stopping the demo must be prompt; a request
        # still in flight after 2 s (a long injected latency) is cut off.
        app = make_app(store, keys, state, realtime=realtime, pool_timeout_s=pool_timeout_s)
        runner = web.AppRunner(app, access_log=None,
                               handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound_port = runner.addresses[0][1]
            yield DemoTarget(url=_url(host, bound_port), keys=keys,
                             store_description=await store.describe(), faults=state)
        finally:
            await runner.cleanup()
    finally:
        await store.close()


@contextmanager
def serve_in_thread(host: str = "127.0.0.1", port: int = 0, database_url: str | None = None,
                    faults: Faults = HEALTHY, keys: DemoKeys | None = None,
                    timeout_s: float = 30.0, realtime: RealtimeSettings | None = None,
                    ) -> Iterator[DemoTarget]:
    """`running_target` on a private loop in a daemon thread, for synchronous callers."""
    started = threading.Event()
    box: dict[str, object] = {}
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        try:
            async with running_target(host, port, database_url, faults, keys,
                                      realtime=realtime) as target:
                box["target"] = target
                started.set()
                await stop.wait()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread below
            box["error"] = exc
            started.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True,
                              name="demo-target")
    thread.start()
    try:
        if not started.wait(timeout_s):
            raise TimeoutError(f"demo target did not start within {timeout_s} s")
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        yield box["target"]  # type: ignore[misc]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout_s)
        if not thread.is_alive():
            loop.close()

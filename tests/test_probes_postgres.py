"""The postgres probe against the real PostgreSQL of LOADACTION_TEST_DATABASE_URL
(never skipped in CI): connections the test holds, by state, one waiting on
a lock, and statements the test runs during the probe, seen as deltas in
pg_query_calls / pg_query_mean_ms and the statements table; budgets on the
connection count and the slowest statement fail when the test exceeds them."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from loadaction.report import render
from tests.conftest import postgres_url

APP = "probes-test"
SLEEPS = 8
_PROBE_SNAPSHOTS = """SELECT coalesce(sum(calls), 0) FROM pg_stat_statements
 WHERE query LIKE '%loadaction-probe%' AND query LIKE '%pg_stat_statements s%'"""


class HeldConnections:
    """On its own thread and loop: 3 idle connections, 1 idle in transaction,
    1 holding a lock and 1 waiting for it; then SLEEPS statements once the
    probe has taken its first snapshot, and until it has taken one after them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ready = threading.Event()
        self.release = threading.Event()
        self.sleeps_done = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def __enter__(self) -> HeldConnections:
        self._thread.start()
        assert self.ready.wait(30), self.error
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release.set()
        self._thread.join(30)

    def _main(self) -> None:
        try:
            asyncio.run(self._hold())
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
            self.ready.set()

    async def _hold(self) -> None:
        import asyncpg

        settings = {"application_name": APP}
        conns = [await asyncpg.connect(self.url, server_settings=settings) for _ in range(6)]
        idle, in_tx, locker, waiter = conns[:3], conns[3], conns[4], conns[5]
        await idle[0].execute("CREATE TABLE IF NOT EXISTS probes_lock (x int)")
        await in_tx.execute("BEGIN; SELECT 1")
        await locker.execute("BEGIN; LOCK TABLE probes_lock IN ACCESS EXCLUSIVE MODE")
        waiting = asyncio.create_task(waiter.execute("SELECT * FROM probes_lock"))
        while not await idle[0].fetchval(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid = $1",
                waiter.get_server_pid()):
            await asyncio.sleep(0.01)
        sleeper = await asyncpg.connect(self.url, server_settings={"application_name": "other"})
        self.ready.set()
        before = await sleeper.fetchval(_PROBE_SNAPSHOTS)
        while await sleeper.fetchval(_PROBE_SNAPSHOTS) == before:  # the probe's first snapshot
            await asyncio.sleep(0.02)
        for _ in range(SLEEPS):
            await sleeper.execute("SELECT pg_sleep(0.02), 'probes-test-sleep'")
        after = await sleeper.fetchval(_PROBE_SNAPSHOTS)
        while await sleeper.fetchval(_PROBE_SNAPSHOTS) == after:  # one snapshot after them
            await asyncio.sleep(0.02)
        self.sleeps_done.set()
        while not self.release.is_set():
            await asyncio.sleep(0.02)
        await locker.execute("ROLLBACK")
        await waiting
        for conn in [*conns, sleeper]:
            await conn.close()


def _series(doc: dict, metric: str) -> dict[tuple, dict]:
    return {tuple(sorted(p["tags"].items())): p["sink"] for p in doc["metrics"][metric]["by_tags"]}


def test_postgres_probe_reads_activity_locks_and_statements(target, write_plan, run_plan,
                                                             monkeypatch):
    url = postgres_url()
    monkeypatch.setenv("PROBE_DB", url)
    plan = write_plan(f"""
target: {target.url}
secrets: [PROBE_DB]
probes:
  db:
    postgres: {{dsn: "{{{{ secrets.PROBE_DB }}}}", application_name: {APP}, statements: 5}}
    interval: 200ms
thresholds:
  "pg_connections{{state:idle}}": ["max==3"]
  "pg_connections{{state:idle in transaction}}": ["last==2"]
  pg_locks_waiting: ["max>=1"]
  pg_max_connections: ["last>0"]
  # budgets the held connections and the 20 ms statements violate
  pg_connections_total: ["max<6"]
  pg_query_mean_ms: ["max<20"]
scenarios:
  s: {{executor: constant-vus, vus: 1, duration: 3s, exec: f}}
flows:
  f: [{{request: {{url: /ok}}}}, {{think: 100ms}}]
""")
    with HeldConnections(url) as held:
        code, doc = run_plan(plan)
        done = held.sleeps_done.is_set()
    assert held.error is None, held.error
    assert done, "the statements did not finish within the run; nothing to compare"
    failed = {(t["metric"], t["expression"]) for t in doc["thresholds"] if t["verdict"] != "pass"}
    assert failed == {("pg_connections_total", "max<6"), ("pg_query_mean_ms", "max<20")}, (
        doc["thresholds"])
    assert code == 99
    probe = doc["probes"]["probes"][0]
    assert probe["kind"] == "postgres" and probe["errors"] == 0, probe
    states = _series(doc, "pg_connections")
    assert states[(("probe", "db"), ("state", "active"))]["max"] == 1  # the waiter
    assert doc["metrics"]["pg_connections_total"]["total"]["max"] == 6

    rows = [s for s in doc["probes"]["statements"] if "pg_sleep" in s["query"]]
    assert len(rows) == 1, doc["probes"]["statements"]
    row = rows[0]
    assert row["calls"] == SLEEPS and row["probe"] == "db"
    assert 20 <= row["mean_ms"] < 20 + 200  # pg_sleep(0.02), whatever the machine adds
    assert row["max_ms"] >= 20
    assert not any("loadaction-probe" in s["query"] for s in doc["probes"]["statements"])
    calls = _series(doc, "pg_query_calls")[(("probe", "db"), ("query", row["queryid"]))]
    assert calls["last"] == SLEEPS and calls["min"] >= 0
    mean = _series(doc, "pg_query_mean_ms")[(("probe", "db"), ("query", row["queryid"]))]
    assert mean["last"] == pytest.approx(row["mean_ms"])

    md = render(doc, "md")  # the statements table has the queries; per-query series stay out
    assert f"`{row['queryid']}` SELECT pg\\_sleep" in md
    assert r"pg\_connections{probe:db,state:idle} | 3 |" in md
    assert r"pg\_query\_calls{" not in md and "query=" not in md


def _dsn_plan(target: Any, write_plan: Any) -> Any:
    """A 600 ms run probing the DSN in PROBE_DB, with a budget on what it reads."""
    return write_plan(f"""
target: {target.url}
secrets: [PROBE_DB]
probes:
  db:
    postgres: {{dsn: "{{{{ secrets.PROBE_DB }}}}"}}
    interval: 200ms
thresholds:
  pg_connections_total: ["max<100"]
scenarios:
  s: {{executor: constant-vus, vus: 1, duration: 600ms, exec: f}}
flows:
  f: [{{request: {{url: /ok}}}}, {{think: 100ms}}]
""")


def test_postgres_probe_that_cannot_connect_counts_errors(target, write_plan, run_plan,
                                                          monkeypatch):
    postgres_url()  # asyncpg must be there
    monkeypatch.setenv("PROBE_DB", "postgresql://nobody:hunter2secret@127.0.0.1:9/none")
    code, doc = run_plan(_dsn_plan(target, write_plan))
    assert code == 99 and doc["thresholds"][0]["verdict"] == "no data"
    probe = doc["probes"]["probes"][0]
    assert probe["errors_by_kind"]["connect"] >= 1 and probe["samples"] == 0
    assert "hunter2secret" not in str(doc)


def test_a_dsn_to_a_disallowed_host_sends_nothing(target, write_plan, run_plan, monkeypatch):
    postgres_url()  # asyncpg must be there
    monkeypatch.setenv("PROBE_DB", "postgresql://u:s3cretpass@db.example.invalid:5432/app")
    code, doc = run_plan(_dsn_plan(target, write_plan))
    assert code == 99 and doc["thresholds"][0]["verdict"] == "no data"
    probe = doc["probes"]["probes"][0]
    assert set(probe["errors_by_kind"]) == {"host_not_allowed"} and probe["errors"] >= 3
    assert "db.example.invalid" in probe["last_error"] and "s3cretpass" not in str(doc)

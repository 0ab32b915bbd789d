"""Samples PostgreSQL's own view of the load: connections by state, waiting
locks, the connection limit, and (when pg_stat_statements is there) per-query
calls and server-side time as deltas since the probe's first snapshot.

One small connection (not a pool), opened on the first sample and again
after it breaks, with `statement_timeout` set to the probe timeout. The
probe's own connection is left out of the counts and its own queries (each
carries the `loadaction-probe` comment) out of the statements.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from loadaction.probes.report import ProbeErrorKind, ProbeFailure, Reading, Statement

APPLICATION_NAME = "loadaction-probe"
MARK = "/* loadaction-probe */"
MAX_QUERY_CHARS = 200
# Always reported (as 0 when none), so a budget on one has data from the first sample.
STATES = ("active", "idle", "idle in transaction", "idle in transaction (aborted)")

_INFO = f"""{MARK} SELECT current_setting('max_connections')::int,
  EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')"""
_CONNECTIONS = f"""{MARK} SELECT coalesce(state, 'unknown'), count(*)::int FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid()
   AND backend_type = 'client backend' AND ($1::text IS NULL OR application_name = $1)
 GROUP BY 1"""
_LOCKS = f"""{MARK} SELECT count(*)::int FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE NOT l.granted AND a.datname = current_database()"""
_STATEMENTS = f"""{MARK} SELECT s.queryid::text, s.calls::bigint, s.total_exec_time::float8,
  s.max_exec_time::float8, s.query FROM pg_stat_statements s
 WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND s.queryid IS NOT NULL AND s.query NOT LIKE '%loadaction-probe%'"""


class PostgresSampler:
    def __init__(self, dsn: str, application_name: str | None, statements: int,
                 timeout_s: float, probe: str, mask: Callable[[str], str]) -> None:
        self._dsn = dsn
        self._application = application_name
        self._top = statements
        self._timeout = timeout_s
        self._probe = probe
        self._mask = mask
        self._conn: Any = None
        self._has_statements = False
        self._max_connections = 0
        # queryid -> (calls, total ms) at the first snapshot; the latest row
        self._base: dict[str, tuple[int, float]] | None = None
        self._latest: dict[str, tuple[int, float, float, str]] = {}

    async def _connect(self) -> Any:
        import asyncpg  # optional (loadaction[postgres]); the loader checked it is installed

        try:
            conn = await asyncpg.connect(
                self._dsn, timeout=self._timeout, statement_cache_size=0,
                server_settings={"application_name": APPLICATION_NAME,
                                 "statement_timeout": str(max(int(self._timeout * 1000), 1))})
        except (TimeoutError, asyncio.TimeoutError):
            raise ProbeFailure(ProbeErrorKind.TIMEOUT,
                               f"no connection within {self._timeout:g}s") from None
        except Exception as exc:  # asyncpg raises OSErrors and its own errors alike
            raise ProbeFailure(ProbeErrorKind.CONNECT,
                               self._mask(f"cannot connect: {type(exc).__name__}: {exc}")) from None
        try:
            row = await conn.fetchrow(_INFO)
        except Exception:
            await conn.close(timeout=self._timeout)
            raise
        self._max_connections, self._has_statements = int(row[0]), bool(row[1])
        return conn

    async def sample(self) -> tuple[list[Reading], list[ProbeFailure]]:
        import asyncpg

        if self._conn is None or self._conn.is_closed():
            self._conn = await self._connect()
        try:
            return await asyncio.wait_for(self._read(self._conn), self._timeout)
        except (TimeoutError, asyncio.TimeoutError):
            await self._drop()
            raise ProbeFailure(ProbeErrorKind.TIMEOUT,
                               f"queries did not finish within {self._timeout:g}s") from None
        except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError) as exc:
            await self._drop()
            raise ProbeFailure(ProbeErrorKind.CONNECT,
                               self._mask(f"connection lost: {exc}")) from None
        except asyncpg.PostgresError as exc:
            raise ProbeFailure(ProbeErrorKind.QUERY, self._mask(f"query failed: {exc}")) from None

    async def _read(self, conn: Any) -> tuple[list[Reading], list[ProbeFailure]]:
        states = {state: 0 for state in STATES}
        for state, count in await conn.fetch(_CONNECTIONS, self._application):
            states[state] = states.get(state, 0) + count
        readings = [Reading("pg_connections", (("state", state),), float(n))
                    for state, n in states.items()]
        readings.append(Reading("pg_connections_total", (), float(sum(states.values()))))
        readings.append(Reading("pg_locks_waiting", (), float(await conn.fetchval(_LOCKS))))
        readings.append(Reading("pg_max_connections", (), float(self._max_connections)))
        failures = []
        if self._has_statements and self._top:
            import asyncpg

            try:  # the connection counts stand even when the statements cannot be read
                readings += self._statements(await conn.fetch(_STATEMENTS))
            except asyncpg.PostgresError as exc:
                failures.append(ProbeFailure(ProbeErrorKind.QUERY,
                                             self._mask(f"pg_stat_statements: {exc}")))
        return readings, failures

    def _statements(self, rows: list[Any]) -> list[Reading]:
        latest = {row[0]: (int(row[1]), float(row[2]), float(row[3]), row[4]) for row in rows}
        if self._base is None:  # the first snapshot: what ran before the run is not counted
            self._base = {qid: (calls, total) for qid, (calls, total, _, _) in latest.items()}
        self._latest = latest
        readings = []
        for qid, calls, total, max_ms in self._top_deltas():
            tags = (("query", qid),)
            readings.append(Reading("pg_query_calls", tags, float(calls)))
            if calls:
                readings.append(Reading("pg_query_mean_ms", tags, total / calls))
            readings.append(Reading("pg_query_max_ms", tags, max_ms))
        return readings

    def _top_deltas(self) -> list[tuple[str, int, float, float]]:
        base = self._base or {}
        deltas = []
        for qid, (calls, total, max_ms, _) in self._latest.items():
            calls0, total0 = base.get(qid, (0, 0.0))
            if calls > calls0:
                deltas.append((qid, calls - calls0, total - total0, max_ms))
        deltas.sort(key=lambda d: -d[2])
        return deltas[: self._top]

    def statements(self) -> list[Statement]:
        """The top statements by server time over the run, as last sampled."""
        out = []
        for qid, calls, total, max_ms in self._top_deltas():
            query = " ".join(self._latest[qid][3].split())
            if len(query) > MAX_QUERY_CHARS:
                query = query[: MAX_QUERY_CHARS - 1] + "…"
            out.append(Statement(self._probe, qid, self._mask(query), calls, total,
                                 total / calls if calls else None, max_ms))
        return out

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), self._timeout)
            except Exception:
                conn.terminate()

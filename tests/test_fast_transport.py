"""The fast transport (engine/transports/fast.py) against real servers on
127.0.0.1: aiohttp's server where it can say what is needed, a raw asyncio
socket server where the bytes themselves are the point (trailers, a close
mid-exchange). Connections and requests are counted server-side."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import ssl
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from loadaction.engine.transport import ErrorKind, PreparedRequest
from loadaction.engine.transports.fast import FastTransport
from loadaction.engine.transports.wire import ACCEPT_ENCODING

TIMEOUT = 5.0


def req(url: str, method: str = "GET", body: bytes | None = None,
        timeout: float = TIMEOUT, headers: dict[str, str] | None = None) -> PreparedRequest:
    return PreparedRequest(method, url, headers or {}, body, timeout)


class Counting:
    """An aiohttp app whose handlers see which connection each request came on."""

    def __init__(self) -> None:
        self.peers: list[tuple[str, int]] = []
        self.seen: list[web.Request] = []

    def note(self, request: web.Request) -> None:
        self.peers.append(request.transport.get_extra_info("peername"))  # type: ignore[union-attr]
        self.seen.append(request)

    @property
    def connections(self) -> int:
        return len(set(self.peers))


async def serve_app(app: web.Application, ssl_context: ssl.SSLContext | None = None
                    ) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, handler_cancellation=True)  # a dropped request ends its handler
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


def counting_app(counter: Counting) -> web.Application:
    async def hello(request: web.Request) -> web.StreamResponse:
        counter.note(request)
        return web.Response(text="hello")

    async def close(request: web.Request) -> web.StreamResponse:
        counter.note(request)
        return web.Response(text="bye", headers={"Connection": "close"})

    async def empty(request: web.Request) -> web.StreamResponse:
        counter.note(request)
        return web.Response(status=int(request.query["status"]))

    async def head(request: web.Request) -> web.StreamResponse:
        counter.note(request)
        return web.Response(body=b"x" * 100)

    async def big(request: web.Request) -> web.StreamResponse:
        counter.note(request)
        size = int(request.query["size"])
        if request.query.get("chunked"):
            resp = web.StreamResponse()
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for _ in range(size // 1000):
                await resp.write(b"y" * 1000)
            await resp.write_eof()
            return resp
        return web.Response(body=b"y" * size)

    async def gz(request: web.Request) -> web.StreamResponse:
        counter.note(request)
        return web.Response(body=gzip.compress(b"zipped " * 100),
                            headers={"Content-Encoding": "gzip"})

    async def echo(request: web.Request) -> web.StreamResponse:
        counter.note(request)
        return web.Response(body=await request.content.read())  # unbounded, unlike read()

    async def slow(request: web.Request) -> web.StreamResponse:
        counter.note(request)
        start = time.perf_counter_ns()
        await asyncio.sleep(float(request.query["s"]))
        return web.Response(text="late",
                            headers={"X-Held-Us": str((time.perf_counter_ns() - start) // 1000)})

    async def slow_body(request: web.Request) -> web.StreamResponse:
        counter.note(request)
        resp = web.StreamResponse()
        await resp.prepare(request)
        await asyncio.sleep(float(request.query["s"]))
        await resp.write(b"z" * 10_000)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/close", close)
    app.router.add_get("/empty", empty)
    app.router.add_route("HEAD", "/head", head)
    app.router.add_get("/big", big)
    app.router.add_get("/gzip", gz)
    app.router.add_post("/echo", echo)
    app.router.add_get("/slow", slow)
    app.router.add_get("/slow-body", slow_body)
    return app


def with_app(test: Callable[[FastTransport, Counting, str], Awaitable[None]],
             **transport_args: int) -> None:
    async def main() -> None:
        counter = Counting()
        runner, port = await serve_app(counting_app(counter))
        transport = FastTransport(**transport_args)  # type: ignore[arg-type]
        try:
            await test(transport, counter, f"http://127.0.0.1:{port}")
        finally:
            await transport.close()
            await runner.cleanup()
    asyncio.run(main())


def test_keep_alive_reuses_one_connection_and_times_only_the_first_connect() -> None:
    async def test(t: FastTransport, counter: Counting, base: str) -> None:
        results = [await t.send(req(base + "/")) for _ in range(5)]
        assert [(r.status, r.body, r.error_kind) for r in results] == [(200, b"hello", None)] * 5
        assert counter.connections == 1
        assert results[0].connecting_us > 0
        assert all(r.connecting_us == 0 and r.blocked_us == 0 for r in results[1:])
        for r in results:
            assert r.duration_us == r.sending_us + r.waiting_us + r.receiving_us
            assert r.tls_us == 0
            assert r.received_bytes > len(b"hello")
        # what a server sees is what aiohttp's client sends
        seen = counter.seen[0].headers
        assert seen["Accept-Encoding"] == ACCEPT_ENCODING == "gzip, deflate"
        assert seen["User-Agent"] == "loadaction/0.1"
        assert seen["Accept"] == "*/*"
        assert seen["Host"] == base.removeprefix("http://")
    with_app(test)


def test_concurrent_requests_each_get_a_connection_and_the_pool_keeps_them() -> None:
    async def test(t: FastTransport, counter: Counting, base: str) -> None:
        first = await asyncio.gather(*(t.send(req(base + "/slow?s=0.05")) for _ in range(3)))
        second = await asyncio.gather(*(t.send(req(base + "/slow?s=0.05")) for _ in range(3)))
        assert [r.status for r in first + second] == [200] * 6
        assert counter.connections == 3
        assert all(r.connecting_us == 0 for r in second)
    with_app(test)


def test_a_connection_limit_makes_requests_wait_and_blocked_counts_the_wait() -> None:
    async def test(t: FastTransport, counter: Counting, base: str) -> None:
        results = await asyncio.gather(*(t.send(req(base + "/slow?s=0.05")) for _ in range(2)))
        assert [r.status for r in results] == [200, 200]
        assert counter.connections == 1
        waited = max(results, key=lambda r: r.blocked_us)
        assert waited.blocked_us >= 40_000  # the other's 50 ms on the server
        assert min(r.blocked_us for r in results) == 0
    with_app(test, max_connections=1)


def test_connection_close_answers_are_read_and_the_next_request_connects_anew() -> None:
    async def test(t: FastTransport, counter: Counting, base: str) -> None:
        a = await t.send(req(base + "/close"))
        b = await t.send(req(base + "/"))
        assert (a.status, a.body, b.status, b.body) == (200, b"bye", 200, b"hello")
        assert counter.connections == 2
        assert b.connecting_us > 0
    with_app(test)


def test_bodyless_answers_keep_the_connection_in_step() -> None:
    async def test(t: FastTransport, counter: Counting, base: str) -> None:
        head = await t.send(req(base + "/head", "HEAD"))
        assert (head.status, head.body, head.headers["Content-Length"]) == (200, b"", "100")
        for status in (204, 304):
            r = await t.send(req(f"{base}/empty?status={status}"))
            assert (r.status, r.body, r.error_kind) == (status, b"", None)
        after = await t.send(req(base + "/"))
        assert (after.status, after.body) == (200, b"hello")
        assert counter.connections == 1
    with_app(test)


def test_bodies_over_the_bound_are_truncated_and_within_it_read_whole() -> None:
    async def test(t: FastTransport, counter: Counting, base: str) -> None:
        whole = await t.send(req(base + "/big?size=4000"))
        assert (len(whole.body), whole.truncated) == (4000, False)
        for url in ("/big?size=10000", "/big?size=10000&chunked=1"):
            r = await t.send(req(base + url))
            assert (r.status, len(r.body), r.truncated, r.error_kind) == (200, 4096, True, None)
        assert (await t.send(req(base + "/"))).body == b"hello"  # a dropped connection is replaced
    with_app(test, max_body_bytes=4096)


def test_gzip_is_decoded_and_post_bodies_are_sent() -> None:
    async def test(t: FastTransport, counter: Counting, base: str) -> None:
        r = await t.send(req(base + "/gzip"))
        assert (r.status, r.body, r.headers["Content-Encoding"]) == (200, b"zipped " * 100, "gzip")
        echo = await t.send(req(base + "/echo", "POST", b"payload"))
        assert (echo.status, echo.body) == (200, b"payload")
        assert counter.seen[1].headers["Content-Length"] == "7"
    with_app(test)


def test_a_slow_answer_times_out_within_the_request_timeout() -> None:
    async def test(t: FastTransport, counter: Counting, base: str) -> None:
        r = await t.send(req(base + "/slow?s=30", timeout=0.2))
        assert (r.status, r.error_kind) == (0, ErrorKind.TIMEOUT)
        assert r.error == "request timeout after 0.2s"
        assert r.duration_us < 2_000_000
    with_app(test)


def test_a_refused_connection_is_a_connect_error() -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        t = FastTransport()
        r = await t.send(req(f"http://127.0.0.1:{port}/"))
        await t.close()
        assert (r.status, r.error_kind) == (0, ErrorKind.CONNECT)
        assert r.error is not None and f"127.0.0.1:{port}" in r.error
    asyncio.run(main())


# ---------------------------------------------------------------- raw sockets

class RawServer:
    """Answers each request with `answer(connection number, request number on
    it)`: bytes to write, then whether to keep the connection; None closes it
    without answering. Counts connections and requests."""

    def __init__(self, answer: Callable[[int, int], tuple[bytes, bool] | None]) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[tuple[int, bytes]] = []
        self.request_lines: list[bytes] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = self.connections
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                n += 1
                self.requests.append((conn, head.split(b" ", 1)[0]))
                self.request_lines.append(head.split(b"\r\n", 1)[0])
                out = self.answer(conn, n)
                if out is None:
                    break
                data, keep = out
                writer.write(data)
                await writer.drain()
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_chunked_with_extensions_and_trailers() -> None:
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Head: 1\r\n\r\n"
               b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")

    async def main() -> None:
        async with RawServer(lambda c, n: (chunked, True)) as base:
            t = FastTransport()
            a = await t.send(req(base + "/"))
            b = await t.send(req(base + "/"))
            await t.close()
        assert (a.status, a.body, a.error_kind) == (200, b"hello world", None)
        assert a.headers["X-Head"] == "1" and "X-Trailer" not in a.headers  # as aiohttp
        assert b.body == b"hello world" and b.connecting_us == 0
    asyncio.run(main())


def test_interim_answers_are_skipped() -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n" + OK

    async def main() -> None:
        async with RawServer(lambda c, n: (answer, True)) as base:
            t = FastTransport()
            r = await t.send(req(base + "/"))
            again = await t.send(req(base + "/"))
            await t.close()
        assert (r.status, r.body, "Link" in r.headers) == (200, b"ok", False)
        assert again.status == 200
    asyncio.run(main())


def stale_second(conn: int, n: int) -> tuple[bytes, bool] | None:
    """The first connection answers once, then closes on the next request
    without a byte (as a server timing out an idle connection does, in the
    moment the request was on its way); later connections answer."""
    if conn == 1 and n > 1:
        return None
    return OK, True


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE"])
def test_an_idempotent_request_on_a_stale_connection_is_sent_again_once(method: str) -> None:
    async def main() -> None:
        server = RawServer(stale_second)
        async with server as base:
            t = FastTransport()
            first = await t.send(req(base + "/"))
            second = await t.send(req(base + "/", method))
            await t.close()
        assert first.status == 200
        assert (second.status, second.error_kind) == (200, None)
        assert second.connecting_us > 0  # the new connection's
        assert server.connections == 2
        assert [m for _, m in server.requests] == [b"GET", method.encode(), method.encode()]
    asyncio.run(main())


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_a_post_on_a_stale_connection_is_never_sent_again(method: str) -> None:
    async def main() -> None:
        server = RawServer(stale_second)
        async with server as base:
            t = FastTransport()
            await t.send(req(base + "/"))
            r = await t.send(req(base + "/", method, b"{}"))
            after = await t.send(req(base + "/"))
            await t.close()
        assert (r.status, r.error_kind) == (0, ErrorKind.DISCONNECT)
        assert server.connections == 2  # the second for `after` only
        assert [m for _, m in server.requests] == [b"GET", method.encode(), b"GET"]
        assert after.status == 200
    asyncio.run(main())


def test_a_server_closing_an_idle_connection_costs_no_error() -> None:
    async def main() -> None:
        server = RawServer(lambda c, n: (OK, False))  # answers, then closes (no Connection header)
        async with server as base:
            t = FastTransport()
            results = []
            for _ in range(3):
                results.append(await t.send(req(base + "/")))
                await asyncio.sleep(0.01)  # let the close arrive while idle (or not: either way)
            await t.close()
        assert [(r.status, r.error_kind) for r in results] == [(200, None)] * 3
        assert server.connections == 3 and len(server.requests) == 3
    asyncio.run(main())


def test_a_close_before_the_body_ends_is_a_disconnect() -> None:
    short = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"

    async def main() -> None:
        async with RawServer(lambda c, n: (short, False)) as base:
            t = FastTransport()
            r = await t.send(req(base + "/"))
            await t.close()
        assert (r.status, r.error_kind, r.error) == (0, ErrorKind.DISCONNECT,
                                                    "incomplete response body")
    asyncio.run(main())


def test_an_invalid_status_line_is_a_protocol_error() -> None:
    async def main() -> None:
        async with RawServer(lambda c, n: (b"HTTP/1.1 abc\r\n\r\n", False)) as base:
            t = FastTransport()
            r = await t.send(req(base + "/"))
            await t.close()
        assert (r.status, r.error_kind) == (0, ErrorKind.PROTOCOL)
    asyncio.run(main())


# ---------------------------------------------------------------- TLS

@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def with_tls_app(certificate: tuple[Path, Path],
                 test: Callable[[Counting, int], Awaitable[None]]) -> None:
    async def main() -> None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*certificate)
        counter = Counting()
        counter.sni = []  # type: ignore[attr-defined]
        ctx.sni_callback = lambda _obj, name, _ctx: counter.sni.append(name)  # type: ignore[attr-defined]
        runner, port = await serve_app(counting_app(counter), ctx)
        try:
            await test(counter, port)
        finally:
            await runner.cleanup()
    asyncio.run(main())


def test_tls_with_verification_skipped_times_the_handshake_on_new_connections_only(
        certificate: tuple[Path, Path]) -> None:
    async def test(counter: Counting, port: int) -> None:
        t = FastTransport(insecure_skip_tls_verify=True)
        results = [await t.send(req(f"https://localhost:{port}/")) for _ in range(3)]
        await t.close()
        assert [(r.status, r.body) for r in results] == [(200, b"hello")] * 3
        assert results[0].tls_us > 0 and results[0].connecting_us > 0
        assert all(r.tls_us == 0 and r.connecting_us == 0 for r in results[1:])
        assert counter.connections == 1
        assert counter.sni == ["localhost"]  # type: ignore[attr-defined]  # SNI, once
    with_tls_app(certificate, test)


def test_tls_verification_refuses_a_self_signed_certificate(
        certificate: tuple[Path, Path]) -> None:
    async def test(counter: Counting, port: int) -> None:
        t = FastTransport()
        r = await t.send(req(f"https://localhost:{port}/"))
        await t.close()
        assert (r.status, r.error_kind) == (0, ErrorKind.TLS)
        assert r.error is not None and "certificate" in r.error.lower()
        assert counter.connections == 0
    with_tls_app(certificate, test)


@pytest.mark.parametrize("client", ["fast", "aiohttp"])
@pytest.mark.parametrize("insecure", [True, False])
def test_the_plans_insecure_skip_tls_verify_holds_for_requests_and_chaos_aborts(
        certificate: tuple[Path, Path], tmp_path: Path, client: str, insecure: bool) -> None:
    """defaults.insecureSkipTLSVerify reaches both transports and the aborted
    requests chaos sends on connections of their own; without it, a
    self-signed staging certificate is refused by all three."""
    from loadaction.engine.transports import transport_for
    from loadaction.plan import load_plan

    async def test(counter: Counting, port: int) -> None:
        plan_file = tmp_path / "plan.yml"
        plan_file.write_text(
            f"target: https://localhost:{port}\n"
            f"defaults: {{insecureSkipTLSVerify: {str(insecure).lower()}}}\n"
            "scenarios:\n  s: {executor: per-vu-iterations, exec: f}\n"
            "flows:\n  f: [{request: {url: /}}]\n")
        t = transport_for(load_plan(plan_file), client, {})
        sent = await t.send(req(f"https://localhost:{port}/"))
        aborted = await t.send_and_abort(req(f"https://localhost:{port}/", "POST", b"{}"))
        await t.close()
        if insecure:
            assert (sent.status, sent.body) == (200, b"hello")
            assert aborted.error_kind is ErrorKind.ABORTED_BY_CHAOS  # written, then hung up
        else:
            assert (sent.status, sent.error_kind) == (0, ErrorKind.TLS)
            assert (aborted.status, aborted.error_kind) == (0, ErrorKind.TLS)
    with_tls_app(certificate, test)


# ---------------------------------------------------------------- selection

def test_http_client_fast_runs_a_plan_end_to_end(target, write_plan, run_plan) -> None:  # type: ignore[no-untyped-def]
    plan = write_plan(f"""
        target: {target.url}
        scenarios:
          s: {{executor: per-vu-iterations, vus: 2, iterations: 3, exec: f}}
        flows:
          f: [{{request: {{url: /ok}}}}, {{check: {{status: 200}}}}]
    """)
    before = target.hits["/ok"]
    code, doc = run_plan(plan, "--http-client", "fast")
    assert code == 0
    assert target.hits["/ok"] - before == 6
    assert doc["metrics"]["http_reqs"]["total"]["count"] == 6
    assert doc["metrics"]["checks"]["total"]["rate"] == 1.0


PLAN = """
    target: http://127.0.0.1:1
    scenarios:
      s: {executor: per-vu-iterations, exec: f}
    flows:
      f: [{request: {url: /ok}}]
"""


def test_the_flag_beats_the_plan_which_beats_the_default_fast(write_plan) -> None:  # type: ignore[no-untyped-def]
    from loadaction.engine.runner import Run
    from loadaction.engine.transports import AiohttpTransport, transport_for
    from loadaction.plan import load_plan
    from loadaction.session import build_run
    plan = load_plan(write_plan(PLAN))
    assert isinstance(transport_for(plan, None, {}), FastTransport)  # the default
    assert isinstance(Run(plan).state.transport, FastTransport)  # the engine's fallback too
    assert isinstance(transport_for(plan, "aiohttp", {}), AiohttpTransport)
    assert isinstance(build_run(plan, http_client="aiohttp").state.transport, AiohttpTransport)
    in_plan = load_plan(write_plan(PLAN + "    defaults: {httpClient: aiohttp, "
                                   "insecureSkipTLSVerify: true}\n"))
    chosen = transport_for(in_plan, None, {})
    assert isinstance(chosen, AiohttpTransport) and chosen.insecure_skip_tls_verify
    flagged = transport_for(in_plan, "fast", {})
    assert isinstance(flagged, FastTransport) and flagged.insecure_skip_tls_verify


@pytest.mark.parametrize("defaults, message", [
    ("{httpClient: curl}", "httpClient"),
    ("{insecureSkipTLSVerify: maybe}", "insecureSkipTLSVerify"),
])
def test_bad_http_client_settings_name_the_key_and_line(write_plan, defaults: str,  # type: ignore[no-untyped-def]
                                                        message: str) -> None:
    from loadaction.errors import PlanError
    from loadaction.plan import load_plan
    path = write_plan(PLAN + f"    defaults: {defaults}\n")
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    text = str(caught.value)
    line = path.read_text().splitlines().index(f"defaults: {defaults}") + 1
    assert message in text and f"{path.name}:{line}:" in text and "\n" not in text


def test_with_a_proxy_in_the_environment_every_request_goes_through_it(  # type: ignore[no-untyped-def]
        write_plan, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even with fast asked for by name: a proxy a team routes staging
    traffic through must never be bypassed."""
    from loadaction.engine.status import RunStatus
    from loadaction.plan import load_plan
    from loadaction.session import build_run
    plan = load_plan(write_plan(PLAN))
    proxy = RawServer(lambda conn, n: (OK, True))

    async def main() -> None:
        async with proxy as url:
            monkeypatch.setenv("HTTP_PROXY", url)
            outcome = await build_run(plan, http_client="fast").execute()
        assert outcome.status is RunStatus.COMPLETE
        reqs = outcome.registry.select("http_req_failed")
        assert reqs is not None and (reqs.total, reqs.passes) == (1, 0)  # type: ignore[union-attr]

    asyncio.run(main())
    # nothing listens on the target's port 1: only the proxy could answer
    assert proxy.request_lines == [b"GET http://127.0.0.1:1/ok HTTP/1.1"]


def test_a_large_post_body_is_sent_whole_and_timed_as_sending() -> None:
    async def test(t: FastTransport, counter: Counting, base: str) -> None:
        body = bytes(range(256)) * 16384  # 4 MiB: more than a socket buffer holds
        r = await t.send(req(base + "/echo", "POST", body))
        assert (r.status, r.truncated) == (200, True)  # the echo is bounded, the request is not
        assert counter.seen[0].headers["Content-Length"] == str(len(body))
        assert r.body == body[:1 << 20]
        assert r.sending_us > 0
    with_app(test)


def test_each_vu_keeps_its_own_connections_unless_the_pool_is_shared() -> None:
    from loadaction.engine.transport import CONNECTION_OWNER

    async def as_vu(t: FastTransport, owner: object, url: str) -> int:
        CONNECTION_OWNER.set(owner)  # as the engine's requester does before each send
        return (await t.send(req(url))).connecting_us

    for per_vu, connections in ((True, 2), (False, 1)):
        async def test(t: FastTransport, counter: Counting, base: str) -> None:
            a, b = object(), object()
            # one after the other: a shared pool would hand a's idle connection to b
            for owner in (a, b, a, b):
                await asyncio.create_task(as_vu(t, owner, base + "/"))
            assert counter.connections == connections
            assert len(counter.peers) == 4
        with_app(test, per_vu=per_vu)


def test_waiting_tracks_the_servers_hold_and_receiving_a_late_body() -> None:
    async def test(t: FastTransport, counter: Counting, base: str) -> None:
        # what waiting is without a hold, on this machine now: the margin
        quick = [await t.send(req(base + "/slow?s=0")) for _ in range(5)]
        margin = 1000 + 3 * statistics.median(r.waiting_us for r in quick)
        held = await t.send(req(base + "/slow?s=0.05"))
        hold_us = int(held.headers["X-Held-Us"])
        assert hold_us >= 49_000  # asyncio may wake a clock tick early
        assert 0 <= held.waiting_us - hold_us <= margin
        late = await t.send(req(base + "/slow-body?s=0.05"))
        assert (late.status, len(late.body)) == (200, 10_000)
        assert late.receiving_us >= 45_000 and late.waiting_us < late.receiving_us
        assert late.duration_us == late.sending_us + late.waiting_us + late.receiving_us
    with_app(test)


def test_a_scheme_it_does_not_speak_is_declined_to_aiohttp() -> None:
    from loadaction.engine.transports.aiohttp import AiohttpTransport

    async def main() -> tuple[object, object]:
        fast, slow = FastTransport(), AiohttpTransport()
        a = await fast.send(req("ftp://127.0.0.1:1/file"))
        b = await slow.send(req("ftp://127.0.0.1:1/file"))
        await fast.close()
        await slow.close()
        return (a.status, a.error_kind, a.error), (b.status, b.error_kind, b.error)

    fast_outcome, aiohttp_outcome = asyncio.run(main())
    assert fast_outcome == aiohttp_outcome
    assert fast_outcome[0] == 0 and fast_outcome[1] is not None


def test_a_truncated_answer_counts_what_was_read_not_the_rest_of_the_socket_read() -> None:
    async def test(t: FastTransport, counter: Counting, base: str) -> None:
        r = await t.send(req(base + "/big?size=4000000&chunked=1"))
        assert (len(r.body), r.truncated) == (65536, True)
        assert 65536 < r.received_bytes < 65536 + 1024  # the bound and the head
    with_app(test, max_body_bytes=65536)


def test_an_unasked_second_answer_in_the_same_read_never_replaces_the_first() -> None:
    two = OK + b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"

    async def main() -> None:
        server = RawServer(lambda c, n: (two, True))
        async with server as base:
            t = FastTransport()
            a = await t.send(req(base + "/"))
            b = await t.send(req(base + "/"))
            await t.close()
        assert (a.status, a.body, b.status, b.body) == (200, b"ok", 200, b"ok")
        assert server.connections == 2  # the first was out of step, so dropped
    asyncio.run(main())

"""A stand-in for Toxiproxy's REST API, for the adapter tests: no TCP proxying,
only the routes the adapter uses, answering as Toxiproxy 2.x does.

Toxiproxy's shapes (api.go, toxic_collection.go, toxics/*.go):
- a proxy is `{"name", "listen", "upstream", "enabled", "toxics": [...]}`;
  `GET /proxies` maps names to proxies;
- a toxic is `{"name", "type", "stream", "toxicity", "attributes"}`, the
  attributes holding every field of its type, defaults included;
- `POST /proxies/{proxy}/toxics` answers 200 with the toxic; stream defaults
  to downstream, toxicity to 1, the name to `<type>_<stream>`;
- `DELETE .../toxics/{toxic}` answers 204 with no body;
- errors are `{"error": "...", "status": N}` written by Go's http.Error, so
  they arrive as text/plain with a trailing newline: 404 "proxy not found" /
  "toxic not found", 409 "toxic already exists", 400 "invalid toxic type",
  "stream was invalid, can be either upstream or downstream",
  "bad request body: ...".

`received` records each toxic-creating request body, as sent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# Every attribute of each toxic type, with the zero value Go's decoder leaves.
TOXIC_ATTRIBUTES: Mapping[str, Mapping[str, int]] = {
    "latency": {"latency": 0, "jitter": 0},
    "bandwidth": {"rate": 0},
    "slow_close": {"delay": 0},
    "timeout": {"timeout": 0},
    "reset_peer": {"timeout": 0},
    "slicer": {"average_size": 0, "size_variation": 0, "delay": 0},
    "limit_data": {"bytes": 0},
}


class ApiError(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def response(self) -> web.Response:
        body = json.dumps({"error": self.message, "status": self.status}, separators=(",", ":"))
        return web.Response(status=self.status, text=body + "\n", content_type="text/plain",
                            charset="utf-8", headers={"X-Content-Type-Options": "nosniff"})


PROXY_NOT_FOUND = ApiError("proxy not found", 404)
TOXIC_NOT_FOUND = ApiError("toxic not found", 404)
TOXIC_EXISTS = ApiError("toxic already exists", 409)
INVALID_TYPE = ApiError("invalid toxic type", 400)
INVALID_STREAM = ApiError("stream was invalid, can be either upstream or downstream", 400)


def bad_body(reason: str) -> ApiError:
    return ApiError(f"bad request body: {reason}", 400)


@dataclass
class Proxy:
    name: str
    listen: str
    upstream: str
    enabled: bool = True
    toxics: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "listen": self.listen, "upstream": self.upstream,
                "enabled": self.enabled, "toxics": list(self.toxics.values())}


@dataclass
class FakeToxiproxy:
    proxies: dict[str, Proxy] = field(default_factory=dict)
    received: list[Any] = field(default_factory=list)
    url: str = ""

    def add_proxy(self, name: str, listen: str = "127.0.0.1:0", upstream: str = "127.0.0.1:1") -> Proxy:
        self.proxies[name] = Proxy(name, listen, upstream)
        return self.proxies[name]

    def _proxy(self, request: web.Request) -> Proxy:
        proxy = self.proxies.get(request.match_info["proxy"])
        if proxy is None:
            raise PROXY_NOT_FOUND
        return proxy

    # ---------------------------------------------------------------- routes

    async def proxy_index(self, request: web.Request) -> web.Response:
        return web.json_response({name: p.as_json() for name, p in self.proxies.items()})

    async def proxy_show(self, request: web.Request) -> web.Response:
        return web.json_response(self._proxy(request).as_json())

    async def toxic_index(self, request: web.Request) -> web.Response:
        return web.json_response(list(self._proxy(request).toxics.values()))

    async def toxic_create(self, request: web.Request) -> web.Response:
        proxy = self._proxy(request)
        raw = await request.text()
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise bad_body(str(exc)) from None
        self.received.append(body)
        if not isinstance(body, dict):
            raise bad_body("json: cannot unmarshal into Go value of type toxics.ToxicWrapper")
        stream = body.get("stream", "downstream")
        if stream not in ("upstream", "downstream"):
            raise INVALID_STREAM
        toxic_type = body.get("type", "")
        name = body.get("name") or f"{toxic_type}_{stream}"
        if toxic_type not in TOXIC_ATTRIBUTES:
            raise INVALID_TYPE
        if name in proxy.toxics:
            raise TOXIC_EXISTS
        attributes = dict(TOXIC_ATTRIBUTES[toxic_type])
        for key, value in (body.get("attributes") or {}).items():
            if key not in attributes:
                continue  # Go's decoder ignores unknown fields
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad_body(f"json: cannot unmarshal {type(value).__name__} into Go struct field"
                               f" .attributes.{key} of type int64")
            attributes[key] = value
        toxicity = body.get("toxicity", 1.0)
        toxic = {"attributes": attributes, "name": name, "type": toxic_type, "stream": stream,
                 "toxicity": float(toxicity)}
        proxy.toxics[name] = toxic
        return web.json_response(toxic)

    async def toxic_show(self, request: web.Request) -> web.Response:
        toxic = self._proxy(request).toxics.get(request.match_info["toxic"])
        if toxic is None:
            raise TOXIC_NOT_FOUND
        return web.json_response(toxic)

    async def toxic_delete(self, request: web.Request) -> web.Response:
        proxy = self._proxy(request)
        if proxy.toxics.pop(request.match_info["toxic"], None) is None:
            raise TOXIC_NOT_FOUND
        return web.Response(status=204)

    def app(self) -> web.Application:
        @web.middleware
        async def api_errors(request: web.Request, handler: Any) -> web.StreamResponse:
            try:
                return await handler(request)
            except ApiError as exc:
                return exc.response()

        app = web.Application(middlewares=[api_errors])
        app.router.add_get("/proxies", self.proxy_index)
        app.router.add_get("/proxies/{proxy}", self.proxy_show)
        app.router.add_get("/proxies/{proxy}/toxics", self.toxic_index)
        app.router.add_post("/proxies/{proxy}/toxics", self.toxic_create)
        app.router.add_get("/proxies/{proxy}/toxics/{toxic}", self.toxic_show)
        app.router.add_delete("/proxies/{proxy}/toxics/{toxic}", self.toxic_delete)
        return app


@asynccontextmanager
async def running_toxiproxy(*proxy_names: str) -> AsyncIterator[FakeToxiproxy]:
    """Serve a fake Toxiproxy API on 127.0.0.1 and an ephemeral port."""
    fake = FakeToxiproxy()
    for name in proxy_names:
        fake.add_proxy(name)
    runner = web.AppRunner(fake.app(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        yield fake
    finally:
        await runner.cleanup()

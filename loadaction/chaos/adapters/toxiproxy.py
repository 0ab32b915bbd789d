"""The `toxiproxy` adapter: a toxic added to a Toxiproxy proxy through its REST API.

The toxic is named `loadaction-<fault name>`, so a run can find its own toxic
again: to remove it at rollback, and to replace one a killed run left behind
(Toxiproxy answers 409 to a second toxic of the same name).

What it can guarantee: rollback deletes the toxic, and "not found" (404, for
the toxic or the whole proxy) counts as already rolled back. What it cannot:
expiry. Toxiproxy has no TTL on toxics, so a runner killed with SIGKILL leaves
the toxic in place until the next run of the same plan replaces and removes
it, or someone runs `toxiproxy-cli toxic remove -n loadaction-<fault> <proxy>`
(or `POST /reset`, which removes every toxic). Keep Toxiproxy on staging only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from loadaction.chaos.adapters.base import (
    AdapterError,
    Render,
    display_url,
    one_line,
    render_value,
)
from loadaction.chaos.adapters.http import Response, send
from loadaction.plan.model import ToxiproxyFault

TIMEOUT_S = 10.0
TOXIC_PREFIX = "loadaction-"


def toxic_name(fault_name: str) -> str:
    return TOXIC_PREFIX + fault_name


def _reason(response: Response) -> str:
    """Toxiproxy's own words: errors are `{"error": "...", "status": N}`."""
    doc = response.json()
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return one_line(doc["error"])
    return one_line(response.text) or "no body"


class ToxiproxyAdapter:
    """Adds the fault's toxic on start and deletes it on rollback."""

    def __init__(self, fault: ToxiproxyFault, render: Render, *, fault_name: str) -> None:
        self._fault = fault
        self._render = render
        self._name = toxic_name(fault_name)

    def _toxics_url(self) -> str:
        api = render_value(self._render, self._fault.api, "toxiproxy api")
        if not isinstance(api, str) or not api.startswith(("http://", "https://")):
            raise AdapterError("toxiproxy api must render to an http(s):// URL")
        return f"{api.rstrip('/')}/proxies/{quote(self._fault.proxy, safe='')}/toxics"

    def _toxic(self) -> dict[str, Any]:
        attributes = render_value(self._render, self._fault.attributes, "toxiproxy attributes")
        if not isinstance(attributes, Mapping):
            raise AdapterError(f"toxiproxy attributes rendered to {type(attributes).__name__},"
                               " expected a mapping")
        return {"name": self._name, "type": self._fault.toxic_type, "stream": self._fault.stream,
                "toxicity": self._fault.toxicity, "attributes": dict(attributes)}

    async def start(self) -> None:
        url = self._toxics_url()
        toxic = self._toxic()
        response = await send("POST", url, json=toxic, timeout=TIMEOUT_S)
        if response.status == 409:
            # Left over by a run that died before its rollback: ours by name, so replace it.
            await self._delete(url)
            response = await send("POST", url, json=toxic, timeout=TIMEOUT_S)
        if response.status == 404:
            raise AdapterError(f"toxiproxy at {display_url(url.rsplit('/proxies/', 1)[0])}:"
                               f" no proxy named {self._fault.proxy!r}")
        if not 200 <= response.status < 300:
            raise AdapterError(f"toxiproxy refused toxic {self._name!r} on proxy {self._fault.proxy!r}:"
                               f" HTTP {response.status}: {_reason(response)}")

    async def rollback(self) -> None:
        await self._delete(self._toxics_url())

    async def _delete(self, toxics_url: str) -> None:
        response = await send("DELETE", f"{toxics_url}/{quote(self._name, safe='')}", timeout=TIMEOUT_S)
        if response.status == 404 or 200 <= response.status < 300:
            return  # 404: the toxic, or its whole proxy, is already gone
        raise AdapterError(f"toxiproxy could not remove toxic {self._name!r} from proxy"
                           f" {self._fault.proxy!r}: HTTP {response.status}: {_reason(response)}")

"""The demo target in a process of its own, for `loadaction demo`.

In the load generator's process the target's /metrics would report the
generator's memory too: its warm-up (new metric series, sockets, buffers)
grows RSS by about as much as a small leak would, and a memory-slope budget
could not tell them apart. In its own process the target's RSS is its own,
as a staging's is.

The parent writes one JSON line of settings on the child's stdin (the
database URL travels there, never on a command line) and reads one JSON
line back: where the target listens, or why it could not start. The child
serves until its stdin closes, so it ends with its parent however the
parent ends; it ignores SIGINT (Ctrl-C is the parent's to handle).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from loadaction.demo.auth import DemoKeys
from loadaction.demo.faults import Faults
from loadaction.demo.serve import StoreUnavailable

STOP_TIMEOUT_S = 10.0
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}


@asynccontextmanager
async def child_target(database_url: str | None, faults: Faults, keys: DemoKeys
                       ) -> AsyncIterator[tuple[str, str]]:
    """Serve the target in a child process; yields (url, store description).

    Raises what `running_target` raises (ImportError, ValueError,
    StoreUnavailable, OSError), carried over from the child."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "loadaction.demo.child", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, start_new_session=True, env={**os.environ, **MALLOC_ENV})
    assert process.stdin is not None and process.stdout is not None
    try:
        settings = {"database_url": database_url, "faults": faults.as_dict(), "keys": asdict(keys)}
        process.stdin.write(json.dumps(settings).encode() + b"\n")
        await process.stdin.drain()
        line = await process.stdout.readline()
        started = json.loads(line) if line.strip() else {"error": "exited", "message": "no answer"}
        if "error" in started:
            _raise(started)
        yield started["url"], started["store"]
    finally:
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            process.kill()
            await process.wait()


def _raise(answer: dict[str, Any]) -> None:
    kind, message = answer["error"], answer.get("message", "")
    if kind == "import":
        raise ImportError(message, name=answer.get("name"))
    if kind == "value":
        raise ValueError(message)
    if kind == "os":
        raise OSError(message)
    raise StoreUnavailable(message)


async def _serve() -> None:
    from loadaction.demo.serve import running_target

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    settings = json.loads(await reader.readline())

    def answer(doc: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(doc) + "\n")
        sys.stdout.flush()

    try:
        async with running_target(database_url=settings["database_url"],
                                  faults=Faults(**settings["faults"]),
                                  keys=DemoKeys(**settings["keys"])) as target:
            answer({"url": target.url, "store": target.store_description})
            while await reader.read(65536):  # until the parent closes our stdin
                pass
    except ImportError as exc:
        answer({"error": "import", "message": str(exc), "name": exc.name})
    except ValueError as exc:
        answer({"error": "value", "message": str(exc)})
    except StoreUnavailable as exc:
        answer({"error": "store", "message": str(exc)})
    except OSError as exc:
        answer({"error": "os", "message": str(exc)})


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(_serve())

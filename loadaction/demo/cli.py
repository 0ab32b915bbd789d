"""`loadaction demo-target`: serve the demo target until SIGINT/SIGTERM.

Prints `export NAME=value` lines on stdout (and nothing else there), so
`eval "$(loadaction demo-target &)"`-style wrappers, another shell, k6 or curl
can pick up the URL and keys; human-facing notes go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any

from loadaction.argtypes import port_number
from loadaction.demo.auth import DemoKeys
from loadaction.demo.faults import FLAG_HELP, Faults, Invalid, parse_flags
from loadaction.demo.serve import StoreUnavailable, is_loopback, running_target
from loadaction.errors import ExitCode

PROG = "loadaction demo-target"


def add_demo_target_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `demo-target` on the main CLI's subparsers."""
    parser = subparsers.add_parser(
        "demo-target", help="serve the bundled ticketing target (Supabase + Stripe shaped)",
        description="Serve the demo ticketing target until SIGINT/SIGTERM. Keys come from "
                    "SUPABASE_ANON_KEY, SUPABASE_SERVICE_ROLE_KEY and STRIPE_WEBHOOK_SECRET, or "
                    "are generated; `export` lines for them and SUPABASE_URL go to stdout.")
    parser.add_argument("--host", default=None,
                        help="address to bind (default 127.0.0.1; any other address is only "
                             "used when given here explicitly)")
    parser.add_argument("--port", type=port_number, default=0, help="port (default 0: any free port)")
    parser.add_argument("--database-url", metavar="URL",
                        help="postgresql://… to use PostgreSQL (needs asyncpg); default SQLite "
                             "in memory")
    parser.add_argument("--fault", action="append", default=[], metavar="SPEC",
                        help=f"start with a fault: {FLAG_HELP} (repeatable; change later via "
                             "/_control/faults)")
    return parser


def _fail(message: str, code: ExitCode) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return code


def _describe(faults: Faults) -> str:
    active = [f"{k}={v}" for k, v in faults.as_dict().items() if v not in (0, 0.0, False)]
    return ", ".join(active) or "none"


async def _serve(host: str, port: int, database_url: str | None, faults: Faults,
                 keys: DemoKeys, explicit_host: bool) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with running_target(host, port, database_url, faults, keys,
                                  allow_remote=explicit_host) as target:
            sys.stdout.write("".join(f"{line}\n" for line in target.export_lines()))
            sys.stdout.flush()
            if not is_loopback(host):
                print(f"{PROG}: warning: reachable from the network on {host}; the keys above "
                      "grant full access, including fault control", file=sys.stderr)
            print(f"{PROG}: serving {target.url} ({target.store_description}; faults: "
                  f"{_describe(faults)}); Ctrl-C to stop", file=sys.stderr, flush=True)
            await stop.wait()
    except ImportError as exc:
        return _fail(f"--database-url needs asyncpg ({exc.name} not installed): "
                     "pip install asyncpg", ExitCode.INVALID)
    except ValueError as exc:
        return _fail(str(exc), ExitCode.INVALID)
    except StoreUnavailable as exc:
        return _fail(f"cannot open the database: {exc}", ExitCode.NOT_CARRIED_OUT)
    except OSError as exc:
        return _fail(f"cannot listen on {host}:{port}: {exc}", ExitCode.NOT_CARRIED_OUT)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return ExitCode.OK


def run_demo_target(args: argparse.Namespace) -> int:
    """Run the parsed `demo-target` command; returns the exit code."""
    faults = parse_flags(args.fault)
    if isinstance(faults, Invalid):
        return _fail(faults.message, ExitCode.INVALID)
    if not 0 <= args.port <= 65535:
        return _fail(f"--port must be from 0 to 65535, got {args.port}", ExitCode.INVALID)
    keys = DemoKeys.from_env(os.environ)
    if problem := keys.problem():
        return _fail(problem, ExitCode.INVALID)
    host = args.host if args.host is not None else "127.0.0.1"
    return asyncio.run(_serve(host, args.port, args.database_url, faults, keys,
                              explicit_host=args.host is not None))

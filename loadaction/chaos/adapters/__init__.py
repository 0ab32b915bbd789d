"""Infrastructure fault adapters: how a fault is started and rolled back on
systems outside the load generator (DESIGN.md §8).

    adapter = build_adapter(fault.action, render, fault_name=fault.name, duration_s=fault.duration)
    await adapter.start()      # AdapterError on failure
    ...
    await adapter.rollback()   # idempotent; AdapterError on failure

Each module's docstring says what its adapter can and cannot guarantee about
expiry when the runner dies before rolling back.
"""

from __future__ import annotations

from loadaction.chaos.adapters.base import AdapterError, FaultAdapter, Render
from loadaction.chaos.adapters.chaostoolkit import ChaosToolkitAdapter
from loadaction.chaos.adapters.command import CommandAdapter
from loadaction.chaos.adapters.http import HttpAdapter
from loadaction.chaos.adapters.toxiproxy import ToxiproxyAdapter
from loadaction.plan.model import (
    ChaosToolkitFault,
    CommandFault,
    HttpFault,
    ToxiproxyFault,
)

InfraFault = HttpFault | CommandFault | ToxiproxyFault | ChaosToolkitFault


def build_adapter(action: InfraFault, render: Render, *, fault_name: str,
                  duration_s: float) -> FaultAdapter:
    """The adapter for one fault. Nothing is contacted until start().

    No adapter can make a fault expire on its own: the http endpoint must be
    asked for a TTL in the plan (the demo target's `expires_in_s`), Toxiproxy
    has none, and commands and Chaos Toolkit activities must arrange their
    own undo; `duration_s` is handed to the latter two for that
    (LOADACTION_FAULT_DURATION_S, `${loadaction_fault_duration_s}`).
    """
    match action:
        case HttpFault():
            return HttpAdapter(action, render)
        case CommandFault():
            return CommandAdapter(action, render, fault_name=fault_name, duration_s=duration_s)
        case ToxiproxyFault():
            return ToxiproxyAdapter(action, render, fault_name=fault_name)
        case ChaosToolkitFault():
            return ChaosToolkitAdapter(action, render, fault_name=fault_name, duration_s=duration_s)
    raise TypeError(f"no adapter for {type(action).__name__} (a client-side fault?)")


__all__ = ["AdapterError", "ChaosToolkitAdapter", "CommandAdapter", "FaultAdapter", "HttpAdapter",
           "InfraFault", "Render", "ToxiproxyAdapter", "build_adapter"]

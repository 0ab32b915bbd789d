"""The garbage collector's policy while the load runs: no full collections.

Why: CPython's full (generation 2) collection walks every tracked object,
and a load generator's long-lived heap is its VUs (about 60 objects each).
At 10,000 VUs that is ~600,000 objects and a 300-600 ms pause, and the
default rule (a full pass whenever a quarter more objects were promoted)
ran one every second: the client's own stalls showed up as the tail of
every request in flight, and its schedule fell to a third (bench/ and
README "Honest tails" have the figures). Nearly nothing a full pass finds
during the load is garbage: it reported 0 collected objects on every pass
but the last.

So, for the load phase: everything alive when it starts is frozen
(gc.freeze: never scanned again), and generation 2 is not collected
automatically. The young generations still run, so short-lived reference
cycles die as before. Cycles that outlive two young collections (a
keep-alive connection closed while idle, a WebSocket session) wait until
the load ends, when the thresholds come back and the next automatic full
pass finds them; the soak bench (bench/SOAK.md) checks that the process
does not grow meanwhile. Both steps are O(1): no collection is forced, so
a test process that runs hundreds of short loads pays nothing for them.

A nested use (a Run inside a Run's process while one is loading) leaves the
outer one in charge: the policy is recognised by its own threshold.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_NO_FULL_COLLECTIONS = 1_000_000_000  # generation 2's threshold while the load runs


@contextmanager
def load_phase() -> Iterator[None]:
    young0, young1, full = gc.get_threshold()
    if full == _NO_FULL_COLLECTIONS or not gc.isenabled():
        yield  # an outer load phase (or the caller's own choice) is in charge
        return
    gc.freeze()
    gc.set_threshold(young0, young1, _NO_FULL_COLLECTIONS)
    try:
        yield
    finally:
        gc.set_threshold(young0, young1, full)
        gc.unfreeze()

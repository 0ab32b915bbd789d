"""The bundled demo target: a ticketing system shaped like the seed's Supabase
+ Stripe staging, for `loadaction demo`, local experiments and the tests.

    from loadaction.demo import running_target
    async with running_target() as target:
        target.url, target.env
"""

from loadaction.demo.auth import DemoKeys
from loadaction.demo.faults import Faults
from loadaction.demo.serve import DemoTarget, running_target, serve_in_thread

__all__ = ["DemoKeys", "DemoTarget", "Faults", "running_target", "serve_in_thread"]

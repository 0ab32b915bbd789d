"""The demo target's Supabase Realtime: the `postgres_changes` part of the
protocol that supabase-js / realtime-js use, over Phoenix channels with the
`vsn=1.0.0` JSON serializer.

    protocol       the envelopes: parsing frames, encoding replies and messages
    subscriptions  what a channel's config asks for; filters
    changes        the rows the demo publishes, in Realtime's `data` shape
    channels       one socket's channels: the answer to each client frame
    outbox         one socket's bounded queue, with the lag line
    hub            fan-out of each committed change to the sockets that want it
    socket         the aiohttp handler: refusals, upgrade, the socket's tasks
"""

from loadaction.demo.realtime.hub import RealtimeHub, RealtimeSettings
from loadaction.demo.realtime.socket import PATH, serve_socket

__all__ = ["PATH", "RealtimeHub", "RealtimeSettings", "serve_socket"]

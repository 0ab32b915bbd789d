"""WebSocket sessions: the client side of `websocket` and the ws_* steps.

A session is one connection: its handshake, a background reader that hands
each message to the session's subscriptions and to the step waiting for it,
and optional pings and application heartbeats. The background tasks of every
session a scenario's VUs open live in one TaskGroup around the scenario
(`SessionScope`), so none outlives it; each VU closes its own sessions when
its iteration (`keep: iteration`) or its life (`keep: vu`) ends. Flows
without WebSocket steps never create any of this.
"""

"""Supabase-style keys: `apikey` on every request, `Authorization: Bearer`
optional but, when present, decisive for the role.

Two static keys stand in for Supabase's JWTs: the anon key (what a browser
holds) and the service role key (what back-office code holds). The demo only
needs to tell them apart, so there is no JWT parsing to get wrong.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Role = Literal["anon", "service_role"]


@dataclass(frozen=True, slots=True)
class DemoKeys:
    """The three secrets a client needs; printed as `export` lines by the CLI."""

    anon_key: str
    service_role_key: str
    webhook_secret: str

    @classmethod
    def generate(cls) -> DemoKeys:
        return cls(anon_key=f"demo-anon-{secrets.token_hex(16)}",
                   service_role_key=f"demo-service-{secrets.token_hex(16)}",
                   webhook_secret=f"whsec_{secrets.token_hex(24)}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> DemoKeys:
        """Use the caller's values where set, so an existing plan's env keeps working."""
        fresh = cls.generate()
        return cls(anon_key=environ.get("SUPABASE_ANON_KEY") or fresh.anon_key,
                   service_role_key=environ.get("SUPABASE_SERVICE_ROLE_KEY") or fresh.service_role_key,
                   webhook_secret=environ.get("STRIPE_WEBHOOK_SECRET") or fresh.webhook_secret)

    def problem(self) -> str | None:
        """Why these keys cannot work, or None."""
        if self.anon_key == self.service_role_key:
            return "SUPABASE_ANON_KEY and SUPABASE_SERVICE_ROLE_KEY must differ"
        return None

    def role_of(self, key: str) -> Role | None:
        # Both comparisons always run, in constant time.
        anon = hmac.compare_digest(key.encode(), self.anon_key.encode())
        service = hmac.compare_digest(key.encode(), self.service_role_key.encode())
        return "service_role" if service else "anon" if anon else None


@dataclass(frozen=True, slots=True)
class Denied:
    message: str


def authenticate(keys: DemoKeys, headers: Mapping[str, str]) -> Role | Denied:
    """The caller's role, or why it is refused (PostgREST answers these with 401)."""
    apikey = headers.get("apikey")
    if not apikey:
        return Denied("No API key found in request")
    role = keys.role_of(apikey)
    if role is None:
        return Denied("Invalid API key")
    authorization = headers.get("Authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return Denied("Invalid Authorization header (expected Bearer <key>)")
        role = keys.role_of(token.strip())
        if role is None:
            return Denied("Invalid JWT")
    return role

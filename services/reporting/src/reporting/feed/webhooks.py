"""The webhooks' pure rules: Standard Webhooks signatures, the retry schedule, which targets are
allowed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import random
import secrets
from collections.abc import Iterable

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
#: bytes of a generated secret (the specification asks for 24 to 64)
SECRET_BYTES = 32


def new_secret() -> str:
    """A signing secret as Standard Webhooks writes one: ``whsec_`` and base64 of random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`` keyed by the secret's bytes."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_header(secrets_: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: one signature per valid secret (a rotation's old and new)."""
    return " ".join(signature(s, msg_id, timestamp, body) for s in secrets_)


def retry_delay(failures: int, *, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """Seconds before the next attempt after ``failures`` failures in a row: exponential, capped, less a
    random part of up to half of it (jitter)."""
    delay: float = min(cap_s, base_s * 2 ** max(failures - 1, 0))
    return delay - (rng or random).random() * delay / 2


def refused_address(address: str) -> str | None:
    """Why a webhook may not be sent to ``address`` when private targets are not allowed (None: allowed)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for what, flag in (
        ("loopback", ip.is_loopback), ("link-local", ip.is_link_local), ("unspecified", ip.is_unspecified),
        ("multicast", ip.is_multicast), ("reserved", ip.is_reserved), ("private", ip.is_private),
    ):
        if flag:
            return f"{address} is a {what} address"
    return None

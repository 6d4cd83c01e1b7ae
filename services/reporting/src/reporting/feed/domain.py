"""The change feed's pure rules: what a change changed, who may read it, how it is written on the wire."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ti_shared.events import EVENT_TOPICS, TOPIC_GRANTS

#: fields every real change moves: not listed in ``changed``
BOOKKEEPING = frozenset({"version", "updated_at"})
#: every event type the feed carries
FEED_TYPES = frozenset(EVENT_TOPICS)
#: the types whose changes need a token (CONTRACT §3: reads of grants)
PROTECTED_TYPES = frozenset(t for t, topic in EVENT_TOPICS.items() if topic == TOPIC_GRANTS)


_MISSING = object()


def changed_fields(previous: Mapping[str, Any] | None, data: Mapping[str, Any]) -> list[str]:
    """The top-level fields of ``data`` whose value differs from ``previous`` (all of them on a
    creation), in alphabetical order, without the bookkeeping fields."""
    before = previous or {}
    keys = set(data) | set(before)
    return sorted(k for k in keys - BOOKKEEPING if previous is None or before.get(k, _MISSING) != data.get(k, _MISSING))


@dataclass(frozen=True)
class Reader:
    """What the reader of a feed may see: the public changes, and the grants' as the grant read rules
    say (an operator's token its own operator's, an admin token all)."""

    grants: bool
    operator: str | None = None  # None with grants=True: every operator's

    @classmethod
    def of(cls, *, authenticated: bool, is_admin: bool, operator: str | None) -> Reader:
        if is_admin:
            return cls(grants=True)
        if authenticated and operator is not None:
            return cls(grants=True, operator=operator)
        return cls(grants=False)


def unknown_types(types: Iterable[str]) -> list[str]:
    return sorted(set(types) - FEED_TYPES)


def operator_of(topic: str, data: Mapping[str, Any]) -> str | None:
    """The operator a change belongs to (grants only)."""
    if topic != TOPIC_GRANTS:
        return None
    operator = data.get("operator")
    return operator if isinstance(operator, str) else None


def sse_frame(cursor: str, event_type: str, item: Mapping[str, Any]) -> bytes:
    """One Server-Sent Event: its ``id`` the cursor (what ``Last-Event-ID`` resumes from)."""
    return f"id: {cursor}\nevent: {event_type}\ndata: {json.dumps(item, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()


#: a comment line that keeps an idle stream open through proxies
SSE_KEEPALIVE = b": keepalive\n\n"

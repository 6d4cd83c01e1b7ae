"""An in-process cache of the materialised indicator responses.

Emptied whenever this process commits new figures (the consumer's ``committed`` hook, a rebuild's
swap); an entry also expires after ``MAX_AGE_S`` so that a process serving reads while another one
consumes never lags by more than that.
"""

from __future__ import annotations

import time

MAX_AGE_S = 0.25

_entries: dict[tuple[int, str], tuple[float, str, bytes]] = {}


def get(owner: int, scope: str) -> tuple[str, bytes] | None:
    entry = _entries.get((owner, scope))
    if entry is None or time.monotonic() - entry[0] > MAX_AGE_S:
        return None
    return entry[1], entry[2]


def put(owner: int, scope: str, etag: str, body: bytes) -> None:
    _entries[(owner, scope)] = (time.monotonic(), etag, body)


def clear() -> None:
    _entries.clear()

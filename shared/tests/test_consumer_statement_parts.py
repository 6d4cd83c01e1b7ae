"""A small batch's one statement built from parts: each part's placeholders renumbered after those
before it, the same text at another offset renumbered anew (the renumbered texts are kept)."""

from __future__ import annotations

from ti_shared import consumer
from ti_shared.consumer import OneStatement

PART = "INSERT INTO t (a, b) SELECT a, b FROM unnest($1::text[], $2::int[]) AS u(a, b) WHERE {where}"


def statement(guarded: bool) -> OneStatement:
    s = OneStatement()
    if guarded:
        s.guard("(SELECT g FROM gen) = $1::integer", [7], refused=lambda: RuntimeError("swapped"))
    for n in range(3):
        s.add([PART.format(where=s.where)], [[f"a{n}"], [n]])
    return s


def test_each_part_is_renumbered_after_the_ones_before_it_batch_after_batch() -> None:
    for guarded in (False, True, False, True):  # the same parts at other offsets, kept texts reused
        s = statement(guarded)
        first = 2 if guarded else 1
        sql = s.sql()
        assert sql is not None
        for n in range(3):
            a, b = first + 2 * n, first + 2 * n + 1
            assert f"unnest(${a}::text[], ${b}::int[])" in s.parts[n]
            assert s.args[a - 1] == [f"a{n}"] and s.args[b - 1] == [n]
        assert ("ti_guard AS (SELECT ((SELECT g FROM gen) = $1::integer) AS ok)" in sql) == guarded
        assert len(s.args) == first - 1 + 6


def test_the_kept_texts_are_bounded() -> None:
    consumer._SHIFTED.clear()
    for offset in range(consumer._SHIFTED_AT_MOST + 10):
        assert consumer._shifted("$1 + $2", offset) == f"${1 + offset} + ${2 + offset}"
    assert 0 < len(consumer._SHIFTED) <= consumer._SHIFTED_AT_MOST

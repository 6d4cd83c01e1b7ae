"""``ti replay``: a recorded stream published with a progress bar and a summary line."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from ti_shared.bus import LocalLog
from ti_shared.cli import app
from ti_shared.streams import generate_stream, stream_messages, to_json_lines
from typer.testing import CliRunner


def test_replay_publishes_every_event_with_progress_and_a_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events = generate_stream(seed=3, territories=4, actions=600, grants=200, sites=20)
    stream = tmp_path / "stream.jsonl"
    stream.write_text(to_json_lines(events), encoding="utf-8")
    monkeypatch.setenv("TI_LOCAL_BUS_PATH", str(tmp_path / "bus.db"))
    monkeypatch.setenv("COLUMNS", "160")
    result = CliRunner().invoke(app, ["replay", str(stream), "--bus", "local"])
    assert result.exit_code == 0, result.output
    assert "publishing stream.jsonl" in result.output and f"{len(events)}/{len(events)} events" in result.output
    assert f"published {len(events)} events in " in result.output and "events/s)" in result.output
    topics = sorted({m.topic for m in stream_messages(stream.read_text(encoding="utf-8").splitlines())})
    assert asyncio.run(LocalLog.open(tmp_path / "bus.db").count_from({}, topics)) == len(events)

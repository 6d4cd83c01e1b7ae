"""The first test of docs/testing-against-the-platform.md is the partner example's quickstart, run by
`make test` (examples/partner-tests), and it stays under twenty lines."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_the_docs_show_the_quickstart_that_runs() -> None:
    doc = (ROOT / "docs" / "testing-against-the-platform.md").read_text(encoding="utf-8")
    section = doc.split("## Your first test", 1)[1]
    shown = re.search(r"```python\n(.*?)```", section, re.S)
    assert shown is not None
    code = (ROOT / "examples" / "partner-tests" / "tests" / "test_quickstart.py").read_text(encoding="utf-8")
    assert shown.group(1) == code
    assert len(code.splitlines()) < 20

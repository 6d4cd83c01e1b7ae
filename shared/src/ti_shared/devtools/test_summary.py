"""The one summary of ``make test``: the totals of every suite's JUnit report, then each test that
failed or erred, named, with the first line of its message, so that the end of the output says what
broke without scrolling back through the suites:

    python -m ti_shared.devtools.test_summary DIR
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Summary:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    #: ``suite-file: test id — first line of the message``, in the order the reports list them
    failures: list[str] = field(default_factory=list)


def _suites(root: ET.Element) -> list[ET.Element]:
    return list(root.iter("testsuite")) if root.tag == "testsuites" else [root]


def summarise(directory: Path) -> Summary:
    summary = Summary()
    for report in sorted(directory.glob("*.xml")):
        for suite in _suites(ET.parse(report).getroot()):  # noqa: S314 (pytest wrote these reports here)
            for case in suite.iter("testcase"):
                problem = case.find("failure")
                if problem is None:
                    problem = case.find("error")
                if problem is not None:
                    summary.failed += 1
                    name = f"{case.get('classname', '')}::{case.get('name', '')}".lstrip(":")
                    message = (problem.get("message") or problem.text or "").strip().splitlines()
                    first = message[0][:200] if message else problem.tag
                    summary.failures.append(f"{report.stem}: {name} — {first}")
                elif case.find("skipped") is not None:
                    summary.skipped += 1
                else:
                    summary.passed += 1
    return summary


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    summary = summarise(Path(args[0] if args else "var/test-results"))
    for line in summary.failures:
        print(f"FAILED {line}")
    print(f"total: {summary.passed} passed, {summary.failed} failed, {summary.skipped} skipped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

from pathlib import Path

from ti_shared.devtools.test_summary import main, summarise

REPORT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="4" failures="1" errors="1" skipped="1">
<testcase classname="tests.test_a" name="test_ok" time="0.1"/>
<testcase classname="tests.test_a" name="test_broken" time="0.1"><failure message="assert 1 == 2&#10;more">trace</failure></testcase>
<testcase classname="tests.test_b" name="test_setup" time="0.1"><error message="fixture exploded">trace</error></testcase>
<testcase classname="tests.test_b" name="test_later" time="0.0"><skipped message="later"/></testcase>
</testsuite></testsuites>
"""


def test_failures_are_named_with_the_first_line_of_their_message(tmp_path: Path, capsys) -> None:
    (tmp_path / "services_x_tests.xml").write_text(REPORT, encoding="utf-8")
    (tmp_path / "shared_tests.xml").write_text(
        '<testsuite tests="1"><testcase classname="t" name="test_fine"/></testsuite>', encoding="utf-8"
    )
    summary = summarise(tmp_path)
    assert (summary.passed, summary.failed, summary.skipped) == (2, 2, 1)
    assert summary.failures == [
        "services_x_tests: tests.test_a::test_broken — assert 1 == 2",
        "services_x_tests: tests.test_b::test_setup — fixture exploded",
    ]
    main([str(tmp_path)])
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "total: 2 passed, 2 failed, 1 skipped"
    assert out[0].startswith("FAILED services_x_tests: tests.test_a::test_broken")

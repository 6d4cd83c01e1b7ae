"""The crafted-file corpus (``ti_shared.hostile``, generated here, never committed) against the table
reader: every file is refused with its 413/422 problem before the XLSX reader runs, and the reader
itself, run in a subprocess whose address space is capped, never grows past the cap."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ti_shared import hostile
from ti_shared.problems import Problem
from ti_shared.tabular import TableLimits, check_workbook, read_table

CORPUS = hostile.corpus()
#: the subprocess's address space: the interpreter and the reader's libraries take ~400 MiB of it
ADDRESS_SPACE = 1536 * 1024 * 1024


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_crafted_file_is_refused_before_the_reader_allocates(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data, statuses = CORPUS[name]
    import python_calamine

    def no_reader(*_: object) -> None:
        raise AssertionError("the XLSX reader ran on a file the checks should have refused")

    if name not in ("xlsx-nul",):  # its sheet is well-formed only to the reader's eyes: XML forbids NUL
        monkeypatch.setattr(python_calamine.CalamineWorkbook, "from_filelike", no_reader)
    with pytest.raises(Problem) as refused:
        read_table(data)
    assert refused.value.status in statuses, refused.value.detail


def test_the_reader_stays_within_its_address_space(tmp_path: Path) -> None:
    """The real reader on the whole corpus with RLIMIT_AS: an allocation of the dense grid would abort."""
    for name, (data, _) in CORPUS.items():
        (tmp_path / name).write_bytes(data)
    script = textwrap.dedent(
        """
        import json, pathlib, sys
        from ti_shared.problems import Problem
        from ti_shared.tabular import read_table
        out = {}
        for path in sorted(pathlib.Path(sys.argv[1]).iterdir()):
            try:
                out[path.name] = len(read_table(path.read_bytes()))
            except Problem as exc:
                out[path.name] = exc.status
        print(json.dumps(out))
        """
    )

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120, preexec_fn=cap, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    statuses = json.loads(done.stdout)
    assert statuses == {name: CORPUS[name][1][0] for name in CORPUS}


def test_an_ordinary_workbook_is_read() -> None:
    data = hostile.table_xlsx([["code", "name"], ["01", "Ain"], ["2A", "Corse-du-Sud"]])
    assert read_table(data) == [{"code": "01", "name": "Ain"}, {"code": "2A", "name": "Corse-du-Sud"}]


SMALL = TableLimits(max_rows=10, max_columns=4, max_cells=30, max_inflated_bytes=64 * 1024, max_parts=20)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (hostile.many_rows_xlsx(10), None),
        (hostile.many_rows_xlsx(11), 413),
        (hostile.many_rows_xlsx(2, columns=5), 413),
        (hostile.many_rows_xlsx(9, columns=3), None),
        (hostile.cells_without_reference_xlsx(31), 413),
        (hostile.declared_dimension_xlsx("A1:D12"), 413),
        (hostile.declared_dimension_xlsx("A1:C3"), None),
        (hostile.declared_dimension_xlsx("A1:ZZZZ1"), 422),
        (hostile.inflating_xlsx(1), 413),
    ],
)
def test_each_bound_of_a_workbook(data: bytes, status: int | None) -> None:
    if status is None:
        check_workbook(data, SMALL)
        return
    with pytest.raises(Problem) as refused:
        check_workbook(data, SMALL)
    assert refused.value.status == status


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"a;b\n" + b"1;2\n" * 10, None),
        (b"a;b\n" + b"1;2\n" * 11, 413),
        (b"a;b;c;d;e\n1\n", 413),
        (b"a;b;c;d\n" + b"1\n" * 8, 413),  # 8 rows fit, their 32 cells do not
        (b"a;b\n" + b"\n" * 500 + b"1;2\n", None),  # empty lines are not rows
    ],
)
def test_each_bound_of_a_csv(data: bytes, status: int | None) -> None:
    if status is None:
        read_table(data, limits=SMALL)
        return
    with pytest.raises(Problem) as refused:
        read_table(data, limits=SMALL)
    assert refused.value.status == status


def test_a_caller_lowers_the_row_cap() -> None:
    with pytest.raises(Problem) as refused:
        read_table(b"a;b\n" + b"1;2\n" * 6, max_rows=5)
    assert refused.value.status == 413

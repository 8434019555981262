"""One file failing in any way, a native library's panic included, fails alone: the other
files of the same call import, and the failed one has a message and an import-log entry
(issue 13). The panic is pyo3's real PanicException class (a BaseException), raised where a
Rust panic in polars surfaces; the panic's own cause is fixed elsewhere."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest
from polars.exceptions import PanicException

import placeharm as ph
from placeharm.errors import DataError, ImportFailed, Unexpected
from placeharm.services import ingest as ingest_service
from placeharm.soc import importer as soc_importer
from placeharm.store.duckdb import DuckDBStore

MONTHS = ("2020-05", "2020-06", "2020-07")
BAD = "2020-06-northumbria-street.csv"


def street_slices(northumbria: Path, folder: Path, rows: int = 300) -> list[Path]:
    """The first `rows` rows of three real monthly street files, named as police.uk names them."""
    folder.mkdir(exist_ok=True)
    out = []
    for month in MONTHS:
        with gzip.open(northumbria / f"{month}-northumbria-street.csv.gz", "rt") as handle:
            lines = [next(handle) for _ in range(rows + 1)]
        path = folder / f"{month}-northumbria-street.csv"
        path.write_text("".join(lines))
        out.append(path)
    return out


def panic_in(monkeypatch: pytest.MonkeyPatch, stage: str) -> None:
    """Make BAD panic while being read, while its areas are found, or while it is written."""
    name = {"read": "parse_file", "areas": "_assign", "write": "_prepare"}[stage]
    real = getattr(ingest_service, name)

    def panicking(*args: object, **kwargs: object) -> object:
        first = args[0]
        path = first.path if hasattr(first, "path") else first  # _prepare gets the _Parsed
        source = getattr(first, "source_file", None)  # _assign gets the ParsedFile
        if Path(str(source or path)).name == BAD:
            raise PanicException("assertion failed: i < self.len()")
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest_service, name, panicking)


@pytest.mark.parametrize("stage", ["read", "areas", "write"])
@pytest.mark.both_engines  # issue 17
def test_a_panicking_file_fails_alone_and_is_logged(
    store: DuckDBStore, northumbria: Path, tmp_path: Path, monkeypatch, stage: str
):
    files = street_slices(northumbria, tmp_path / "in")
    panic_in(monkeypatch, stage)
    results = ingest_service.ingest(store, files)
    by_name = {Path(r.source_file).name: r for r in results}
    assert len(results) == 3
    bad = by_name.pop(BAD)
    assert bad.status == "failed" and bad.inserted == 0
    assert "PanicException" in bad.message and "nothing" in bad.message
    assert "Traceback" not in bad.message
    for good in by_name.values():
        assert good.ok and good.inserted == 300, good
    # nothing of the bad file is stored; the others are, whole
    months = store.crime_frame(["month"])["month"].dt.strftime("%Y-%m").value_counts()
    assert dict(months.iter_rows()) == {"2020-05": 300, "2020-07": 300}
    log = store.imports(10)
    row = log.filter(pl.col("source_file").str.ends_with(BAD))
    assert row.height == 1 and row["status"][0] == "failed"
    assert "PanicException" in row["message"][0]
    assert set(log["status"]) == {"ok", "failed"} and log.height == 3


def test_an_unreadable_file_is_refused_alone(
    store: DuckDBStore, northumbria: Path, tmp_path: Path, monkeypatch
):
    files = street_slices(northumbria, tmp_path / "in")
    real = ingest_service.read_snapshot

    def unreadable(path: Path, *args: object):  # as open() fails without read permission
        if path.name == BAD:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args)

    monkeypatch.setattr(ingest_service, "read_snapshot", unreadable)
    results = ingest_service.ingest(store, files)
    assert [r.status for r in results] == ["ok", "refused", "ok"]
    assert "cannot be read (Permission denied)" in results[1].message
    assert store.imports(10)["status"].to_list().count("refused") == 1


def test_the_library_api_raises_only_placeharm_errors(store: DuckDBStore, tmp_path, monkeypatch):
    def panics(*args: object, **kwargs: object) -> None:
        raise PanicException("assertion failed: i < self.len()")

    with pytest.raises(DataError):  # a failure of the input: a placeharm error, as before
        ph.ingest(store, [tmp_path / "missing"])
    (tmp_path / "empty.csv").write_text("")
    monkeypatch.setattr(ingest_service, "assign_pending", panics)
    with pytest.raises(Unexpected) as caught:
        ph.ingest(store, [tmp_path])
    assert isinstance(caught.value.__cause__, PanicException)  # kept, with its traceback
    assert "PanicException" in str(caught.value) and "report" in str(caught.value)
    with pytest.raises(KeyboardInterrupt):  # never swallowed

        def interrupted(*args: object, **kwargs: object) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr(ingest_service, "assign_pending", interrupted)
        ph.ingest(store, [tmp_path])


GROUPS = "group_id,group_type,synthetic\nG-1,OCG,true\nG-2,OCG,true\n"


def test_a_panicking_soc_file_is_logged_and_stores_nothing(
    store: DuckDBStore, tmp_path, monkeypatch
):
    path = tmp_path / "groups.csv"
    path.write_text(GROUPS)

    def panics(*args: object, **kwargs: object) -> None:
        raise PanicException("assertion failed: i < self.len()")

    monkeypatch.setattr(soc_importer, "_store_rows", panics)
    with pytest.raises(ImportFailed) as caught:
        soc_importer.import_entity(store, "groups", path)
    assert "PanicException" in str(caught.value) and "nothing imported" in str(caught.value)
    assert caught.value.import_id is not None
    row = store.imports(1).row(0, named=True)
    assert row["import_id"] == caught.value.import_id and row["status"] == "failed"
    assert store.soc_frame("soc_groups").height == 0
    monkeypatch.undo()
    # a refused file (a header that cannot be used) is logged as refused
    path.write_text("colour\nred\n")
    with pytest.raises(DataError) as refused:
        soc_importer.import_entity(store, "groups", path)
    assert store.imports(1)["status"][0] == "refused"
    assert store.imports(1)["import_id"][0] == refused.value.import_id
    path.write_text(GROUPS)
    assert soc_importer.import_entity(store, "groups", path).inserted == 2


def test_a_real_file_that_made_polars_panic_does_not_stop_the_others(
    store: DuckDBStore, northumbria: Path, tmp_path: Path
):
    """Issue 13's reproduction: two unknown crime types 5,000 rows apart in a real monthly
    file made polars panic (`assertion failed: i < self.len()`) and took the whole call
    down. Whether the reader still panics (then: failed alone) or not (then: the two rows
    quarantined), the other files import and the file has its import-log entry."""
    files = street_slices(northumbria, tmp_path / "in")
    with gzip.open(northumbria / f"{BAD[:7]}-northumbria-street.csv.gz", "rt") as handle:
        lines = handle.read().splitlines(keepends=True)
    for index in (10, 5010):
        fields = lines[index].split(",")
        fields[9] = "Not a crime type"
        lines[index] = ",".join(fields)
    files[1].write_text("".join(lines))
    results = ingest_service.ingest(store, files)
    assert [r.status for r in (results[0], results[2])] == ["ok", "ok"]
    assert results[0].inserted == results[2].inserted == 300
    mutated = results[1]
    if mutated.status == "failed":  # the reader still panics: this file fails alone
        assert "PanicException" in mutated.message and "nothing imported" in mutated.message
    else:  # the panic's cause is fixed: the two rows are quarantined, the rest imported
        assert mutated.ok and mutated.quarantined == 2
    logged = store.imports(10).filter(pl.col("source_file").str.ends_with(BAD))
    assert logged["status"].to_list() == [mutated.status]

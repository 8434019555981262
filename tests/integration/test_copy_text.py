"""Text that PostgreSQL's COPY treats specially is stored as written (issue 17, review
finding): a value that is exactly `\\.`, alone on a line of a one-column COPY, ended the
data, and the rows after it were silently dropped (a SOC import's key lookup then missed
them). Run on both engines: DuckDB is the reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from placeharm.soc import importer

pytestmark = pytest.mark.both_engines

IDS = ["G-1", "\\.", "G-2", "\\.x"]


def test_a_group_called_backslash_dot_keeps_the_groups_after_it(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "groups.csv"
    path.write_text("group_id,group_type,synthetic\n" + "".join(f'"{i}",OCG,true\n' for i in IDS))
    first = importer.import_entity(store, "groups", path)
    assert first.inserted == 4
    keys = store.soc_frame("soc_groups").select("group_id")
    found = store.soc_keyed_rows("soc_groups", ["group_id"], keys)
    assert sorted(found["group_id"].to_list()) == sorted(IDS)
    again = importer.import_entity(store, "groups", path)  # the same file: nothing new
    assert again.inserted == 0
    assert sorted(store.soc_frame("soc_groups")["group_id"].to_list()) == sorted(IDS)

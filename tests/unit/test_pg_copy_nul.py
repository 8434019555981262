"""PostgreSQL's COPY keeps NUL out of text (`postgres._without_nul`, issue 17): replacing it in
the CSV polars writes is the same as replacing it in every text column before writing, which
is what `_copy` did until the replacement moved to the CSV (one search on the hot path)."""

from __future__ import annotations

import datetime as dt

import polars as pl

from placeharm.store.postgres import _without_nul

TEXTS = [
    "plain",
    "\x00",
    "a\x00b",
    "\x00, with a comma",
    'a "quoted"\x00 word',
    "two\nlines\x00",
    " leading and trailing \x00 ",
    "",
    None,
    "Café \x00 ü",
]


def _csv(frame: pl.DataFrame) -> str:
    return frame.write_csv(include_header=False, datetime_format="%Y-%m-%d %H:%M:%S%.6f")


def _each_column_replaced(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.col(c).str.replace_all("\x00", "\ufffd", literal=True)
        for c, t in frame.schema.items()
        if t == pl.String
    )


def test_the_csv_is_the_same_as_replacing_in_every_text_column() -> None:
    frame = pl.DataFrame(
        {
            "text": TEXTS,
            "other": list(reversed(TEXTS)),
            "n": list(range(len(TEXTS))),
            "at": [dt.datetime(2021, 1, 1, 0, 0, i) for i in range(len(TEXTS))],
        }
    )
    written = _without_nul(_csv(frame))
    assert written == _csv(_each_column_replaced(frame))
    assert "\x00" not in written and written.count("\ufffd") == 2 * 7


def test_text_without_nul_is_written_as_it_is() -> None:
    data = _csv(pl.DataFrame({"text": ["a", "b,c", None]}))
    assert _without_nul(data) is data

"""Record keys pinned with hand-worked values (issue 19, third mutation pass): an API record
without a persistent id is keyed as stores built before issue 13 keyed it, so they keep
matching.

Every expected value is written out here (or hashed here from a written-out text with
hashlib), never computed by the code under test.
"""

from __future__ import annotations

import hashlib

import polars as pl

from placeharm.ingest import policeuk

PERSISTENT = "a1" * 32  # a police.uk persistent id: 64 hex digits


def test_an_api_record_without_a_persistent_id_is_keyed_by_its_numeric_id():
    frame = pl.DataFrame(
        {"crime_id": [None, PERSISTENT], "api_id": [98765432, 1]},
        schema={"crime_id": pl.String, "api_id": pl.Int64},
    )
    keyed = policeuk._api_keys(frame)
    # BLAKE2b-128 of "api-98765432", the unit separator, and rank "0"
    expected = hashlib.blake2b(b"api-98765432\x1f0", digest_size=16).hexdigest()
    assert keyed["crime_key"].to_list() == [expected, PERSISTENT]
    # the 64-bit join hash: the key's first 16 hex digits
    assert keyed["crime_hash"].to_list() == [int(expected[:16], 16), int("a1" * 8, 16)]


def test_records_without_an_id_are_keyed_by_content_and_rank_among_identical_rows():
    frame = pl.DataFrame({"month": ["2021-05", "2021-05", "2021-06"], "kind": ["ASB"] * 3})
    keyed = policeuk._with_keys(frame, None, "key", "hash", ["month", "kind"])

    def digest(text: str) -> str:
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

    # the content joined by the unit separator, then the rank among identical rows: 0, 1, ...
    assert keyed["key"].to_list() == [
        digest("2021-05\x1fASB\x1f0"),
        digest("2021-05\x1fASB\x1f1"),
        digest("2021-06\x1fASB\x1f0"),
    ]

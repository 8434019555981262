"""A seeded corpus of mutated real data.police.uk API responses (issue 13).

Each file is a real response from ../shared/data/policeuk_api with one or two mutations of
its values, types, nesting, encoding, length or bytes. Every file is ingested on its own into
one store: no exception escapes, a refused file leaves every table as it was (its refusal is
logged), an imported file balances, and every quarantined record carries its file, its
position in the list, its exact text and a reason. The oracle for "refused or not" is
Python's own json module on the same bytes, not placeharm's parser.
"""

from __future__ import annotations

import copy
import gzip
import json
import math
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

from placeharm.services.ingest import ingest
from placeharm.store.duckdb import DuckDBStore

SEED = 13
N_FILES = 330
DATA_TABLES = ("crimes", "crime_history", "outcomes", "stop_searches", "quarantine")

FIELDS: list[tuple[str, ...]] = [
    ("category",),
    ("month",),
    ("id",),
    ("persistent_id",),
    ("context",),
    ("location",),
    ("location", "latitude"),
    ("location", "longitude"),
    ("location", "street"),
    ("location", "street", "name"),
    ("outcome_status",),
    ("outcome_status", "category"),
]
VALUES: list[object] = [
    [],
    ["2018-06", 1],
    {},
    {"name": "x"},
    2**63,
    2**63 - 1,
    2**64 + 1,
    -1,
    0,
    1.5,
    1e308,
    -0.0,
    float("nan"),  # json.dumps writes the literal NaN
    float("inf"),
    "NaN",
    "Infinity",
    "",
    " ",
    "x" * 5000,
    "Gateshead \u00e9\u4e2d",
    "\ud800",  # json.dumps writes the escape \ud800: valid JSON, not a character
    "a\udc00b",
    "\u0000",
    None,
    True,
    False,
    "2018-13",
    "2018-6",
    "18-06",
    "2018-06 ",
    "2099-01",
    "2009-12",
    "54.9",
    "-181",
    "95.0",
    "burglary",
    "violent-crime",
    "jaywalking",
    123456789012345678901234567890,
]
LITERALS = ("NaN", "Infinity", "-Infinity", "1e999", "-0", "1" * 25)
SHALLOW, DEEP = (2, 60), (2_000, 30_000)  # never near the parser's ~1,000 limit


def _set(record: dict, path: tuple[str, ...], value: object) -> None:
    target = record
    for key in path[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[path[-1]] = value


def _record_with(rng: np.random.Generator, records: list, placeholder: str) -> str:
    """A record's JSON text with one field's value replaced by `placeholder` (unquoted)."""
    record = copy.deepcopy(records[int(rng.integers(len(records)))])
    if not isinstance(record, dict):
        record = {"id": 1}
    _set(record, FIELDS[int(rng.integers(len(FIELDS)))], "\x00PLACE\x00")
    return json.dumps(record).replace('"\\u0000PLACE\\u0000"', placeholder)


def _mutate_records(rng: np.random.Generator, records: list, kind: str) -> bytes | None:
    """Mutations of the decoded list; None if `kind` works on bytes."""
    n = len(records)
    pick = lambda: int(rng.integers(n))  # noqa: E731
    if kind == "value":
        for _ in range(int(rng.integers(1, 6))):
            record = records[pick()]
            if isinstance(record, dict):
                value = VALUES[int(rng.integers(len(VALUES)))]
                _set(record, FIELDS[int(rng.integers(len(FIELDS)))], copy.deepcopy(value))
    elif kind == "delete":
        for _ in range(int(rng.integers(1, 6))):
            record = records[pick()]
            if isinstance(record, dict) and record:
                keys = sorted(record)
                del record[keys[int(rng.integers(len(keys)))]]
    elif kind == "type":
        others: list[object] = [1, "crime", [], None, True, [records[0]], 2.5]
        for _ in range(int(rng.integers(1, 4))):
            records[pick()] = copy.deepcopy(others[int(rng.integers(len(others)))])
    elif kind == "duplicate":
        for _ in range(int(rng.integers(1, 6))):
            twin = copy.deepcopy(records[pick()])
            if isinstance(twin, dict) and rng.random() < 0.5:
                twin["context"] = "changed in the copy"
            records.insert(int(rng.integers(n + 1)), twin)
    elif kind == "months":
        month = ["2099-01", "2009-12", "2018-00", "2018-06"][int(rng.integers(4))]
        for record in records:
            if isinstance(record, dict) and rng.random() < 0.7:
                record["month"] = month
    elif kind == "nest":
        low, high = SHALLOW if rng.random() < 0.5 else DEEP
        depth = int(rng.integers(low, high))
        texts = [json.dumps(r) for r in records]
        texts[pick()] = _record_with(rng, records, "[" * depth + '"x"' + "]" * depth)
        return ("[" + ", ".join(texts) + "]").encode()
    elif kind == "literal":
        texts = [json.dumps(r) for r in records]
        for _ in range(int(rng.integers(1, 4))):
            texts[pick()] = _record_with(rng, records, LITERALS[int(rng.integers(len(LITERALS)))])
        return ("[" + ", ".join(texts) + "]").encode()
    elif kind == "top":
        tops: list[object] = [{"crimes": records}, records[0], "crimes", None, [], [records], 7]
        return json.dumps(tops[int(rng.integers(len(tops)))]).encode()
    elif kind == "empty":
        return b"[]"
    else:
        return None
    return json.dumps(records).encode()


def _mutate_bytes(rng: np.random.Generator, data: bytes, kind: str) -> tuple[bytes, str]:
    """Mutations of the file's bytes; returns the bytes and the file name's suffix."""
    if kind == "truncate":
        return data[: int(rng.integers(len(data)))], ".json"
    if kind == "flip":
        buf = bytearray(data)
        for _ in range(int(rng.integers(1, 9))):
            buf[int(rng.integers(len(buf)))] ^= int(rng.integers(1, 256))
        return bytes(buf), ".json"
    if kind == "insert":
        pieces = [b"\x00", b"]", b",", b"{", b'"', b"\\", b"\xff", b"\xed\xa0\x80", b"[[[", b" "]
        at = int(rng.integers(len(data) + 1))
        return data[:at] + pieces[int(rng.integers(len(pieces)))] + data[at:], ".json"
    if kind == "encoding":
        text = data.decode("utf-8")
        choice = int(rng.integers(7))
        if choice == 0:
            return text.encode("utf-16"), ".json"
        if choice == 1:
            return text.encode("utf-16-be"), ".json"
        if choice == 2:
            return text.replace('"context": ""', '"context": "caf\u00e9"').encode(
                "latin-1"
            ), ".json"
        if choice == 3:
            return b"\xef\xbb\xbf" + data, ".json"
        packed = gzip.compress(data)
        if choice == 4:
            return packed, ".json.gz"
        if choice == 5:
            return packed[: int(rng.integers(2, len(packed)))], ".json.gz"
        return packed + gzip.compress(b""), ".json.gz"  # a second, empty member
    raise AssertionError(kind)


RECORD_KINDS = ("value", "delete", "type", "duplicate", "months", "nest", "literal", "top", "empty")
BYTE_KINDS = ("truncate", "flip", "insert", "encoding")


def _corpus(sources: list[Path], rng: np.random.Generator, n: int) -> list[tuple[str, bytes]]:
    kinds = RECORD_KINDS + BYTE_KINDS
    corpus = []
    for number in range(n):
        source = sources[int(rng.integers(len(sources)))]
        records = json.loads(source.read_text())
        if rng.random() < 0.3:  # a shorter response keeps the run quick
            records = records[: int(rng.integers(1, len(records) + 1))]
        kind = kinds[number % len(kinds)]
        chosen = [kind]
        if kind in RECORD_KINDS:
            data = _mutate_records(rng, records, kind)
            assert data is not None
            suffix = ".json"
            if rng.random() < 0.2:  # and a second mutation, on the bytes
                second = BYTE_KINDS[int(rng.integers(len(BYTE_KINDS)))]
                if second != "encoding" or data.isascii():
                    data, suffix = _mutate_bytes(rng, data, second)
                    chosen.append(second)
        else:
            data, suffix = _mutate_bytes(rng, json.dumps(records).encode(), kind)
        corpus.append((f"{number:03d}-{'+'.join(chosen)}{suffix}", data))
    return corpus


def _oracle(data: bytes) -> list | None:
    """The list of records Python's json module finds in the file, or None if it is not a
    JSON list (gzip by content, UTF-8 with or without a BOM)."""
    try:
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        value = json.loads(data.decode("utf-8-sig"))
    except (ValueError, RecursionError, EOFError, OSError, zlib.error):
        return None
    return value if isinstance(value, list) else None


def _same(a: object, b: object) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # NaN-safe


def test_mutated_api_responses_never_crash_and_every_record_is_accounted_for(
    store: DuckDBStore, shared_data: Path, tmp_path: Path
):
    rng = np.random.default_rng(SEED)
    sources = sorted((shared_data / "policeuk_api").glob("*.json"))
    corpus = _corpus(sources, rng, N_FILES)
    assert len(corpus) >= 300
    tally: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for name, data in corpus:
        path = tmp_path / name
        path.write_bytes(data)
        expected = _oracle(data)
        before = store.table_counts()
        (result,) = ingest(store, [path], threads=1)  # an exception here fails the test
        after = store.table_counts()
        assert after["imports"] == before["imports"] + 1, name
        assert "Traceback" not in result.message and len(result.message) < 1_000, name
        if expected is None:
            assert result.status == "refused", (name, result)
            assert {t: after[t] for t in DATA_TABLES} == {t: before[t] for t in DATA_TABLES}
            tally["refused"] += 1
            continue
        assert result.status == "ok", (name, result.message)
        assert result.balanced, (name, result)
        assert result.rows_read == len(expected), name
        assert after["crimes"] - before["crimes"] == result.inserted, name
        assert after["quarantine"] - before["quarantine"] == result.quarantined, name
        text = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode("utf-8-sig")
        held = store.quarantine(result.import_id, limit=100_000)
        assert held.height == result.quarantined, name
        for row in held.iter_rows(named=True):
            assert row["source_file"] == str(path)
            assert 1 <= row["line"] <= len(expected)
            assert row["reason"], name
            assert row["raw_text"] in text, name  # the exact text of the record in the file
            assert _same(json.loads(row["raw_text"]), expected[row["line"] - 1]), (name, row)
        tally["ok"] += 1
        tally["ok with quarantine"] += bool(result.quarantined)
        for key in ("rows_read", "inserted", "updated", "unchanged", "quarantined"):
            totals[key] += getattr(result, key)
    stored = store.crime_frame(["latitude", "longitude", "api_id"])
    for lat, lon, api_id in stored.rows():
        assert 1 <= api_id < 2**63
        assert (lat is None) == (lon is None)
        if lat is not None:
            assert math.isfinite(lat) and abs(lat) <= 90 and math.isfinite(lon) and abs(lon) <= 180
    assert tally["refused"] >= 60 and tally["ok with quarantine"] >= 60, tally
    print(f"\njson fuzz corpus: {len(corpus)} files, {dict(tally)}, rows {dict(totals)}")

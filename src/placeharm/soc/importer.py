"""Import and export of SOC entities as CSV, with a mapping file for a force's own exports.

Same rules as police.uk ingest: every row is inserted, updated (previous version kept in
`soc_history`), unchanged, or quarantined with file, line, raw text and reason; a file whose
header cannot be used is refused and nothing is written; each file is one transaction.
Mapping files: docs/soc.md.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml
from pyproj import Transformer

from placeharm import audit
from placeharm.audit import Actor
from placeharm.errors import (
    DataError,
    ImportFailed,
    NotFound,
    PlaceharmError,
    describe,
    is_fatal,
)
from placeharm.harm import load_index
from placeharm.harm.derive import crime_type_of
from placeharm.ingest.csvfile import DEFAULT_LIMITS, ReadLimits, check_line_lengths, read_bytes
from placeharm.model import CRIME_TYPES, ImportResult, QuarantineRow
from placeharm.soc.schema import GRADES_3X5X2, GRADES_5X5X5, Entity, entity
from placeharm.store.base import Store

log = logging.getLogger(__name__)
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0", ""}
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M")
_BNG = Transformer.from_crs("EPSG:27700", "EPSG:4326", always_xy=True)
_CODE_RE = re.compile(r"^[0-9A-Za-z./]{1,20}$")
_MAPPING_KEYS = {
    "entity",
    "columns",
    "values",
    "date_format",
    "ignore",
    "true_values",
    "false_values",
    "constants",
}


@dataclass(slots=True)
class Mapping:
    """How a force's export maps onto the documented schema."""

    columns: dict[str, str] = field(default_factory=dict)  # export column -> schema field
    values: dict[str, dict[str, str]] = field(default_factory=dict)  # field -> {theirs: ours}
    date_format: str | None = None
    ignore: set[str] = field(default_factory=set)
    true_values: set[str] = field(default_factory=set)
    false_values: set[str] = field(default_factory=set)
    constants: dict[str, str] = field(default_factory=dict)
    source: str = ""


def load_mapping(path: Path | str, kind: str | None = None) -> Mapping:
    """Read a YAML mapping file; refuse unknown keys and a mapping meant for another entity."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"mapping file {path} does not exist")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable YAML file: {exc}") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path}: a mapping file is a YAML mapping (see docs/soc.md)")
    unknown = sorted(set(map(str, doc)) - _MAPPING_KEYS)
    if unknown:
        raise DataError(
            f"{path}: unknown keys {', '.join(unknown)}; allowed: "
            f"{', '.join(sorted(_MAPPING_KEYS))}"
        )
    if kind and doc.get("entity") and doc["entity"] != kind:
        raise DataError(f"{path} maps {doc['entity']!r} exports, not {kind!r}")

    def strs(value: Any) -> dict[str, str]:
        return {str(k): "" if v is None else str(v) for k, v in (value or {}).items()}

    return Mapping(
        columns=strs(doc.get("columns")),
        values={str(k): strs(v) for k, v in (doc.get("values") or {}).items()},
        date_format=doc.get("date_format"),
        ignore={str(c) for c in doc.get("ignore") or []},
        true_values={str(v).lower() for v in doc.get("true_values") or []},
        false_values={str(v).lower() for v in doc.get("false_values") or []},
        constants=strs(doc.get("constants")),
        source=str(path),
    )


class _RowError(Exception):
    pass


def _text_lines(raw: bytes) -> str:
    text = raw.decode("utf-8-sig", errors="replace")
    return text


def _parse_date(value: str, date_format: str | None) -> dt.date | None:
    if not value:
        return None
    formats = (date_format,) if date_format else _DATE_FORMATS
    for fmt in formats:
        try:
            return dt.datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise _RowError(
        f"date {value!r} is not a date"
        + (f" in format {date_format}" if date_format else " (use YYYY-MM-DD)")
    )


class _Converter:
    def __init__(self, spec: Entity, mapping: Mapping) -> None:
        self.spec = spec
        self.mapping = mapping
        self.true = _TRUE | mapping.true_values
        self.false = _FALSE | mapping.false_values
        self.catalogue = load_index("css")
        self.code_types = _code_types()

    def value(self, name: str, raw: str) -> Any:
        fld = self.spec.field(name)
        raw = raw.strip()
        mapped = self.mapping.values.get(name)
        if mapped is not None and raw in mapped:
            raw = mapped[raw]
        if not raw:
            if fld.required:
                raise _RowError(f"{name} is empty")
            return False if fld.kind == "bool" else None
        if fld.kind == "date":
            return _parse_date(raw, self.mapping.date_format)
        if fld.kind == "bool":
            low = raw.lower()
            if low in self.true:
                return True
            if low in self.false:
                return False
            raise _RowError(f"{name} {raw!r} is not yes/no (true/false, Y/N, 1/0)")
        if fld.kind == "float":
            try:
                number = float(raw)
            except ValueError:
                raise _RowError(f"{name} {raw!r} is not a number") from None
            if not math.isfinite(number):
                raise _RowError(f"{name} {raw!r} is not a number")
            return number
        if fld.kind == "code":
            match = next((c for c in fld.codes if c.lower() == raw.lower()), None)
            if match is None:
                raise _RowError(f"{name} {raw!r} is not one of {', '.join(fld.codes)}")
            return match
        if fld.kind == "list":
            items = [i.strip() for i in re.split(r"[;|]", raw) if i.strip()]
            if fld.codes:
                bad = [i for i in items if i not in fld.codes]
                if bad:
                    raise _RowError(f"{name}: {', '.join(bad)} not among {', '.join(fld.codes)}")
            return ";".join(items)
        return raw

    def row(self, values: dict[str, str]) -> dict[str, Any]:
        out = {
            name: self.value(name, values.get(name, ""))
            for name in self.spec.columns
            if name not in ("latitude", "longitude")
        }
        if self.spec.located:
            out |= _location(values)
        return self._entity_rules(out)

    def _entity_rules(self, out: dict[str, Any]) -> dict[str, Any]:
        kind = self.spec.kind
        if kind == "intelligence":
            scheme = out.get("grading_scheme") or "3x5x2"
            out["grading_scheme"] = scheme
            grades = GRADES_3X5X2 if scheme == "3x5x2" else GRADES_5X5X5
            for name, allowed in grades.items():
                value = str(out[name]).upper()
                if value not in allowed:
                    raise _RowError(
                        f"{name} {out[name]!r} is not a {scheme} grade ({', '.join(allowed)})"
                    )
                out[name] = value
        if kind == "force-crimes":
            code = out.get("offence_code")
            if code is not None and not _CODE_RE.match(code):
                raise _RowError(f"offence_code {code!r} is not a Home Office code")
            if out.get("crime_type"):
                try:
                    out["crime_type"] = crime_type_of(out["crime_type"])
                except ValueError:
                    raise _RowError(
                        f"crime_type {out['crime_type']!r} is not a police.uk type; "
                        f"use one of: {', '.join(CRIME_TYPES)}"
                    ) from None
            elif code in self.code_types:
                out["crime_type"] = self.code_types[code]
            else:
                raise _RowError(
                    f"offence code {code!r} is not in the offence catalogue; give its crime_type"
                )
        if kind == "disruptions" and not (
            out.get("target_group_id") or out.get("target_nominal_id")
        ):
            raise _RowError("give a target_group_id or a target_nominal_id")
        for first, last in (("from_date", "to_date"), ("start_date", "end_date")):
            if out.get(first) and out.get(last) and out[last] < out[first]:
                raise _RowError(f"{last} {out[last]} is before {first} {out[first]}")
        return out


def _code_types() -> dict[str, str]:
    from placeharm.harm.indices import _builtin_tables

    codes, _ = _builtin_tables()
    rows = codes.filter(pl.col("index") == "css")
    return dict(zip(rows["offence_code"], rows["crime_type"], strict=True))


def _location(values: dict[str, str]) -> dict[str, Any]:
    lat, lon = values.get("latitude", "").strip(), values.get("longitude", "").strip()
    east, north = values.get("easting", "").strip(), values.get("northing", "").strip()
    try:
        if lat or lon:
            latitude, longitude = float(lat), float(lon)
        elif east or north:
            longitude, latitude = _BNG.transform(float(east), float(north))
        else:
            return {"latitude": None, "longitude": None}
    except ValueError:
        raise _RowError(
            f"location {lat or east!r}, {lon or north!r} is not a number pair"
        ) from None
    if not (49.0 <= latitude <= 61.5 and -9.0 <= longitude <= 2.5):
        raise _RowError(f"location {latitude:.5f}, {longitude:.5f} is outside Great Britain")
    return {"latitude": latitude, "longitude": longitude}


def _schema(spec: Entity) -> dict[str, Any]:
    kinds = {
        "str": pl.String,
        "date": pl.Date,
        "bool": pl.Boolean,
        "float": pl.Float64,
        "code": pl.String,
        "list": pl.String,
    }
    return {f.name: kinds[f.kind] for f in spec.fields}


def import_entity(
    store: Store,
    kind: str,
    path: Path | str,
    mapping: Mapping | None = None,
    synthetic: bool = False,
    threads: int = 2,
    actor: Actor | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> ImportResult:
    """Import one CSV file of SOC entity `kind` (see placeharm.soc.schema) in one transaction.
    `actor` is who imports (default: the operating-system user). The file may be gzipped;
    over `limits` (decompressed size, line length) it is refused.

    A file that cannot be imported raises a DataError (ImportFailed for a failure placeharm
    did not foresee, a native library's panic included) after the refusal is written to the
    import log (its `import_id`); nothing of the file is written."""
    spec = entity(kind)
    path = Path(path)
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if not path.is_file():
        raise NotFound(f"{path} does not exist")
    try:
        return _import_entity(
            store, spec, path, mapping or Mapping(), synthetic, threads, actor, limits, started
        )
    except DataError as exc:
        _log_refusal(store, kind, path, actor, started, exc, "refused")
        raise
    except BaseException as exc:
        if is_fatal(exc) or isinstance(exc, PlaceharmError):
            raise  # a store or audit failure: nothing more can be written
        failure = ImportFailed(
            f"{path} failed, nothing imported: an unexpected failure while importing it "
            f"({describe(exc)}); keep the file and report the failure (the log has the details)"
        )
        log.warning("import of %s failed unexpectedly; nothing imported", path, exc_info=exc)
        _log_refusal(store, kind, path, actor, started, failure, "failed")
        raise failure from exc


def _log_refusal(
    store: Store,
    kind: str,
    path: Path,
    actor: Actor | None,
    started: dt.datetime,
    exc: DataError,
    status: str,
) -> None:
    """Record a file that was not imported in the import log (and the audit log), with its
    reason; `exc.import_id` then names the entry."""
    result = ImportResult(str(path), f"soc:{kind}", status, message=str(exc))
    try:
        with store.transaction():
            result.import_id = exc.import_id = store.next_import_ids(1)[0]
            audit.record_imports(store, actor, [(result, started, "")], f"import {kind}")
    except BaseException as logging_failed:
        if is_fatal(logging_failed):
            raise
        exc.import_id = None
        log.warning("could not log the refusal of %s", path, exc_info=logging_failed)


def _import_entity(
    store: Store,
    spec: Entity,
    path: Path,
    mapping: Mapping,
    synthetic: bool,
    threads: int,
    actor: Actor | None,
    limits: ReadLimits,
    started: dt.datetime,
) -> ImportResult:
    kind = spec.kind
    raw = read_bytes(path, limits)
    check_line_lengths(raw, path, limits.max_line_bytes)
    text = _text_lines(raw)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path} is empty; expected a header row") from None
    except csv.Error as exc:  # e.g. a header field over the csv module's 128 KB limit
        raise DataError(
            f"{path} refused, nothing imported: the header row is not CSV ({exc})"
        ) from None
    fields = _map_header(spec, header, mapping, path)
    converter = _Converter(spec, mapping)
    references = _references(store, spec)
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    quarantined: list[QuarantineRow] = []
    seen: dict[tuple[Any, ...], int] = {}
    line = 1
    read = 0
    records = _records(reader, path)
    for record in records:
        start = line + 1
        line = reader.line_num
        if not record or record == [""]:
            continue
        read += 1
        raw_text = ",".join(record)
        try:
            if "\ufffd" in raw_text:
                raise _RowError("not valid UTF-8 text")
            if len(record) != len(header):
                raise _RowError(f"{len(record)} fields, the header has {len(header)}")
            values = {f: "" for f in spec.columns} | {"synthetic": ""} | dict(mapping.constants)
            for name, value in zip(fields, record, strict=True):
                if name is not None:
                    values[name] = value
            row = converter.row(values)
            flag = values["synthetic"].strip().lower()
            if flag not in _TRUE | _FALSE:
                raise _RowError(f"synthetic {flag!r} is not true/false")
            row["synthetic"] = synthetic or flag in _TRUE
            key = tuple(row[k] for k in spec.key)
            if key in seen:
                raise _RowError(f"same key as line {seen[key]} ({', '.join(map(str, key))})")
            seen[key] = start
            for column, (known, what) in references.items():
                ref = row.get(column)
                if ref is not None and ref not in known:
                    raise _RowError(
                        f"{column} {ref!r} is not a stored {what}; import the {what}s first"
                    )
        except _RowError as exc:
            quarantined.append(QuarantineRow(str(path), start, raw_text, str(exc)))
            continue
        rows.append(row)
        lines.append(start)
    frame = pl.DataFrame(rows, schema=_schema(spec) | {"synthetic": pl.Boolean}, orient="row")
    frame = frame.with_columns(pl.Series("source_line", lines, dtype=pl.Int64))
    if spec.located:
        frame = frame.with_columns(
            (pl.col("latitude").is_not_null() & pl.col("longitude").is_not_null()).alias("located")
        )
    with store.transaction():
        import_id = store.next_import_ids(1)[0]
        frame = frame.with_columns(pl.lit(import_id, dtype=pl.Int64).alias("import_id"))
        result = _store_rows(store, spec, frame, path, import_id)
        result.rows_read = read
        result.quarantined = len(quarantined)
        result.quarantine_sample = quarantined[:20]
        store.add_quarantine(import_id, quarantined)
        if spec.located:
            located = frame.filter(pl.col("latitude").is_not_null())
            result.no_location = frame.height - located.height
            result.outside_areas = _assign(store, spec, located, threads)
        audit.record_imports(
            store, actor, [(result, started, hashlib.sha256(raw).hexdigest())], f"import {kind}"
        )
        if frame.height and not frame["synthetic"].all():
            # a force's own records: demo accounts stop working, with this import (issue 12)
            store.end_demo_sessions()
    return result


# what a row refers to must already be stored: column -> (table, key column, what it is)
_REFERENCES: dict[str, dict[str, tuple[str, str, str]]] = {
    "memberships": {
        "group_id": ("soc_groups", "group_id", "group"),
        "nominal_id": ("soc_nominals", "nominal_id", "nominal"),
    },
    "addresses": {"nominal_id": ("soc_nominals", "nominal_id", "nominal")},
    "nominal-crimes": {
        "nominal_id": ("soc_nominals", "nominal_id", "nominal"),
        "crime_ref": ("soc_force_crimes", "crime_ref", "force crime"),
    },
    "nominal-links": {
        "from_nominal": ("soc_nominals", "nominal_id", "nominal"),
        "to_nominal": ("soc_nominals", "nominal_id", "nominal"),
    },
    "disruptions": {
        "target_group_id": ("soc_groups", "group_id", "group"),
        "target_nominal_id": ("soc_nominals", "nominal_id", "nominal"),
    },
}


def _references(store: Store, spec: Entity) -> dict[str, tuple[set[str], str]]:
    out: dict[str, tuple[set[str], str]] = {}
    for column, (table, key, what) in _REFERENCES.get(spec.kind, {}).items():
        out[column] = (set(store.soc_frame(table)[key].to_list()), what)
    if spec.kind == "chb-phases":
        sets = {s.name for s in store.area_sets()}
        codes = set(store.area_list("chb")["area_code"].to_list()) if "chb" in sets else set()
        out["site_code"] = (codes, "CHB site (the `chb` area set)")
    return out


def _records(reader: Any, path: Path) -> Iterator[list[str]]:
    """The CSV records; a file the csv module cannot read is refused, naming the line."""
    try:
        yield from reader
    except csv.Error as exc:
        raise DataError(
            f"{path} refused, nothing imported: line {reader.line_num}: {exc} (a field too "
            "long, or a broken quote?)"
        ) from None


def _map_header(spec: Entity, header: list[str], mapping: Mapping, path: Path) -> list[str | None]:
    names: list[str | None] = []
    known = set(spec.columns) | {"synthetic"} | ({"easting", "northing"} if spec.located else set())
    unknown = []
    for column in header:
        clean = column.strip()
        name = mapping.columns.get(clean, clean)
        if clean in mapping.ignore or name in ("", "ignore"):
            names.append(None)
        elif name in known:
            names.append(name)
        else:
            unknown.append(clean)
            names.append(None)
    present = {n for n in names if n} | set(mapping.constants)
    missing = [f.name for f in spec.fields if f.required and f.name not in present]
    problems = []
    if unknown:
        listed = ", ".join(_shown(c) for c in unknown[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        problems.append(
            f"columns not in the {spec.kind} schema: {listed}{more} (map them in a mapping "
            "file with `columns:`, or list them under `ignore:`; a header of unreadable "
            "characters means the file is not a UTF-8 CSV)"
        )
    if missing:
        problems.append(f"required columns missing: {', '.join(missing)}")
    if len({n for n in names if n}) != len([n for n in names if n]):
        problems.append("two columns map to the same field")
    if problems:
        raise DataError(
            f"{path} refused, nothing imported: "
            + "; ".join(problems)
            + f". Schema: docs/reference/soc-schema.md#{spec.kind}"
        )
    return names


def _shown(column: str, limit: int = 40) -> str:
    """A header field fit to quote in a message: printable characters only, bounded (a binary
    file's header would otherwise put its raw bytes in the message, issue 12)."""
    safe = "".join(c if c.isprintable() and c != "\ufffd" else "?" for c in column)
    return repr(safe[:limit] + ("..." if len(safe) > limit else ""))


def _key_text(row: dict[str, Any], key: tuple[str, ...]) -> str:
    return "|".join(str(row[k]) for k in key)


def _store_rows(
    store: Store, spec: Entity, frame: pl.DataFrame, path: Path, import_id: int
) -> ImportResult:
    result = ImportResult(str(path), f"soc:{spec.kind}", "ok", import_id=import_id)
    if frame.is_empty():
        return result
    key = list(spec.key)
    stored = store.soc_keyed_rows(spec.table, key, frame)
    content = [*spec.columns, "synthetic", *(["located"] if spec.located else [])]
    if stored.is_empty():
        new, existing = frame, frame.clear()
    else:
        new = frame.join(stored.select(key), on=key, how="anti")
        existing = frame.join(stored.select([*key, "_rid"]), on=key, how="inner")
    if new.height:
        store.soc_insert(spec.table, new)
    if existing.height:
        before = stored.select(["_rid", *content]).rename({c: f"{c}__old" for c in content})
        both = existing.join(before, on="_rid")
        changed_mask = pl.any_horizontal(pl.col(c).ne_missing(pl.col(f"{c}__old")) for c in content)
        changed = both.filter(changed_mask)
        if changed.height:
            history = changed.select(
                pl.lit(spec.kind).alias("entity"),
                pl.concat_str([pl.col(k).cast(pl.String) for k in key], separator="|").alias(
                    "entity_key"
                ),
                pl.struct([pl.col(f"{c}__old").alias(c) for c in content])
                .struct.json_encode()
                .alias("previous"),
                pl.lit(str(path)).alias("source_file"),
                pl.lit(import_id, dtype=pl.Int64).alias("replaced_by_import"),
            )
            store.soc_update(
                spec.table,
                changed.select(["_rid", *content, "import_id", "source_line"]),
                history,
            )
        result.updated = changed.height
        result.unchanged = existing.height - changed.height
    result.inserted = new.height
    return result


def _assign(store: Store, spec: Entity, located: pl.DataFrame, threads: int) -> int:
    """Area codes for the file's located rows; returns how many fall outside every area."""
    from placeharm.services.areas import Assigner, load_sets

    sets = load_sets(store)
    if not sets or located.is_empty():
        return 0
    key = list(spec.key)
    stored = store.soc_keyed_rows(spec.table, key, located)
    points = stored.select("_rid", "longitude", "latitude")
    assigned = Assigner(sets, threads, 0.0).assign(points)
    for s in sets:
        store.set_area_codes(
            spec.table,
            s.name,
            assigned.select(
                "_rid",
                pl.col(f"area_{s.name}").alias("code"),
                pl.lit(False).alias("reconciled"),
            ),
        )
    return int(assigned.filter(pl.col("in_area").not_()).height)


def export_entity(store: Store, kind: str, path: Path | str) -> int:
    """Write every stored row of `kind` as CSV in the documented schema; returns rows."""
    spec = entity(kind)
    frame = store.soc_frame(spec.table)
    columns = [*spec.columns, "synthetic"]
    out = frame.select(columns).sort(list(spec.key))
    out = out.with_columns(pl.col(pl.Date).dt.strftime("%Y-%m-%d"))
    try:
        out.write_csv(Path(path))
    except OSError as exc:  # a missing folder, no permission, a full disk
        raise DataError(
            f"cannot write {path}: {exc.strerror or exc}; check the folder exists and you may "
            "write to it"
        ) from None
    return out.height


def stored_json(store: Store, kind: str) -> list[dict[str, Any]]:
    """Stored rows of `kind` in schema order, sorted by key (for comparisons and the API)."""
    spec = entity(kind)
    frame = store.soc_frame(spec.table).select([*spec.columns, "synthetic"]).sort(list(spec.key))
    return json.loads(frame.write_json())  # type: ignore[no-any-return]

"""Harm indices: a weight per offence code and per police.uk crime type, with their edition.

An index is named by a spec string, a parameter of every harm query:

    css                      ONS Crime Severity Score, national police.uk type weights
    css:northumbria          the same code weights, type weights from Northumbria's offence mix
    cchi, cchi:<force>       Cambridge Crime Harm Index (secondary)
    <name>                   a custom index registered in the store (`placeharm harm add`)

A spec is a name, never a path (issue 12: a request must not reach a file). A custom CSV or
YAML file is read by `custom_index(path)` (the CLI's `--index FILE`, `placeharm harm add`), or
parsed from bytes already in hand by `parse_index_file`.

A record's weight is its offence code's weight when it has a code the index knows, else its
crime type's weight (see `weigh`). Anti-social behaviour is not a crime: weight 0 unless the
index or the `asb_weight` argument says otherwise.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from placeharm.errors import DataError, NotFound
from placeharm.harm.derive import crime_type_of
from placeharm.model import CRIME_TYPES

DATA_DIR = Path(__file__).parent / "data"
ASB = "Anti-social behaviour"
DEFAULT_INDEX = "css"
BUILTIN = ("css", "cchi")

WEIGHT_SOURCES = ("offence code", "crime type", "none")
# a registered index's name: lowercase letter first, then lowercase letters, digits, - and _;
# no ':' (that is css:<force>), no '/' or '.' (nothing that reads as a path)
INDEX_NAME_RE = re.compile(r"[a-z][a-z0-9_-]{1,39}")
MAX_INDEX_FILE_BYTES = 2 * 1024 * 1024  # the shipped code table is 30 KB; 2 MB is generous


@dataclass(frozen=True, slots=True)
class HarmIndex:
    """One harm index, ready to weigh records."""

    name: str
    title: str
    edition: str
    source: str
    unit: str
    secondary: bool
    type_scope: str  # 'national', a force name, or 'custom'
    code_weights: dict[str, float] = field(repr=False)
    type_weights: dict[str, float] = field(repr=False)

    def describe(self) -> dict[str, object]:
        """What every result carries so a figure can be traced to its method."""
        return {
            "name": self.name,
            "title": self.title,
            "edition": self.edition,
            "source": self.source,
            "unit": self.unit,
            "secondary": self.secondary,
            "type_weights_from": self.type_scope,
            "asb_weight": self.type_weights.get(ASB),
        }

    def with_asb_weight(self, weight: float | None) -> HarmIndex:
        """The same index with anti-social behaviour weighted `weight` (None: unchanged)."""
        if weight is None:
            return self
        _check_weight(weight, "--asb-weight")
        types = dict(self.type_weights)
        types[ASB] = float(weight)
        return replace(self, type_weights=types)

    def type_table(self) -> pl.DataFrame:
        return pl.DataFrame(
            {"crime_type": list(self.type_weights), "weight": list(self.type_weights.values())},
            schema={"crime_type": pl.String, "weight": pl.Float64},
        ).sort("crime_type")

    def code_table(self) -> pl.DataFrame:
        return pl.DataFrame(
            {"offence_code": list(self.code_weights), "weight": list(self.code_weights.values())},
            schema={"offence_code": pl.String, "weight": pl.Float64},
        ).sort("offence_code")


def weigh(frame: pl.DataFrame, index: HarmIndex) -> pl.DataFrame:
    """Add `weight` and `weight_source` to a frame with crime_type and offence_code columns.

    Precedence: the offence code's weight when the record has a code the index knows; else
    the crime type's weight; else no weight (weight null, weight_source 'none'), which the
    queries report rather than treat as zero harm silently.
    """
    codes = index.code_table().rename({"weight": "_code_w"})
    types = index.type_table().rename({"weight": "_type_w"})
    return (
        frame.join(codes, on="offence_code", how="left")
        .join(types, on="crime_type", how="left")
        .with_columns(
            pl.coalesce("_code_w", "_type_w").alias("weight"),
            pl.when(pl.col("_code_w").is_not_null())
            .then(pl.lit("offence code"))
            .when(pl.col("_type_w").is_not_null())
            .then(pl.lit("crime type"))
            .otherwise(pl.lit("none"))
            .alias("weight_source"),
        )
        .drop("_code_w", "_type_w")
    )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@cache
def _builtin_meta() -> dict[str, dict[str, Any]]:
    with (DATA_DIR / "indices.toml").open("rb") as handle:
        return tomllib.load(handle)


@cache
def _builtin_tables() -> tuple[pl.DataFrame, pl.DataFrame]:
    codes = pl.read_csv(DATA_DIR / "code_weights.csv", schema_overrides={"offence_code": pl.String})
    types = pl.read_csv(DATA_DIR / "type_weights.csv")
    return codes, types


def force_scopes(index: str = DEFAULT_INDEX) -> list[str]:
    """Forces with their own type weights in a shipped index (the 2017/18 table's forces)."""
    _, types = _builtin_tables()
    scopes = types.filter(pl.col("index") == index)["scope"].unique().sort().to_list()
    return [s for s in scopes if s != "national"]


def builtin_index(name: str, force: str | None = None) -> HarmIndex:
    """A shipped index; `force` picks that force's type weights instead of the national ones."""
    meta = _builtin_meta().get(name)
    if meta is None:
        raise NotFound(f"no harm index {name!r}; shipped: {', '.join(BUILTIN)}")
    codes, types = _builtin_tables()
    scope = "national"
    if force:
        by_slug = {_slug(s): s for s in force_scopes(name)}
        if _slug(force) not in by_slug:
            raise NotFound(
                f"no {name} type weights for force {force!r}; forces: {', '.join(sorted(by_slug))}"
            )
        scope = by_slug[_slug(force)]
    code_rows = codes.filter(pl.col("index") == name)
    type_rows = types.filter((pl.col("index") == name) & (pl.col("scope") == scope))
    return HarmIndex(
        name=f"{name}:{_slug(scope)}" if force else name,
        title=str(meta["title"]),
        edition=str(meta["edition"]),
        source=str(meta["source"]),
        unit=str(meta["unit"]),
        secondary=bool(meta["secondary"]),
        type_scope=scope,
        code_weights=dict(zip(code_rows["offence_code"], code_rows["weight"], strict=True)),
        type_weights=dict(zip(type_rows["crime_type"], type_rows["weight"], strict=True)),
    )


class UnknownIndex(DataError):
    """An index spec that is neither shipped nor registered (a 400 on the web)."""


def shipped_specs() -> list[str]:
    """Every shipped spec: css, cchi, then css:<force> and cchi:<force> for each force."""
    specs = list(BUILTIN)
    for name in BUILTIN:
        specs += [f"{name}:{_slug(scope)}" for scope in force_scopes(name)]
    return specs


def unknown_index_message(registered: list[str] | tuple[str, ...] = ()) -> str:
    """The one message for every index that is not a valid choice. It never repeats the value
    asked for, so every unknown value (a path, an existing or missing file, a typo) gets the
    same answer and nothing can be learnt from the difference."""
    forces = sorted({_slug(s) for name in BUILTIN for s in force_scopes(name)})
    names = [*BUILTIN, *sorted(registered)]
    return (
        f"unknown harm index; choose one of: {', '.join(names)}; css and cchi also take a "
        f"force's own crime-type weights as css:<force> or cchi:<force>, where <force> is one "
        f"of: {', '.join(forces)}. An administrator adds a custom index with "
        "`placeharm harm add FILE --name NAME`."
    )


def canonical_spec(spec: str | None, registered: Mapping[str, HarmIndex] | None = None) -> str:
    """The canonical spelling of a valid spec (`CSS:Northumbria` -> `css:northumbria`), or
    UnknownIndex with `unknown_index_message`. Reads no file, whatever the spec."""
    registered = registered or {}
    text = (spec or DEFAULT_INDEX).strip().lower()
    if len(text) <= 80:  # longer than any valid spec
        name, colon, force = text.partition(":")
        if name in BUILTIN and not colon:
            return name
        if name in BUILTIN and force:
            slugs = {_slug(s) for s in force_scopes(name)}
            if _slug(force) in slugs:
                return f"{name}:{_slug(force)}"
        if not colon and text in registered:
            return text
    raise UnknownIndex(unknown_index_message(tuple(registered)))


def load_index(
    spec: str | None = None,
    asb_weight: float | None = None,
    registered: Mapping[str, HarmIndex] | None = None,
) -> HarmIndex:
    """Resolve an index spec: a shipped index, or one of `registered` (custom indices by name,
    from the store's registry), optionally re-weighting ASB. Never a file: use
    `custom_index(path)` for one."""
    canonical = canonical_spec(spec, registered)
    if registered and canonical in registered:
        index = registered[canonical]
    else:
        name, _, force = canonical.partition(":")
        index = builtin_index(name, force or None)
    return index.with_asb_weight(asb_weight)


def check_index_name(name: str) -> str:
    """A registered index's name, checked: the pattern, and no shipped name."""
    if not INDEX_NAME_RE.fullmatch(name):
        raise DataError(
            f"index name {name[:60]!r} is not allowed: use 2 to 40 characters, lowercase "
            "letters, digits, '-' and '_', starting with a letter (e.g. drugs-focus)"
        )
    if name in BUILTIN:
        raise DataError(f"{name!r} is a shipped index; choose another name")
    return name


def list_indices() -> pl.DataFrame:
    """The shipped indices with their editions (the store's registered ones: see
    `placeharm.services.indices.listing`)."""
    rows = []
    for name in BUILTIN:
        index = builtin_index(name)
        rows.append(
            {
                "name": name,
                "title": index.title,
                "secondary": index.secondary,
                "offence_codes": len(index.code_weights),
                "force_variants": len(force_scopes(name)),
                "edition": index.edition,
            }
        )
    return pl.DataFrame(rows)


# -- custom indices ------------------------------------------------------------------------


def _check_weight(value: object, where: str) -> float:
    try:
        weight = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(f"{where}: weight {value!r} is not a number") from None
    if not math.isfinite(weight) or weight < 0:
        raise DataError(f"{where}: weight {value!r} must be a finite number, 0 or more")
    return weight


def _crime_type(label: str, where: str) -> str:
    try:
        return crime_type_of(label)
    except ValueError:
        raise DataError(
            f"{where}: {label!r} is not a police.uk crime type; use one of: "
            f"{', '.join(CRIME_TYPES)}"
        ) from None


def custom_index(path: Path | str) -> HarmIndex:
    """A user's index from a local CSV (offence_code or crime_type, weight) or YAML file; see
    docs/harm.md. For the command line and `placeharm harm add`, never for a web request.
    Messages name the file by its name only."""
    path = Path(path)
    return parse_index_file(path.name, read_index_file(path))


def read_index_file(path: Path) -> bytes:
    """A custom index file's bytes (refused if missing or larger than any index could be)."""
    if not path.is_file():
        raise NotFound(f"harm index file {path.name} does not exist (or is not a file)")
    if path.stat().st_size > MAX_INDEX_FILE_BYTES:
        raise DataError(
            f"{path.name}: larger than {MAX_INDEX_FILE_BYTES // 2**20} MB; a harm index is "
            "one row per offence code or crime type"
        )
    return path.read_bytes()


def parse_index_file(filename: str, raw: bytes, name: str | None = None) -> HarmIndex:
    """Parse and validate a custom index from its bytes; `filename` (a name, not a path)
    decides CSV or YAML by its suffix and names the file in messages; `name` (a registered
    index's) wins over the file's own `name` and stem."""
    suffix = Path(filename).suffix.lower()
    if suffix not in (".csv", ".yaml", ".yml"):
        raise DataError(f"{filename}: a harm index file is .csv, .yaml or .yml")
    digest = hashlib.sha256(raw).hexdigest()[:12]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{filename}: not UTF-8 text; save it as UTF-8 CSV or YAML") from None
    if suffix == ".csv":
        codes, types, meta = _custom_csv(filename, text)
    else:
        codes, types, meta = _custom_yaml(filename, text)
    base_name = meta.get("base")
    base = load_index(str(base_name)) if base_name else None
    code_weights = {**(base.code_weights if base else {}), **codes}
    type_weights = {**(base.type_weights if base else {ASB: 0.0}), **types}
    if not codes and not types and base is None:
        raise DataError(f"{filename}: no weights found")
    edition = str(meta.get("edition") or "unversioned")
    name = name or str(meta.get("name") or Path(filename).stem)
    return HarmIndex(
        name=name,
        title=str(meta.get("title") or f"Custom index {name}"),
        edition=f"{edition} (file sha256 {digest})",
        source=str(meta.get("source") or f"file {filename}"),
        unit=str(meta.get("unit") or (base.unit if base else "custom weight")),
        secondary=bool(meta.get("secondary", False)),
        type_scope=f"custom (base {base.name})" if base else "custom",
        code_weights=code_weights,
        type_weights=type_weights,
    )


def _custom_csv(
    path: str, text: str
) -> tuple[dict[str, float], dict[str, float], dict[str, object]]:
    reader = csv.DictReader(text.splitlines())
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if "weight" not in fields or not ({"offence_code", "crime_type"} & set(fields)):
        raise DataError(
            f"{path}: the header must have a 'weight' column and an 'offence_code' or "
            f"'crime_type' column (found: {', '.join(fields) or 'nothing'})"
        )
    codes: dict[str, float] = {}
    types: dict[str, float] = {}
    problems: list[str] = []
    for line, read in enumerate(reader, start=2):
        where = f"{path}:{line}"
        extra = read.pop(None, None)  # fields beyond the header's (csv.DictReader's restkey)
        if extra:
            problems.append(
                f"{where}: {len(extra)} more field(s) than the header; put double quotes "
                "around a field that contains a comma"
            )
            continue
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in read.items()}
        code, crime_type = row.get("offence_code", ""), row.get("crime_type", "")
        try:
            if bool(code) == bool(crime_type):
                raise DataError(f"{where}: give an offence_code or a crime_type, not both or none")
            weight = _check_weight(row.get("weight", ""), where)
            target, key = (codes, code) if code else (types, _crime_type(crime_type, where))
            if key in target:
                raise DataError(f"{where}: {key!r} appears twice")
            target[key] = weight
        except DataError as exc:
            problems.append(str(exc))
    if problems:
        raise DataError("the harm index file has errors:\n  " + "\n  ".join(problems))
    return codes, types, {}


def _custom_yaml(
    path: str, text: str
) -> tuple[dict[str, float], dict[str, float], dict[str, object]]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected a mapping with offence_codes and/or crime_types")
    allowed = {"name", "title", "edition", "source", "unit", "secondary", "base"}
    allowed |= {"offence_codes", "crime_types"}
    unknown = sorted(set(map(str, doc)) - allowed)
    if unknown:
        raise DataError(f"{path}: unknown keys {', '.join(unknown)}; allowed: {sorted(allowed)}")
    problems: list[str] = []
    codes: dict[str, float] = {}
    types: dict[str, float] = {}
    for key, target in (("offence_codes", codes), ("crime_types", types)):
        section = doc.get(key) or {}
        if not isinstance(section, dict):
            problems.append(f"{path}: {key} must be a mapping of name: weight")
            continue
        for name, value in section.items():
            where = f"{path}: {key}.{name}"
            try:
                label = str(name).strip()
                label = _crime_type(label, where) if key == "crime_types" else label
                target[label] = _check_weight(value, where)
            except DataError as exc:
                problems.append(str(exc))
    base = doc.get("base")
    if base is not None and str(base).partition(":")[0].lower() not in BUILTIN:
        problems.append(f"{path}: base must be a shipped index ({', '.join(BUILTIN)})")
    if problems:
        raise DataError("the harm index file has errors:\n  " + "\n  ".join(problems))
    meta = {k: v for k, v in doc.items() if k not in {"offence_codes", "crime_types"}}
    return codes, types, meta

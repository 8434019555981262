"""Harm indices: a weight per offence code and per police.uk crime type, with their edition.

An index is named by a spec string, a parameter of every harm query:

    css                      ONS Crime Severity Score, national police.uk type weights
    css:northumbria          the same code weights, type weights from Northumbria's offence mix
    cchi, cchi:<force>       Cambridge Crime Harm Index (secondary)
    path/to/weights.csv      a custom index (CSV or YAML, see docs/harm.md)

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


def load_index(spec: str | None = None, asb_weight: float | None = None) -> HarmIndex:
    """Resolve an index spec (see the module docstring), optionally re-weighting ASB."""
    spec = (spec or DEFAULT_INDEX).strip()
    name, _, force = spec.partition(":")
    if name.lower() in BUILTIN:
        index = builtin_index(name.lower(), force or None)
    elif spec.lower().endswith((".csv", ".yaml", ".yml")) or "/" in spec:
        index = custom_index(Path(spec))
    else:
        raise NotFound(
            f"no harm index {spec!r}; use one of {', '.join(BUILTIN)} (optionally "
            "':<force>', e.g. css:northumbria) or the path of a custom CSV or YAML file"
        )
    return index.with_asb_weight(asb_weight)


def list_indices() -> pl.DataFrame:
    """The shipped indices with their editions (custom files are not listed)."""
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


def custom_index(path: Path) -> HarmIndex:
    """A user's index from CSV (offence_code or crime_type, weight) or YAML; see docs/harm.md."""
    if not path.is_file():
        raise NotFound(f"harm index file {path} does not exist")
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()[:12]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; save it as UTF-8 CSV or YAML") from None
    if path.suffix.lower() == ".csv":
        codes, types, meta = _custom_csv(path, text)
    else:
        codes, types, meta = _custom_yaml(path, text)
    base_name = meta.get("base")
    base = load_index(str(base_name)) if base_name else None
    code_weights = {**(base.code_weights if base else {}), **codes}
    type_weights = {**(base.type_weights if base else {ASB: 0.0}), **types}
    if not code_weights and not type_weights:
        raise DataError(f"{path}: no weights found")
    edition = str(meta.get("edition") or "unversioned")
    return HarmIndex(
        name=str(meta.get("name") or path.stem),
        title=str(meta.get("title") or f"Custom index {path.name}"),
        edition=f"{edition} (file sha256 {digest})",
        source=str(meta.get("source") or str(path)),
        unit=str(meta.get("unit") or (base.unit if base else "custom weight")),
        secondary=bool(meta.get("secondary", False)),
        type_scope=f"custom (base {base.name})" if base else "custom",
        code_weights=code_weights,
        type_weights=type_weights,
    )


def _custom_csv(
    path: Path, text: str
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
    for line, row in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        where = f"{path}:{line}"
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
    path: Path, text: str
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

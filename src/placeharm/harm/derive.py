"""Derive the shipped harm indices from the public reference files (run by maintainers).

    python -m placeharm.harm.derive --reference ../shared/data/reference

writes `placeharm/harm/data/code_weights.csv` and `type_weights.csv`. The method is in
docs/harm.md; tests/integration/test_harm_derivation.py checks the shipped files equal a
fresh derivation and an independent hand calculation.

Offence-code weights
    ONS Crime Severity Score: `severity_codes.csv` gives a weight per Home Office code. The
    file keys some rows by an ONS grouping code (`28C`, `30C`, `1, 4.1/2/10`); the code a
    force records is `code_original` (`28A`, `30A`, `1`, `4.1`, `4.2`, ...). Both spellings
    are keys here, and the combined homicide code of the 2017/18 table (`1/4.1/4.10/4.2`) is
    split into its parts as well.
    Cambridge Crime Harm Index: `cchi_weights_derived.csv` gives a median per ONS offence
    subgroup; a code takes its subgroup's figure (subgroup from `CrimeCatMappings.csv`,
    renamed subgroups crosswalked in `CCHI_SUBGROUP`).

police.uk crime-type weights
    For each of the 13 police.uk crime types (anti-social behaviour is not a crime) the weight
    is the count-weighted mean of its codes' weights in the Home Office 2017/18 recorded
    crime table (`prc-pfa-201718_new.csv`), nationally and per force:
        w(type) = sum(offences(code) * w(code)) / sum(offences(code)), over codes with a weight.
    Codes with no weight in the index (fraud reported to Action Fraud, CIFAS, UK Finance) are
    left out of both sums; the shipped table records how many offences each weight rests on.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import polars as pl

from placeharm.model import CRIME_TYPES

ASB = "Anti-social behaviour"
DATA_DIR = Path(__file__).parent / "data"
MIX_FILE = "prc-pfa-201718_new.csv"

# ONS subgroups renamed or merged since 2017/18 -> the name in cchi_weights_derived.csv.
CCHI_SUBGROUP = {
    "Domestic burglary": "Residential burglary",
    "Non-domestic burglary": "Non-residential burglary",
    "Theft from a vehicle": "Vehicle offences",
    "Theft of a motor vehicle": "Vehicle offences",
    "Vehicle interference": "Vehicle offences",
    "Miscellaneous crimes": "Miscellaneous crimes against society",
}
# Codes in severity_codes.csv with no row in CrimeCatMappings.csv: their subgroup and type,
# from their descriptions ("Rape of a Female/Male - Multiple Undefined Offenders") and from
# the combined homicide code they belong to.
_EXTRA_CODES = {
    "19J": ("Rape offences", "Violence and sexual offences"),
    "19K": ("Rape offences", "Violence and sexual offences"),
}
_HOMICIDE_COMBINED = "1/4.1/4.10/4.2"
_CODE_RE = re.compile(r"^[0-9A-Za-z./]{1,20}$")


def crime_type_of(label: str) -> str:
    """A police.uk crime type in its published spelling (the reference files vary the case)."""
    for crime_type in CRIME_TYPES:
        if crime_type.lower() == label.strip().lower():
            return crime_type
    raise ValueError(f"{label!r} is not a police.uk crime type")


def _read(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema_length=0)


def _code_catalogue(reference: Path) -> pl.DataFrame:
    """Every offence code a force may record: description, ONS subgroup, police.uk type."""
    mappings = _read(reference / "CrimeCatMappings.csv").select(
        pl.col("Offence_Code").alias("offence_code"),
        pl.col("Offence_Description").alias("description"),
        pl.col("Offence_Subgroup").alias("subgroup"),
        pl.col("Police.uk_Cat").map_elements(crime_type_of, return_dtype=pl.String).alias("type"),
    )
    rows = mappings.to_dicts()
    known = {r["offence_code"] for r in rows}
    homicide = next(r for r in rows if r["offence_code"] == _HOMICIDE_COMBINED)
    for part in _HOMICIDE_COMBINED.split("/"):
        rows.append({**homicide, "offence_code": part})
    severity = _read(reference / "severity_codes.csv")
    for code, grouped, description in severity.select(
        "code_original", "code_severity", "description"
    ).iter_rows():
        if code not in known and code in _EXTRA_CODES:
            subgroup, crime_type = _EXTRA_CODES[code]
            rows.append(
                {
                    "offence_code": code,
                    "description": description,
                    "subgroup": subgroup,
                    "type": crime_type,
                }
            )
        if grouped != code and _CODE_RE.match(grouped):  # 28C -> as 28A
            source = next(r for r in rows if r["offence_code"] == code)
            rows.append({**source, "offence_code": grouped})
    return pl.DataFrame(rows).unique("offence_code", keep="first", maintain_order=True)


def css_code_weights(reference: Path) -> pl.DataFrame:
    """offence_code -> ONS CSS weight, for every spelling of every weighted code."""
    severity = _read(reference / "severity_codes.csv").with_columns(pl.col("weight").cast(float))
    weights: dict[str, float] = {}
    for code, grouped, weight in severity.select(
        "code_original", "code_severity", "weight"
    ).iter_rows():
        keys = [code, grouped]
        if code == _HOMICIDE_COMBINED:
            keys += code.split("/")
        for key in keys:
            if not _CODE_RE.match(key):
                continue
            if key in weights and abs(weights[key] - weight) > 1e-9:
                raise ValueError(f"severity_codes.csv gives code {key} two weights")
            weights[key] = weight
    return pl.DataFrame(
        {"offence_code": list(weights), "weight": list(weights.values())},
        schema={"offence_code": pl.String, "weight": pl.Float64},
    )


def cchi_code_weights(reference: Path) -> pl.DataFrame:
    """offence_code -> CCHI days via its ONS subgroup (codes with no CCHI subgroup: none)."""
    cchi = _read(reference / "cchi_weights_derived.csv").select(
        pl.col("prc_subgroup").alias("cchi_subgroup"), pl.col("cchi_days").cast(float)
    )
    catalogue = _code_catalogue(reference).with_columns(
        pl.col("subgroup").replace(CCHI_SUBGROUP).alias("cchi_subgroup")
    )
    return (
        catalogue.join(cchi, on="cchi_subgroup", how="inner")
        .select("offence_code", pl.col("cchi_days").alias("weight"))
        .sort("offence_code")
    )


def offence_mix(reference: Path) -> pl.DataFrame:
    """2017/18 offences per force, code and police.uk type (all four quarters summed)."""
    mix = _read(reference / MIX_FILE)
    return (
        mix.select(
            pl.col("Force_Name").alias("force"),
            pl.col("Offence_Code").alias("offence_code"),
            pl.col("Policeuk_Cat")
            .map_elements(crime_type_of, return_dtype=pl.String)
            .alias("crime_type"),
            pl.col("Number_of_Offences").cast(pl.Int64).alias("offences"),
        )
        .group_by("force", "offence_code", "crime_type")
        .agg(pl.col("offences").sum())
    )


def type_weights(mix: pl.DataFrame, code_weights: pl.DataFrame) -> pl.DataFrame:
    """Count-weighted mean code weight per (scope, crime type); scope 'national' or a force."""
    weighted = mix.join(code_weights, on="offence_code", how="inner")
    national = weighted.with_columns(pl.lit("national").alias("force"))
    parts = []
    for frame in (national, weighted):
        parts.append(
            frame.group_by("force", "crime_type").agg(
                (pl.col("offences") * pl.col("weight")).sum().alias("weighted"),
                pl.col("offences").sum().alias("offences"),
                pl.col("offence_code").n_unique().alias("codes"),
            )
        )
    out = (
        pl.concat(parts)
        .filter(pl.col("offences") > 0)
        .with_columns((pl.col("weighted") / pl.col("offences")).alias("weight"))
        .select(pl.col("force").alias("scope"), "crime_type", "weight", "offences", "codes")
    )
    scopes = out["scope"].unique().to_list()
    asb = pl.DataFrame(
        {
            "scope": scopes,
            "crime_type": [ASB] * len(scopes),
            "weight": [0.0] * len(scopes),
            "offences": [0] * len(scopes),
            "codes": [0] * len(scopes),
        },
        schema=out.schema,
    )
    return pl.concat([out, asb]).sort("scope", "crime_type")


def derive(reference: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(code_weights, type_weights) for every shipped index, as the package data files hold."""
    catalogue = _code_catalogue(reference)
    mix = offence_mix(reference)
    code_frames, type_frames = [], []
    for index, weights in (
        ("css", css_code_weights(reference)),
        ("cchi", cchi_code_weights(reference)),
    ):
        code_frames.append(
            weights.join(catalogue, on="offence_code", how="left").select(
                pl.lit(index).alias("index"),
                "offence_code",
                "weight",
                pl.col("type").alias("crime_type"),
                "subgroup",
                "description",
            )
        )
        type_frames.append(
            type_weights(mix, weights).select(pl.lit(index).alias("index"), pl.all())
        )
    codes = pl.concat(code_frames).sort("index", "offence_code")
    types = pl.concat(type_frames).sort("index", "scope", "crime_type")
    return codes, types


def national_mix(reference: Path) -> pl.DataFrame:
    """2017/18 offences per code and police.uk type in England and Wales (the demo generator
    samples offence codes from it)."""
    return (
        offence_mix(reference)
        .group_by("offence_code", "crime_type")
        .agg(pl.col("offences").sum())
        .filter(pl.col("offences") > 0)
        .sort("crime_type", "offence_code")
    )


def write(
    codes: pl.DataFrame, types: pl.DataFrame, out_dir: Path, mix: pl.DataFrame | None = None
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    if mix is not None:
        mix.write_csv(out_dir / "offence_mix.csv", quote_style="non_numeric")
    codes.write_csv(out_dir / "code_weights.csv", quote_style="non_numeric")
    types.write_csv(out_dir / "type_weights.csv", quote_style="non_numeric", float_precision=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    args = parser.parse_args()
    codes, types = derive(args.reference)
    write(codes, types, args.out, national_mix(args.reference))
    print(f"wrote {codes.height} code weights and {types.height} type weights to {args.out}")


if __name__ == "__main__":
    main()

"""A synthetic SOC overlay on real police.uk crimes, for the demo and the tests.

Everything here is invented and flagged `synthetic`; names are made of invented syllables and
every surname starts "Demo", so no record can be mistaken for a real person. The overlay sits
on the real crime points: groups are based where real drug, weapons, robbery and violence
crime concentrates, their crimes are real police.uk crimes (offence codes sampled from the
Home Office 2017/18 offence mix within each crime type), and their addresses, intelligence
and incidents are at real crime points of their territory. Same seed, same overlay.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import shapely
import shapely.affinity
import shapely.geometry

from placeharm.errors import DataError
from placeharm.harm.indices import DATA_DIR
from placeharm.model import month_range, shift_month
from placeharm.soc.schema import TOPICS

_SYLLABLES = (
    "zar",
    "vex",
    "quil",
    "mor",
    "thy",
    "brax",
    "olv",
    "kes",
    "drin",
    "yul",
    "fen",
    "zor",
    "ask",
    "vim",
    "ulm",
    "trev",
    "qua",
    "jex",
    "nol",
    "pry",
)
_GROUP_WORDS = (
    "Kestrel",
    "Basalt",
    "Marram",
    "Tamarisk",
    "Cobalt",
    "Sorrel",
    "Larch",
    "Pewter",
    "Heron",
    "Flint",
    "Juniper",
    "Ochre",
    "Bracken",
    "Slate",
    "Ember",
)
_SOC_TYPES = ("Drugs", "Possession of weapons", "Robbery", "Violence and sexual offences")
GRADING = {
    "source_evaluation": (("1", "2", "3"), (0.2, 0.7, 0.1)),
    "intelligence_assessment": (("A", "B", "C", "D", "E"), (0.1, 0.45, 0.3, 0.12, 0.03)),
    "handling_code": (("P", "C"), (0.8, 0.2)),
}


@dataclass(slots=True)
class Overlay:
    """The generated files: one CSV per entity kind, plus the CHB site polygons."""

    folder: Path
    files: dict[str, Path]
    chb_sites: Path
    counts: dict[str, int]


def _name(rng: np.random.Generator, parts: int) -> str:
    return "".join(rng.choice(_SYLLABLES, parts)).capitalize()


def _day(rng: np.random.Generator, month: dt.date) -> dt.date:
    return month + dt.timedelta(days=int(rng.integers(0, 28)))


def _offence_sampler(rng: np.random.Generator) -> dict[str, tuple[list[str], np.ndarray]]:
    mix = pl.read_csv(DATA_DIR / "offence_mix.csv", schema_overrides={"offence_code": pl.String})
    out = {}
    mix = mix.sort("crime_type", "offence_code")
    for (crime_type,), group in mix.group_by(["crime_type"], maintain_order=True):
        counts = group["offences"].to_numpy().astype(float)
        out[str(crime_type)] = (group["offence_code"].to_list(), counts / counts.sum())
    return out


def generate(crimes: pl.DataFrame, out_dir: Path, seed: int = 1, scale: int = 1) -> Overlay:
    """Write the overlay CSVs to `out_dir` from real crimes (crime_id, month, crime_type,
    longitude, latitude, area_ward). `scale` multiplies groups, nominals and events."""
    rng = np.random.default_rng(seed)
    crimes = (
        crimes.filter(pl.col("area_ward").is_not_null())
        .sort(
            ["crime_id", "month", "crime_type", "longitude", "latitude", "location"],
            nulls_last=True,
        )
        .sort("crime_id", "month", nulls_last=True)
    )
    if crimes.height < 1000:
        raise DataError(
            "the overlay needs real crimes assigned to wards: ingest police.uk "
            "street files and import a `ward` area set first"
        )
    months = month_range(crimes["month"].min(), crimes["month"].max())  # type: ignore[arg-type]
    soc = crimes.filter(pl.col("crime_type").is_in(_SOC_TYPES))
    ward_counts = (
        soc.group_by("area_ward").len().sort(["len", "area_ward"], descending=[True, False])
    )
    wards: list[str] = [str(w) for w in ward_counts["area_ward"].to_list()]
    weights = ward_counts["len"].to_numpy().astype(float) ** 1.5
    weights /= weights.sum()
    points = {str(w): g for (w,), g in crimes.group_by(["area_ward"], maintain_order=True)}
    soc_points = {str(w): g for (w,), g in soc.group_by(["area_ward"], maintain_order=True)}
    sampler = _offence_sampler(rng)

    def point_in(ward: str, source: dict[str, pl.DataFrame] = points) -> dict[str, Any]:
        frame = source.get(ward)
        if frame is None or frame.is_empty():
            frame = points[ward]
        return frame.row(int(rng.integers(0, frame.height)), named=True)

    def any_day() -> dt.date:
        """Force records have no gaps: any month of the period, published or not."""
        return _day(rng, months[int(rng.integers(0, len(months)))])

    def code_for(crime_type: str) -> str:
        codes, p = sampler[crime_type]
        return str(rng.choice(codes, p=p))

    # -- groups and their members --------------------------------------------------------
    groups: list[dict[str, Any]] = []
    memberships: list[dict[str, Any]] = []
    nominals: list[dict[str, Any]] = []
    addresses: list[dict[str, Any]] = []
    group_home: dict[str, str] = {}
    n_by_type = {"OCG": 18 * scale, "UCG": 6 * scale, "PCG": 6 * scale}
    home_wards = rng.choice(wards, size=sum(n_by_type.values()), p=weights)
    nominal_no = 0
    by_id: dict[str, dict[str, Any]] = {}

    def new_nominal(flags: dict[str, bool], age: tuple[int, int], ward: str) -> str:
        nonlocal nominal_no
        nominal_no += 1
        nid = f"DEMO-N{nominal_no:06d}"
        born = months[-1] - dt.timedelta(days=int(rng.integers(age[0] * 365, age[1] * 365)))
        row = {
            "nominal_id": nid,
            "surname": "Demo" + _name(rng, 2).lower(),
            "forename": _name(rng, 2),
            "date_of_birth": born,
            "gender": str(rng.choice(["M", "F"], p=[0.82, 0.18])),
            "ocg_member": False,
            "priority_individual": False,
            "pcg_member": False,
            "ucg_member": False,
            "cce_perpetrator": False,
            "cce_victim": False,
            "cse_perpetrator": False,
            "cse_victim": False,
            "mopi_review_date": months[-1] + dt.timedelta(days=int(rng.integers(30, 2000))),
        }
        nominals.append(row | flags)
        by_id[nid] = nominals[-1]
        home = point_in(ward)
        addresses.append(
            {
                "nominal_id": nid,
                "address_id": f"DEMO-A{nominal_no:06d}",
                "link_type": "home",
                "address": f"{int(rng.integers(1, 200))} {home['location'] or 'street'} (DEMO)",
                "from_date": months[0] - dt.timedelta(days=int(rng.integers(100, 3000))),
                "to_date": None,
                "latitude": home["latitude"],
                "longitude": home["longitude"],
            }
        )
        return nid

    members: dict[str, list[str]] = {}
    index = 0
    for group_type, n in n_by_type.items():
        for _ in range(n):
            index += 1
            gid = f"DEMO-G{index:03d}"
            ward = str(home_wards[index - 1])
            group_home[gid] = ward
            word = _GROUP_WORDS[index % len(_GROUP_WORDS)]
            groups.append(
                {
                    "group_id": gid,
                    "name": f"DEMO {group_type} {word} {index}",
                    "group_type": group_type,
                    "ocg_band": str(rng.choice(["1A", "1B", "2A", "2B", "2C", "3A", "3B"]))
                    if group_type == "OCG"
                    else None,
                    "status": str(rng.choice(["active", "dormant"], p=[0.85, 0.15])),
                }
            )
            size = {"OCG": (8, 20), "UCG": (10, 25), "PCG": (6, 15)}[group_type]
            flag = {"OCG": "ocg_member", "UCG": "ucg_member", "PCG": "pcg_member"}[group_type]
            age = (18, 50) if group_type == "OCG" else (14, 25)
            members[gid] = []
            for m in range(int(rng.integers(*size))):
                role = (
                    "principal"
                    if m == 0
                    else str(
                        rng.choice(["significant", "peripheral", "member"], p=[0.25, 0.35, 0.4])
                    )
                )
                flags = {flag: True, "priority_individual": group_type == "OCG" and m < 2}
                nid = new_nominal(flags, age, ward)
                members[gid].append(nid)
                memberships.append(
                    {
                        "group_id": gid,
                        "nominal_id": nid,
                        "role": role,
                        "start_date": months[0] - dt.timedelta(days=int(rng.integers(0, 1500))),
                        "end_date": None,
                    }
                )
    # others: associates, exploited children, victims
    links: list[dict[str, Any]] = []
    target_total = 2000 * scale
    while nominal_no < target_total:
        gid = str(rng.choice(list(members)))
        ward = group_home[gid]
        kind = rng.choice(["associate", "cce", "cse", "victim"], p=[0.7, 0.12, 0.03, 0.15])
        flags = {}
        if kind == "cce":
            flags = {"cce_victim": True}
        elif kind == "cse":
            flags = {"cse_victim": True}
        nid = new_nominal(flags, (12, 17) if kind in ("cce", "cse") else (16, 60), ward)
        partner = str(rng.choice(members[gid]))
        if kind in ("cce", "cse"):
            links.append({"from_nominal": partner, "to_nominal": nid, "link_type": "exploitation"})
            perpetrator = by_id[partner]
            perpetrator["cce_perpetrator" if kind == "cce" else "cse_perpetrator"] = True
        elif kind == "associate":
            links.append(
                {
                    "from_nominal": partner,
                    "to_nominal": nid,
                    "link_type": str(rng.choice(["associate", "family"], p=[0.8, 0.2])),
                }
            )
    # cuckooed addresses: drug-supply OCGs take over vulnerable people's homes
    for gid, group in zip(members, groups, strict=True):
        if group["group_type"] != "OCG":
            continue
        for c in range(int(rng.integers(0, 4))):
            spot = point_in(group_home[gid], soc_points)
            addresses.append(
                {
                    "nominal_id": str(rng.choice(members[gid])),
                    "address_id": f"DEMO-CK{gid[-3:]}{c}",
                    "link_type": "cuckooed",
                    "address": f"Flat {int(rng.integers(1, 40))}, {spot['location']} (DEMO)",
                    "from_date": _day(rng, months[int(rng.integers(0, len(months)))]),
                    "to_date": None,
                    "latitude": spot["latitude"],
                    "longitude": spot["longitude"],
                }
            )

    # -- crimes from the force's records, linked to group members ------------------------
    force_crimes: list[dict[str, Any]] = []
    nominal_crimes: list[dict[str, Any]] = []
    used: set[str] = set()
    per_group_year = {"OCG": 60, "UCG": 40, "PCG": 25}
    years = len(months) / 12

    def force_crime(spot: dict[str, Any], code: str | None = None, **flags: bool) -> str:
        ref = f"DEMO-C{len(force_crimes) + 1:07d}"
        crime_type = spot["crime_type"]
        force_crimes.append(
            {
                "crime_ref": ref,
                "recorded_date": _day(rng, spot["month"]),
                "offence_code": code or code_for(crime_type),
                "crime_type": crime_type,
                "firearms_discharged": flags.get("firearms_discharged", False),
                "cannabis_production": flags.get("cannabis_production", False),
                "policeuk_crime_id": spot["crime_id"],
                "latitude": spot["latitude"],
                "longitude": spot["longitude"],
            }
        )
        return ref

    for gid, group in zip(members, groups, strict=True):
        pool = soc_points.get(group_home[gid])
        if pool is None:
            continue
        pool = pool.filter(pl.col("crime_id").is_not_null())
        n = min(pool.height, int(rng.poisson(per_group_year[group["group_type"]] * years)) + 1)
        for i in rng.choice(pool.height, size=n, replace=False):
            spot = pool.row(int(i), named=True)
            if spot["crime_id"] in used:
                continue
            used.add(spot["crime_id"])
            ref = force_crime(spot)
            for nid in rng.choice(
                members[gid], size=min(len(members[gid]), int(rng.integers(1, 4))), replace=False
            ):
                nominal_crimes.append(
                    {
                        "nominal_id": str(nid),
                        "crime_ref": ref,
                        "role": str(rng.choice(["suspect", "offender"])),
                    }
                )
    # firearms discharges and cannabis farms, where the groups are
    for _ in range(int(12 * scale * years)):
        gid = str(rng.choice([g["group_id"] for g in groups if g["group_type"] != "PCG"]))
        spot = point_in(group_home[gid], soc_points)
        if spot["crime_id"] is None or spot["crime_id"] in used:
            continue
        used.add(spot["crime_id"])
        spot = spot | {"crime_type": "Violence and sexual offences"}
        ref = force_crime(spot, str(rng.choice(["8N", "5D", "10A"])), firearms_discharged=True)
        nominal_crimes.append(
            {"nominal_id": str(rng.choice(members[gid])), "crime_ref": ref, "role": "suspect"}
        )
    for _ in range(int(30 * scale * years)):
        ward = str(rng.choice(wards, p=weights))
        spot = point_in(ward)
        if spot["crime_id"] is None or spot["crime_id"] in used:
            continue
        used.add(spot["crime_id"])
        force_crime(spot | {"crime_type": "Drugs"}, "92A", cannabis_production=True)

    # -- intelligence, incidents, partner events -----------------------------------------
    intel: list[dict[str, Any]] = []
    group_ids = [g["group_id"] for g in groups]
    type_of = {g["group_id"]: g["group_type"] for g in groups}
    for i in range(int(1200 * scale * years)):
        in_territory = rng.random() < 0.75
        gid = str(rng.choice(group_ids))
        ward = group_home[gid] if in_territory else str(rng.choice(wards, p=weights))
        spot = point_in(ward)
        gtype = type_of[gid]
        p_topics = {
            "OCG": (0.55, 0.08, 0.1, 0.07, 0.06, 0.06, 0.04, 0.02, 0.02),
            "UCG": (0.35, 0.15, 0.1, 0.05, 0.02, 0.25, 0.04, 0.02, 0.02),
            "PCG": (0.25, 0.05, 0.1, 0.02, 0.01, 0.35, 0.18, 0.02, 0.02),
        }[gtype]
        topics = sorted(set(rng.choice(TOPICS, size=int(rng.integers(1, 3)), p=p_topics)))
        subjects: Any = (
            rng.choice(
                members[gid], size=min(len(members[gid]), int(rng.integers(0, 3))), replace=False
            )
            if in_territory
            else []
        )
        grade = {k: str(rng.choice(v[0], p=v[1])) for k, v in GRADING.items()}
        intel.append(
            {
                "intel_id": f"DEMO-I{i + 1:07d}",
                "reported_date": any_day(),
                "grading_scheme": "3x5x2",
                **grade,
                "topics": ";".join(topics),
                "subjects": ";".join(map(str, subjects)),
                "summary": "DEMO DATA: invented report",
                "latitude": spot["latitude"],
                "longitude": spot["longitude"],
            }
        )
    incidents: list[dict[str, Any]] = []
    incident_types = (
        "drug dealing reported",
        "suspicious activity",
        "disturbance",
        "vulnerable person",
        "firearms discharge reported",
        "anti-social behaviour",
    )
    for i in range(int(1600 * scale * years)):
        spot = point_in(str(rng.choice(wards, p=weights)))
        incidents.append(
            {
                "incident_id": f"DEMO-INC{i + 1:07d}",
                "occurred_date": any_day(),
                "incident_type": str(
                    rng.choice(incident_types, p=(0.3, 0.25, 0.2, 0.12, 0.03, 0.1))
                ),
                "closing_code": str(
                    rng.choice(["attended", "advice given", "no trace", "crime recorded"])
                ),
                "latitude": spot["latitude"],
                "longitude": spot["longitude"],
            }
        )
    partner_events: list[dict[str, Any]] = []
    for kind, partner, n, handling in (
        ("drug_related_death", "coroner", 25, "C"),
        ("crimestoppers_report", "crimestoppers", 80, "P"),
        ("trading_standards_intelligence", "trading_standards", 40, "P"),
    ):
        for _ in range(int(n * scale * years)):
            spot = point_in(str(rng.choice(wards, p=weights)))
            partner_events.append(
                {
                    "event_id": f"DEMO-E{len(partner_events) + 1:06d}",
                    "event_date": any_day(),
                    "partner": partner,
                    "event_type": kind,
                    "handling_code": handling,
                    "description": f"DEMO DATA: {kind.replace('_', ' ')}",
                    "latitude": spot["latitude"],
                    "longitude": spot["longitude"],
                }
            )

    # -- Clear, Hold, Build sites around the three busiest OCG bases ---------------------
    ocg_wards = list(
        dict.fromkeys(group_home[g["group_id"]] for g in groups if g["group_type"] == "OCG")
    )
    ocg_wards.sort(key=lambda w: -soc_points[w].height if w in soc_points else 0)
    sites: list[dict[str, Any]] = []
    phases: list[dict[str, Any]] = []
    disruptions: list[dict[str, Any]] = []
    third = max(1, len(months) // 3)
    for s, ward in enumerate(ocg_wards[:3]):
        frame = soc_points.get(ward, points[ward])
        lon, lat = float(frame["longitude"].median()), float(frame["latitude"].median())  # type: ignore[arg-type]
        radius = 450.0
        circle = shapely.Point(0, 0).buffer(1.0, 32)
        poly = shapely.affinity.affine_transform(
            circle, [radius / (111320 * np.cos(np.radians(lat))), 0, 0, radius / 110540, lon, lat]
        )
        code = f"DEMO-CHB{s + 1}"
        sites.append(
            {
                "type": "Feature",
                "properties": {"code": code, "name": f"DEMO CHB site {s + 1} ({ward})"},
                "geometry": shapely.geometry.mapping(poly),
            }
        )
        start = shift_month(months[0], min(len(months) - 1, third + s))
        clear_end = shift_month(start, max(1, third // 3))
        hold_end = shift_month(clear_end, max(1, third // 2))
        phases += [
            {
                "site_code": code,
                "phase": "Clear",
                "start_date": start,
                "end_date": clear_end - dt.timedelta(days=1),
            },
            {
                "site_code": code,
                "phase": "Hold",
                "start_date": clear_end,
                "end_date": hold_end - dt.timedelta(days=1),
            },
            {"site_code": code, "phase": "Build", "start_date": hold_end, "end_date": None},
        ]
        # disruptions concentrate in the Clear phase; intelligence rises while clearing
        site_groups = [g for g, w in group_home.items() if w == ward]
        for d in range(int(25 * scale)):
            gid = str(rng.choice(site_groups))
            when = start + dt.timedelta(days=int(rng.integers(0, max(28, (hold_end - start).days))))
            disruptions.append(
                {
                    "disruption_id": f"DEMO-D{code[-1]}{d:04d}",
                    "disruption_date": when,
                    "four_p": str(
                        rng.choice(
                            ["Pursue", "Prevent", "Protect", "Prepare"], p=[0.6, 0.2, 0.15, 0.05]
                        )
                    ),
                    "disruption_type": str(
                        rng.choice(
                            [
                                "arrest",
                                "warrant",
                                "drugs seizure",
                                "cash seizure",
                                "safeguarding visit",
                                "community engagement",
                            ]
                        )
                    ),
                    "target_group_id": gid,
                    "target_nominal_id": str(rng.choice(members[gid])),
                    "latitude": lat,
                    "longitude": lon,
                }
            )
        for i in range(int(40 * scale)):
            pt = shapely.Point(lon, lat)
            when = start + dt.timedelta(days=int(rng.integers(0, max(28, (hold_end - start).days))))
            grade = {k: str(rng.choice(v[0], p=v[1])) for k, v in GRADING.items()}
            dx, dy = rng.normal(0, 0.002, 2)
            intel.append(
                {
                    "intel_id": f"DEMO-IC{s + 1}{i:05d}",
                    "reported_date": when,
                    "grading_scheme": "3x5x2",
                    **grade,
                    "topics": "drug_supply",
                    "subjects": str(rng.choice(members[str(rng.choice(site_groups))])),
                    "summary": "DEMO DATA: invented report (CHB site)",
                    "latitude": pt.y + dy * 0.6,
                    "longitude": pt.x + dx,
                }
            )

    # MoPI review dates for intelligence, up to six years after the report (some before
    # the data's end): drawn from their own stream, so every other value stays as it was
    review = np.random.default_rng([seed, 9])
    for row in intel:
        days = int(review.integers(30, 6 * 365))
        row["mopi_review_date"] = row["reported_date"] + dt.timedelta(days=days)

    # Diversion referrals (issue 16): a Prevent disruption of type "diversion referral"
    # names the nominal referred to a diversion scheme, located at their home. Young
    # members of peer and urban crime groups, referred from a third of the way into the
    # period; drawn from their own stream, so every other value stays as it was.
    referrals = np.random.default_rng([seed, 16])
    young = sorted(n["nominal_id"] for n in nominals if n["pcg_member"] or n["ucg_member"])
    home_of = {a["nominal_id"]: a for a in addresses if a["link_type"] == "home"}
    group_of: dict[str, str] = {}
    for member in memberships:
        group_of.setdefault(member["nominal_id"], member["group_id"])
    first_month = len(months) // 3
    picked = referrals.choice(young, size=min(len(young), int(12 * scale)), replace=False)
    for i, nid in enumerate(sorted(str(n) for n in picked)):
        month = months[int(referrals.integers(first_month, max(first_month + 1, len(months) - 1)))]
        disruptions.append(
            {
                "disruption_id": f"DEMO-DR{i + 1:04d}",
                "disruption_date": _day(referrals, month),
                "four_p": "Prevent",
                "disruption_type": REFERRAL_TYPE,
                "target_group_id": group_of.get(nid),
                "target_nominal_id": nid,
                "latitude": home_of[nid]["latitude"],
                "longitude": home_of[nid]["longitude"],
            }
        )

    out_dir.mkdir(parents=True, exist_ok=True)
    tables: dict[str, list[dict[str, Any]]] = {
        "nominals": nominals,
        "groups": groups,
        "memberships": memberships,
        "addresses": addresses,
        "nominal-crimes": nominal_crimes,
        "nominal-links": links,
        "intelligence": intel,
        "incidents": incidents,
        "force-crimes": force_crimes,
        "disruptions": disruptions,
        "partner-events": partner_events,
        "chb-phases": phases,
    }
    files = {}
    for kind, rows in tables.items():
        path = out_dir / f"{kind}.csv"
        pl.DataFrame(rows, infer_schema_length=None).write_csv(path)
        files[kind] = path
    chb = out_dir / "chb_sites.geojson"
    chb.write_text(json.dumps({"type": "FeatureCollection", "features": sites}))
    return Overlay(out_dir, files, chb, {k: len(v) for k, v in tables.items()})


# the disruption type that records a nominal's referral to a diversion scheme (issue 16)
REFERRAL_TYPE = "diversion referral"

"""The harm indices a query may name: the shipped ones and the custom ones registered in the
store (issue 12).

A request never names a file. An administrator registers a custom CSV or YAML index once
(`placeharm harm add FILE --name NAME`): it is validated then, and its weights, the file's
name (not its path) and SHA-256, who added it and when are stored. Queries resolve a name
against the shipped indices and this registry; any other value is one `UnknownIndex` (400)
whose message is the same for every unknown value.

The registry is read from the store once per process and store, and read again when an index
is added or removed through this module, never per request. The dashboard holds the store
file open, so the CLI changes the registry while the dashboard is stopped; the dashboard reads
it when it starts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from placeharm import audit
from placeharm.errors import ConfigError, DataError, NotFound
from placeharm.harm import (
    HarmIndex,
    UnknownIndex,
    canonical_spec,
    check_index_name,
    list_indices,
    load_index,
    parse_index_file,
    read_index_file,
    unknown_index_message,
)
from placeharm.store.base import Store


@dataclass(frozen=True, slots=True)
class RegisteredIndex:
    """A custom index as registered: its weights and where they came from."""

    index: HarmIndex
    description: str | None
    source_file: str  # the file's name when it was added, never its path
    file_sha256: str
    added_by: str
    added_at: dt.datetime


@dataclass(frozen=True, slots=True)
class _Registry:
    entries: dict[str, RegisteredIndex]
    indices: dict[str, HarmIndex]


_registries: weakref.WeakKeyDictionary[Store, _Registry] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _load(store: Store) -> _Registry:
    """Read every registered index and its weights from the store (two small queries)."""
    weights = store.harm_index_weights()
    entries: dict[str, RegisteredIndex] = {}
    for row in store.harm_indices().iter_rows(named=True):
        mine = weights.filter(pl.col("index_name") == row["name"])
        codes = mine.filter(pl.col("weight_kind") == "offence_code")
        types = mine.filter(pl.col("weight_kind") == "crime_type")
        index = HarmIndex(
            name=row["name"],
            title=row["title"],
            edition=row["edition"],
            source=row["source"],
            unit=row["unit"],
            secondary=bool(row["secondary"]),
            type_scope=row["type_scope"],
            code_weights=dict(zip(codes["weight_key"], codes["weight"], strict=True)),
            type_weights=dict(zip(types["weight_key"], types["weight"], strict=True)),
        )
        entries[row["name"]] = RegisteredIndex(
            index=index,
            description=row["description"],
            source_file=row["source_file"],
            file_sha256=row["file_sha256"],
            added_by=row["added_by"],
            added_at=row["added_at"],
        )
    return _Registry(entries, {name: e.index for name, e in entries.items()})


def _registry(store: Store) -> _Registry:
    with _lock:
        cached = _registries.get(store)
    return cached if cached is not None else _reload(store)


def _reload(store: Store) -> _Registry:
    loaded = _load(store)
    with _lock:
        _registries[store] = loaded
    return loaded


def refresh(store: Store) -> dict[str, RegisteredIndex]:
    """Read the registry from the store again (after an add or remove)."""
    return _reload(store).entries


def registered(store: Store) -> dict[str, RegisteredIndex]:
    """The registered indices by name (read once per process and store)."""
    return _registry(store).entries


def indices(store: Store) -> Mapping[str, HarmIndex]:
    """The registered indices as `HarmIndex` by name, for `load_index` and `Filters.parse`."""
    return _registry(store).indices


def resolve(store: Store, spec: str | None, asb_weight: float | None = None) -> HarmIndex:
    """A shipped or registered index by spec; anything else is `UnknownIndex` (a 400), the
    same for every unknown value. Never opens a file."""
    return load_index(spec, asb_weight, indices(store))


def choices(store: Store) -> list[str]:
    """The names a request may give: shipped (without forces) and registered."""
    return [*list_indices()["name"].to_list(), *sorted(indices(store))]


def check_default(store: Store, spec: str) -> str:
    """The `harm_index` setting for the dashboard, canonical; a ConfigError if it names no
    shipped or registered index (a file path is refused: register the file first)."""
    try:
        return canonical_spec(spec, indices(store))
    except UnknownIndex:
        raise ConfigError(
            "the harm_index setting names no shipped or registered harm index (the dashboard "
            "never reads an index file: register one with `placeharm harm add FILE --name "
            "NAME` and set harm_index to NAME). " + unknown_index_message(tuple(indices(store)))
        ) from None


def add(
    store: Store,
    path: Path,
    name: str,
    edition: str | None = None,
    description: str | None = None,
    added_by: str | None = None,
    actor: audit.Actor | None = None,
) -> RegisteredIndex:
    """Validate a custom CSV or YAML index file once and register it under `name`, with its
    audit entry (an alteration by `actor`, default the operating-system user) in the same
    transaction. A bad name or file is a DataError and nothing is stored."""
    actor = actor or audit.Actor.cli()
    name = check_index_name(name)
    if name in registered(store):
        raise DataError(
            f"a harm index called {name!r} is already registered; remove it first with "
            f"`placeharm harm remove {name}`"
        )
    if edition is not None and not edition.strip():
        raise DataError("--edition is empty; give the edition, e.g. 2026-11, or leave it out")
    raw = read_index_file(path)
    index = parse_index_file(path.name, raw, name=name)
    digest = hashlib.sha256(raw).hexdigest()
    if edition:
        index = replace(index, edition=f"{edition.strip()} (file sha256 {digest[:12]})")
    weights = pl.DataFrame(
        [("offence_code", k, w) for k, w in index.code_weights.items()]
        + [("crime_type", k, w) for k, w in index.type_weights.items()],
        schema={"weight_kind": pl.String, "weight_key": pl.String, "weight": pl.Float64},
        orient="row",
    )
    with store.transaction():
        _add(store, name, index, description, path, digest, added_by or actor.username, weights)
        audit.log_for(store).record(
            store,
            actor,
            "alteration",
            "harm_index",
            "placeharm harm add",
            fmt="cli",
            record_ids={"harm_index": [name]},
            query={"file": path.name[:200], "sha256": digest},
        )
    return refresh(store)[name]


def _add(
    store: Store,
    name: str,
    index: HarmIndex,
    description: str | None,
    path: Path,
    digest: str,
    added_by: str,
    weights: pl.DataFrame,
) -> None:
    store.add_harm_index(
        {
            "name": name,
            "title": index.title,
            "edition": index.edition,
            "description": description.strip() if description else None,
            "source": index.source,
            "unit": index.unit,
            "secondary": index.secondary,
            "type_scope": index.type_scope,
            "source_file": path.name,
            "file_sha256": digest,
            "added_by": added_by,
        },
        weights,
    )


def remove(store: Store, name: str, actor: audit.Actor | None = None) -> None:
    """Unregister a custom index (NotFound if it is not registered), with its audit entry
    (an alteration by `actor`, default the operating-system user) in the same transaction."""
    with store.transaction():
        if not store.remove_harm_index(name):
            known = ", ".join(sorted(registered(store))) or "none"
            raise NotFound(f"no registered harm index {name[:60]!r}; registered: {known}")
        audit.log_for(store).record(
            store,
            actor or audit.Actor.cli(),
            "alteration",
            "harm_index",
            "placeharm harm remove",
            fmt="cli",
            record_ids={"harm_index": [name]},
        )
    refresh(store)


def listing(store: Store) -> pl.DataFrame:
    """Every index a query may name: shipped, then registered, with edition and origin."""
    shipped = list_indices().with_columns(
        pl.lit("shipped").alias("kind"),
        pl.lit(None, pl.String).alias("source_file"),
        pl.lit(None, pl.String).alias("file_sha256"),
        pl.lit(None, pl.String).alias("added_by"),
        pl.lit(None, pl.Datetime("us")).alias("added_at"),
    )
    rows = [
        {
            "name": name,
            "title": e.index.title,
            "secondary": e.index.secondary,
            "offence_codes": len(e.index.code_weights),
            "force_variants": 0,
            "edition": e.index.edition,
            "kind": "registered",
            "source_file": e.source_file,
            "file_sha256": e.file_sha256,
            "added_by": e.added_by,
            "added_at": e.added_at,
        }
        for name, e in sorted(registered(store).items())
    ]
    columns = [
        "name",
        "kind",
        "title",
        "edition",
        "secondary",
        "offence_codes",
        "force_variants",
        "source_file",
        "file_sha256",
        "added_by",
        "added_at",
    ]
    frame = shipped.select(columns)
    if rows:
        frame = pl.concat([frame, pl.DataFrame(rows, schema=frame.schema).select(columns)])
    return frame

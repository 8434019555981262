"""PostgreSQL schema migrations: the same logical schema as `migrations.py`, version for
version, written in PostgreSQL's types.

Each DuckDB migration is translated (`pg_statement`): its statements name the same tables and
columns, so one schema is maintained, not two. What PostgreSQL needs besides is added to the
version it belongs to (`_EXTRA`): the `rowid` column DuckDB has built in, indexes DuckDB does
without (its zone maps), and the shared generation counter several app processes read.
Never edit a released migration; add a new one to `migrations.py` (and here only what
PostgreSQL needs besides).
"""

from __future__ import annotations

import re

from placeharm.store.migrations import LATEST_VERSION, MIGRATIONS

# Tables whose rows the store addresses by DuckDB's built-in `rowid`: PostgreSQL has no stable
# row identifier (a ctid moves on update), so these get a `rowid` identity column.
ROWID_TABLES = (
    "crimes",
    "crime_history",
    "outcomes",
    "outcome_history",
    "stop_searches",
    "soc_nominals",
    "soc_groups",
    "soc_memberships",
    "soc_addresses",
    "soc_nominal_crimes",
    "soc_nominal_links",
    "soc_intelligence",
    "soc_incidents",
    "soc_force_crimes",
    "soc_disruptions",
    "soc_partner_events",
    "soc_chb_phases",
)

# DuckDB types and their PostgreSQL equivalents. UBIGINT (the 64-bit join hashes) has none:
# PostgreSQL stores the same 64 bits as a signed BIGINT and the store reinterprets them at its
# edge (`store.postgres`), so hashes compare and join exactly as in DuckDB.
_TYPES = (
    (re.compile(r"\bUBIGINT\b"), "BIGINT"),
    (re.compile(r"\bDOUBLE\b(?!\s+PRECISION)"), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
)
_CREATE = re.compile(r"^\s*CREATE TABLE (\w+) \(", re.IGNORECASE)

# What PostgreSQL needs besides the translated statements, by the version it belongs to.
_EXTRA: dict[int, list[str]] = {
    1: [
        # several processes share one store: each committed write of page data adds one
        # (`PostgresStore.generation`), in the writing transaction
        "CREATE TABLE store_generation (id INTEGER PRIMARY KEY, generation BIGINT NOT NULL)",
        "INSERT INTO store_generation VALUES (1, 0)",
        "CREATE INDEX crimes_hash_idx ON crimes (crime_hash)",
        "CREATE INDEX crimes_month_idx ON crimes (month)",
        "CREATE INDEX crimes_crime_id_idx ON crimes (crime_id)",
        "CREATE INDEX outcomes_hash_idx ON outcomes (crime_hash)",
        "CREATE INDEX crime_history_hash_idx ON crime_history (crime_hash)",
        "CREATE INDEX stop_searches_hash_idx ON stop_searches (search_hash)",
        "CREATE INDEX quarantine_import_idx ON quarantine (import_id)",
    ],
    5: ["CREATE INDEX audit_log_hash_idx ON audit_log (entry_hash)"],
    10: ["CREATE INDEX outcome_history_hash_idx ON outcome_history (crime_hash)"],
    11: ["CREATE INDEX crime_cells_idx ON crime_cells (set_name, month)"],
    # the records page's crimes by month, one month's rows in rowid order
    # (`PostgresStore._page_of_counts`): without it a page read and sorted every row of its
    # window (issue 17: 7.3 s for a 12-month window at 10M records)
    15: ["CREATE INDEX crimes_month_rowid_idx ON crimes (month, rowid)"],
}

# Text in byte order, as DuckDB compares it (issue 17): every text column of the store's
# own schema (arrays of text too) not yet COLLATE "C" is made so, one ALTER TABLE per table
# (its indexes on those columns are rebuilt; the rows are not rewritten). Without it, ORDER
# BY, min/max and comparisons over text follow the database's collation, which a force's DBA
# may have made a locale's (en_GB.UTF-8, ICU en-GB): 'A_2', 'a-1', 'a1', 'A1', 'b1', 'B2'
# where DuckDB and C order 'A1', 'A_2', 'B2', 'a-1', 'a1', 'b1'. Run by migration 16 and
# again by every later one, so a text column a later migration adds is made "C" with it.
# The schema is found by its name as written (a mixed-case schema, "Northumbria", is not
# folded to lower case) and every table is named with it.
TEXT_IN_BYTE_ORDER = """DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT format('%I.%I', current_schema(), c.relname) AS tab,
               string_agg(format('ALTER COLUMN %I TYPE %s COLLATE "C"', a.attname,
                                 format_type(a.atttypid, a.atttypmod)), ', '
                          ORDER BY a.attnum) AS changes
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        WHERE c.relnamespace = (SELECT n.oid FROM pg_namespace n
                                WHERE n.nspname = current_schema())
          AND c.relkind IN ('r', 'p')
          AND a.attnum > 0 AND NOT a.attisdropped
          AND a.attcollation <> 0
          AND a.attcollation <> 'pg_catalog."C"'::regcollation
        GROUP BY c.relname
        ORDER BY c.relname
    LOOP
        EXECUTE format('ALTER TABLE %s %s', t.tab, t.changes);
    END LOOP;
END
$$"""
_BYTE_ORDER_FROM = 16


def pg_statement(statement: str) -> str:
    """One DuckDB migration statement in PostgreSQL's types (and a `rowid` column for the
    tables in ROWID_TABLES)."""
    out = statement
    for pattern, replacement in _TYPES:
        out = pattern.sub(replacement, out)
    match = _CREATE.match(out)
    if match and match.group(1) in ROWID_TABLES:
        out = (
            out[: match.end()]
            + "\n    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,"
            + out[match.end() :]
        )
    return out


PG_MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        version,
        name,
        [pg_statement(s) for s in statements]
        + _EXTRA.get(version, [])
        + ([TEXT_IN_BYTE_ORDER] if version >= _BYTE_ORDER_FROM else []),
    )
    for version, name, statements in MIGRATIONS
]

__all__ = ["LATEST_VERSION", "PG_MIGRATIONS", "ROWID_TABLES", "TEXT_IN_BYTE_ORDER", "pg_statement"]

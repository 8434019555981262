"""Schema migrations: applied in order on open, so an old store file opens and upgrades.

Each entry is (version, name, statements). Never edit a released migration; add a new one.
"""

from __future__ import annotations

# Provenance of a stored record: the import (whose row in `imports` names the file) and line.
_RECORD = """
    import_id BIGINT,
    source_line BIGINT
"""
_CRIME_CONTENT = """
    crime_hash UBIGINT NOT NULL,
    crime_id VARCHAR,
    record_key VARCHAR,
    source_kind VARCHAR NOT NULL,
    month DATE NOT NULL,
    reported_by VARCHAR,
    falls_within VARCHAR,
    longitude DOUBLE,
    latitude DOUBLE,
    location VARCHAR,
    lsoa_code_file VARCHAR,
    lsoa_name_file VARCHAR,
    crime_type VARCHAR NOT NULL,
    last_outcome_category VARCHAR,
    context VARCHAR,
    api_id BIGINT
"""

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "imports, quarantine, crimes, outcomes, stop and search, areas, coverage",
        [
            "CREATE SEQUENCE import_id_seq START 1",
            """CREATE TABLE imports (
                import_id BIGINT PRIMARY KEY,
                source_kind VARCHAR NOT NULL,
                source_file VARCHAR NOT NULL,
                file_sha256 VARCHAR,
                started_at TIMESTAMP NOT NULL,
                finished_at TIMESTAMP,
                status VARCHAR NOT NULL,
                rows_read BIGINT NOT NULL DEFAULT 0,
                inserted BIGINT NOT NULL DEFAULT 0,
                updated BIGINT NOT NULL DEFAULT 0,
                unchanged BIGINT NOT NULL DEFAULT 0,
                quarantined BIGINT NOT NULL DEFAULT 0,
                no_location BIGINT NOT NULL DEFAULT 0,
                outside_areas BIGINT NOT NULL DEFAULT 0,
                message VARCHAR
            )""",
            """CREATE TABLE quarantine (
                import_id BIGINT NOT NULL,
                source_file VARCHAR NOT NULL,
                line BIGINT NOT NULL,
                raw_text VARCHAR,
                reason VARCHAR NOT NULL
            )""",
            f"""CREATE TABLE crimes ({_CRIME_CONTENT},
                latest_outcome VARCHAR,
                latest_outcome_month DATE,
                located BOOLEAN NOT NULL,
                in_area BOOLEAN,
                lsoa_reconciled BOOLEAN NOT NULL DEFAULT FALSE,
                {_RECORD}
            )""",
            f"""CREATE TABLE crime_history ({_CRIME_CONTENT},
                {_RECORD},
                source_file VARCHAR,
                replaced_at TIMESTAMP NOT NULL,
                replaced_by_import BIGINT NOT NULL
            )""",
            f"""CREATE TABLE outcomes (
                crime_id VARCHAR NOT NULL,
                crime_hash UBIGINT NOT NULL,
                outcome_ordinal INTEGER NOT NULL,
                month DATE NOT NULL,
                reported_by VARCHAR,
                falls_within VARCHAR,
                longitude DOUBLE,
                latitude DOUBLE,
                location VARCHAR,
                lsoa_code_file VARCHAR,
                lsoa_name_file VARCHAR,
                outcome_type VARCHAR NOT NULL,
                {_RECORD}
            )""",
            f"""CREATE TABLE stop_searches (
                search_key VARCHAR NOT NULL,
                search_hash UBIGINT NOT NULL,
                search_type VARCHAR NOT NULL,
                searched_at VARCHAR NOT NULL,
                month DATE NOT NULL,
                part_of_operation VARCHAR,
                policing_operation VARCHAR,
                latitude DOUBLE,
                longitude DOUBLE,
                gender VARCHAR,
                age_range VARCHAR,
                self_defined_ethnicity VARCHAR,
                officer_defined_ethnicity VARCHAR,
                legislation VARCHAR,
                object_of_search VARCHAR,
                outcome VARCHAR,
                outcome_linked VARCHAR,
                removal_outer_clothing VARCHAR,
                located BOOLEAN NOT NULL,
                in_area BOOLEAN,
                {_RECORD}
            )""",
            """CREATE TABLE coverage (
                source_kind VARCHAR NOT NULL,
                force VARCHAR NOT NULL,
                month DATE NOT NULL,
                rows BIGINT NOT NULL,
                import_id BIGINT NOT NULL,
                source_file VARCHAR NOT NULL,
                named BOOLEAN NOT NULL,  -- from a file named for this month (police.uk style)
                PRIMARY KEY (source_kind, force, month)
            )""",
            """CREATE TABLE area_sets (
                name VARCHAR PRIMARY KEY,
                source_file VARCHAR NOT NULL,
                code_field VARCHAR NOT NULL,
                name_field VARCHAR NOT NULL,
                source_crs VARCHAR NOT NULL,
                feature_count INTEGER NOT NULL,
                repaired_count INTEGER NOT NULL,
                rejected_count INTEGER NOT NULL,
                imported_at TIMESTAMP NOT NULL,
                assigned BOOLEAN NOT NULL
            )""",
            """CREATE TABLE areas (
                set_name VARCHAR NOT NULL,
                area_code VARCHAR NOT NULL,
                area_name VARCHAR,
                geometry_wkb BLOB NOT NULL,
                PRIMARY KEY (set_name, area_code)
            )""",
            """CREATE TABLE area_lookups (
                from_set VARCHAR NOT NULL,
                from_code VARCHAR NOT NULL,
                to_set VARCHAR NOT NULL,
                to_code VARCHAR NOT NULL,
                to_name VARCHAR,
                source_file VARCHAR NOT NULL,
                PRIMARY KEY (from_set, from_code, to_set)
            )""",
        ],
    ),
    (
        2,
        "offence codes on crimes; area populations",
        [
            # Home Office offence code: set for a force's own records (police.uk has none).
            "ALTER TABLE crimes ADD COLUMN offence_code VARCHAR",
            "ALTER TABLE crime_history ADD COLUMN offence_code VARCHAR",
            """CREATE TABLE area_populations (
                set_name VARCHAR NOT NULL,
                area_code VARCHAR NOT NULL,
                year INTEGER NOT NULL,
                population DOUBLE NOT NULL,
                method VARCHAR NOT NULL,  -- 'file', or how it was derived from another set
                source_file VARCHAR NOT NULL,
                PRIMARY KEY (set_name, area_code, year)
            )""",
        ],
    ),
]

# SOC overlay: a force's own records (docs/reference/soc-schema.md). Every row says whether
# it is synthetic (demo data) and which import and line it came from. Tables with a location
# also get `located`, `in_area` and one `area_<set>` column per area set, like crimes.
_SOC = """
    synthetic BOOLEAN NOT NULL DEFAULT FALSE,
    import_id BIGINT,
    source_line BIGINT
"""
_LOCATED = """
    latitude DOUBLE,
    longitude DOUBLE,
    located BOOLEAN NOT NULL DEFAULT FALSE,
    in_area BOOLEAN
"""
MIGRATIONS.append(
    (
        3,
        "SOC overlay: nominals, groups, links, intelligence, incidents, force crimes, "
        "disruptions, partner events, CHB phases; entity history",
        [
            f"""CREATE TABLE soc_nominals (
                nominal_id VARCHAR PRIMARY KEY,
                surname VARCHAR, forename VARCHAR, date_of_birth DATE, gender VARCHAR,
                ocg_member BOOLEAN NOT NULL, priority_individual BOOLEAN NOT NULL,
                pcg_member BOOLEAN NOT NULL, ucg_member BOOLEAN NOT NULL,
                cce_perpetrator BOOLEAN NOT NULL, cce_victim BOOLEAN NOT NULL,
                cse_perpetrator BOOLEAN NOT NULL, cse_victim BOOLEAN NOT NULL,
                mopi_review_date DATE, {_SOC})""",
            f"""CREATE TABLE soc_groups (
                group_id VARCHAR PRIMARY KEY, name VARCHAR, group_type VARCHAR NOT NULL,
                ocg_band VARCHAR, status VARCHAR, {_SOC})""",
            f"""CREATE TABLE soc_memberships (
                group_id VARCHAR NOT NULL, nominal_id VARCHAR NOT NULL, role VARCHAR,
                start_date DATE, end_date DATE, {_SOC},
                PRIMARY KEY (group_id, nominal_id))""",
            f"""CREATE TABLE soc_addresses (
                nominal_id VARCHAR NOT NULL, address_id VARCHAR NOT NULL,
                link_type VARCHAR NOT NULL, address VARCHAR, from_date DATE, to_date DATE,
                {_LOCATED}, {_SOC},
                PRIMARY KEY (nominal_id, address_id, link_type))""",
            f"""CREATE TABLE soc_nominal_crimes (
                nominal_id VARCHAR NOT NULL, crime_ref VARCHAR NOT NULL, role VARCHAR NOT NULL,
                {_SOC}, PRIMARY KEY (nominal_id, crime_ref, role))""",
            f"""CREATE TABLE soc_nominal_links (
                from_nominal VARCHAR NOT NULL, to_nominal VARCHAR NOT NULL,
                link_type VARCHAR NOT NULL, {_SOC},
                PRIMARY KEY (from_nominal, to_nominal, link_type))""",
            f"""CREATE TABLE soc_intelligence (
                intel_id VARCHAR PRIMARY KEY, reported_date DATE NOT NULL,
                grading_scheme VARCHAR NOT NULL, source_evaluation VARCHAR NOT NULL,
                intelligence_assessment VARCHAR NOT NULL, handling_code VARCHAR NOT NULL,
                topics VARCHAR, subjects VARCHAR, summary VARCHAR, {_LOCATED}, {_SOC})""",
            f"""CREATE TABLE soc_incidents (
                incident_id VARCHAR PRIMARY KEY, occurred_date DATE NOT NULL,
                incident_type VARCHAR NOT NULL, closing_code VARCHAR, {_LOCATED}, {_SOC})""",
            f"""CREATE TABLE soc_force_crimes (
                crime_ref VARCHAR PRIMARY KEY, recorded_date DATE NOT NULL,
                offence_code VARCHAR, crime_type VARCHAR NOT NULL,
                firearms_discharged BOOLEAN NOT NULL, cannabis_production BOOLEAN NOT NULL,
                policeuk_crime_id VARCHAR, {_LOCATED}, {_SOC})""",
            f"""CREATE TABLE soc_disruptions (
                disruption_id VARCHAR PRIMARY KEY, disruption_date DATE NOT NULL,
                four_p VARCHAR NOT NULL, disruption_type VARCHAR, target_group_id VARCHAR,
                target_nominal_id VARCHAR, {_LOCATED}, {_SOC})""",
            f"""CREATE TABLE soc_partner_events (
                event_id VARCHAR PRIMARY KEY, event_date DATE NOT NULL, partner VARCHAR NOT NULL,
                event_type VARCHAR NOT NULL, handling_code VARCHAR, description VARCHAR,
                {_LOCATED}, {_SOC})""",
            f"""CREATE TABLE soc_chb_phases (
                site_code VARCHAR NOT NULL, phase VARCHAR NOT NULL, start_date DATE NOT NULL,
                end_date DATE, {_SOC}, PRIMARY KEY (site_code, phase))""",
            """CREATE TABLE soc_history (
                entity VARCHAR NOT NULL, entity_key VARCHAR NOT NULL, previous JSON NOT NULL,
                source_file VARCHAR, replaced_at TIMESTAMP NOT NULL,
                replaced_by_import BIGINT NOT NULL)""",
        ],
    )
)

MIGRATIONS.append(
    (
        4,
        "local user accounts and sessions for the web app",
        [
            """CREATE TABLE users (
                username VARCHAR PRIMARY KEY,
                display_name VARCHAR NOT NULL,
                role VARCHAR NOT NULL,
                password_hash VARCHAR NOT NULL,  -- argon2id
                disabled BOOLEAN NOT NULL DEFAULT FALSE,
                demo BOOLEAN NOT NULL DEFAULT FALSE,
                created_at TIMESTAMP NOT NULL
            )""",
            """CREATE TABLE sessions (
                token_hash VARCHAR PRIMARY KEY,  -- sha256 of the cookie value, never the value
                username VARCHAR NOT NULL,
                created_at TIMESTAMP NOT NULL,
                expires_at TIMESTAMP NOT NULL
            )""",
        ],
    )
)

MIGRATIONS.append(
    (
        5,
        "the section 62 audit log (hash-chained, append-only), justifications, who imported",
        [
            # Append-only: the store has no method that updates or deletes a row. Each entry's
            # entry_hash is SHA-256 over its canonical content and prev_hash (placeharm.audit),
            # hmac an HMAC-SHA256 of the same when a key is configured.
            """CREATE TABLE audit_log (
                seq BIGINT PRIMARY KEY,
                logged_at TIMESTAMP NOT NULL,  -- UTC
                username VARCHAR NOT NULL,
                role VARCHAR NOT NULL,
                client_address VARCHAR,
                action VARCHAR NOT NULL,  -- collection, consultation, disclosure, ...
                page VARCHAR NOT NULL,  -- what: nominal, ward, records, import, user, ...
                route VARCHAR NOT NULL,  -- the route template or CLI command
                format VARCHAR,  -- html, json, csv, geojson, gpkg, cli
                record_ids VARCHAR NOT NULL,  -- JSON object: identifier kind -> identifiers
                query VARCHAR NOT NULL,  -- JSON object: the request's parameters
                row_count BIGINT,
                marking VARCHAR,
                reason_code VARCHAR,
                reason_text VARCHAR,
                outcome VARCHAR NOT NULL,
                prev_hash VARCHAR NOT NULL,
                entry_hash VARCHAR NOT NULL,
                hmac VARCHAR
            )""",
            """CREATE TABLE audit_justifications (
                token_hash VARCHAR NOT NULL,  -- the session's (sha256 of the cookie value)
                purpose VARCHAR NOT NULL,
                reason_code VARCHAR NOT NULL,
                reason_text VARCHAR NOT NULL,
                stated_at TIMESTAMP NOT NULL,
                PRIMARY KEY (token_hash, purpose)
            )""",
            "ALTER TABLE imports ADD COLUMN imported_by VARCHAR",
        ],
    )
)

MIGRATIONS.append(
    (
        6,
        "registered custom harm indices (issue 12: a request names an index, never a file)",
        [
            """CREATE TABLE harm_indices (
                name VARCHAR PRIMARY KEY,  -- checked against harm.indices.INDEX_NAME_RE
                title VARCHAR NOT NULL,
                edition VARCHAR NOT NULL,  -- includes the file's sha256 prefix
                description VARCHAR,
                source VARCHAR NOT NULL,
                unit VARCHAR NOT NULL,
                secondary BOOLEAN NOT NULL,
                type_scope VARCHAR NOT NULL,
                source_file VARCHAR NOT NULL,  -- the file's name, never its path
                file_sha256 VARCHAR NOT NULL,
                added_by VARCHAR NOT NULL,
                added_at TIMESTAMP NOT NULL
            )""",
            """CREATE TABLE harm_index_weights (
                index_name VARCHAR NOT NULL,
                weight_kind VARCHAR NOT NULL,  -- 'offence_code' or 'crime_type'
                weight_key VARCHAR NOT NULL,
                weight DOUBLE NOT NULL,
                PRIMARY KEY (index_name, weight_kind, weight_key)
            )""",
        ],
    )
)

MIGRATIONS.append(
    (
        7,
        "accounts: disable time, password change time, session last seen (idle timeout)",
        [
            # when the account was disabled (NULL while enabled), when its password last changed
            "ALTER TABLE users ADD COLUMN disabled_at TIMESTAMP",
            "ALTER TABLE users ADD COLUMN password_changed_at TIMESTAMP",
            "UPDATE users SET password_changed_at = created_at",
            "UPDATE users SET disabled_at = created_at WHERE disabled",
            # the last request seen on the session, written at most once a minute
            "ALTER TABLE sessions ADD COLUMN last_seen_at TIMESTAMP",
            "UPDATE sessions SET last_seen_at = created_at",
        ],
    )
)

MIGRATIONS.append(
    (
        8,
        "single sign-on: an account's source (local or OpenID Connect) and its issuer and subject",
        [
            # 'local': a password account; 'oidc': signed in by the identity provider only
            # (its password_hash is a marker no password verifies). SSO accounts are keyed by
            # (external_issuer, external_subject), never by username (docs/security/sso.md).
            # No index: DuckDB refuses ALTER TABLE on a table an index depends on.
            "ALTER TABLE users ADD COLUMN auth_source VARCHAR DEFAULT 'local'",
            "ALTER TABLE users ADD COLUMN external_issuer VARCHAR",
            "ALTER TABLE users ADD COLUMN external_subject VARCHAR",
            "UPDATE users SET auth_source = 'local' WHERE auth_source IS NULL",
        ],
    )
)

MIGRATIONS.append(
    (
        9,
        "MoPI review date on intelligence (nominals have one since migration 3)",
        ["ALTER TABLE soc_intelligence ADD COLUMN IF NOT EXISTS mopi_review_date DATE"],
    )
)

MIGRATIONS.append(
    (
        10,
        "vintages: each import's publication date and how it was known; the vintage of every "
        "stored version; superseded outcomes kept",
        [
            # When the file was published (UTC) and how that was determined: 'stated'
            # (--published), 'gzip-mtime', 'file-mtime', 'archive' or 'latest-month'; `vintage`
            # is the sortable key every stored version carries (docs/ingest.md, Vintages).
            "ALTER TABLE imports ADD COLUMN published_at TIMESTAMP",
            "ALTER TABLE imports ADD COLUMN published_how VARCHAR",
            "ALTER TABLE imports ADD COLUMN vintage VARCHAR",
            # rows of an older download that newer values already held (nothing reverted)
            "ALTER TABLE imports ADD COLUMN stale BIGINT DEFAULT 0",
            "ALTER TABLE imports ADD COLUMN later_sightings BIGINT DEFAULT 0",
            "ALTER TABLE crimes ADD COLUMN vintage VARCHAR",
            "ALTER TABLE crime_history ADD COLUMN vintage VARCHAR",
            "ALTER TABLE outcomes ADD COLUMN vintage VARCHAR",
            f"""CREATE TABLE outcome_history (
                crime_id VARCHAR NOT NULL,
                crime_hash UBIGINT NOT NULL,
                outcome_ordinal INTEGER NOT NULL,
                month DATE NOT NULL,
                reported_by VARCHAR,
                falls_within VARCHAR,
                longitude DOUBLE,
                latitude DOUBLE,
                location VARCHAR,
                lsoa_code_file VARCHAR,
                lsoa_name_file VARCHAR,
                outcome_type VARCHAR NOT NULL,
                {_RECORD},
                vintage VARCHAR,
                source_file VARCHAR,
                replaced_at TIMESTAMP NOT NULL,
                replaced_by_import BIGINT NOT NULL
            )""",
        ],
    )
)

MIGRATIONS.append(
    (
        11,
        "the harm cube: records per area set, area, month, crime type and offence code",
        [
            # One row per cell (docs/performance.md, "The harm cube"): area_code NULL for no
            # location or outside every area of the set, offence_code NULL for police.uk.
            # Filled in code in the same transaction as this migration (the area columns are
            # dynamic) and kept in each import's transaction; `placeharm check` recounts it.
            """CREATE TABLE crime_cells (
                set_name VARCHAR NOT NULL,
                area_code VARCHAR,
                month DATE NOT NULL,
                crime_type VARCHAR NOT NULL,
                offence_code VARCHAR,
                records BIGINT NOT NULL
            )""",
        ],
    )
)

MIGRATIONS.append(
    (
        12,
        "point-in-polygon grids kept per area set",
        [
            # One row per area set: its PolygonGrid's cells (geo.assign.grid_to_bytes), built
            # by the first ingest large enough to need it and used by later ones only while
            # `digest` (geo.assign.grid_digest: the grid format, the set's codes and polygons)
            # matches the set held, so a replaced set never uses another set's grid.
            """CREATE TABLE area_grids (
                set_name VARCHAR PRIMARY KEY,
                digest VARCHAR NOT NULL,
                grid BLOB NOT NULL
            )""",
        ],
    )
)

MIGRATIONS.append(
    (
        13,
        "sign-in failures counted in the store, so several app processes count together",
        [
            # One row per throttled key (services/auth.StoreLoginThrottle; issue 17): the
            # failure times still in the window, the lock-outs so far, the end of the current
            # one and the last failure, in seconds since the epoch. Used by PostgreSQL stores,
            # which several app processes share; a DuckDB store has one process, which counts
            # in memory. Not page data: a write here changes no generation.
            """CREATE TABLE sign_in_tallies (
                key VARCHAR PRIMARY KEY,
                failures DOUBLE[] NOT NULL,
                strikes INTEGER NOT NULL,
                locked_until DOUBLE NOT NULL,
                last_failed DOUBLE NOT NULL
            )""",
        ],
    )
)

MIGRATIONS.append(
    (
        14,
        "sign-in attempts still being checked counted with the failures",
        [
            # The start times of the sign-in attempts begun and not yet decided, per key
            # (services/auth.StoreLoginThrottle.begin): guesses sent at once to several app
            # processes count before any of them fails. NULL (rows kept from version 13) is
            # none in flight.
            "ALTER TABLE sign_in_tallies ADD COLUMN pending DOUBLE[]",
        ],
    )
)

MIGRATIONS.append(
    (
        15,
        "records by month served by an index on PostgreSQL",
        # Nothing on DuckDB: its zone maps serve a month's rows. PostgreSQL adds an index on
        # crimes (month, rowid) at this version (store/pg_migrations.py, issue 17).
        [],
    )
)

MIGRATIONS.append(
    (
        16,
        "text compared in byte order on PostgreSQL, whatever the database's collation",
        # Nothing on DuckDB: it compares text by bytes. PostgreSQL makes every text column
        # COLLATE "C" at this version (store/pg_migrations.py, issue 17): on a database made
        # with a locale collation (en_GB.UTF-8, ICU en-GB) codes mixing case or punctuation
        # sorted in another order than on DuckDB.
        [],
    )
)

LATEST_VERSION = MIGRATIONS[-1][0]

"""The store protocol's users, sessions, audit log and generation on both engines (issue 17):
the same calls, the same answers. Two store objects on one PostgreSQL database stand for two
app processes (DuckDB lets one process write a file, so that case is PostgreSQL's alone)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest

from placeharm import audit
from placeharm.audit import Actor, AuditLog, Justification
from placeharm.errors import StoreError
from placeharm.services.ingest import ingest
from placeharm.soc.importer import import_entity

pytestmark = pytest.mark.both_engines

KEY = b"k" * 40
ANALYST = Actor("analyst1", "analyst", "10.0.0.5", None, Justification("investigation", "op X"))
T0 = dt.datetime(2026, 3, 1, 9, 0, 0)


def test_accounts_and_sessions(store):
    store.upsert_user("ann", "Ann", "analyst", "hash-1", demo=False)
    store.upsert_user("demo", "Demo", "viewer", "hash-2", demo=True)
    assert store.user("ann")["role"] == "analyst" and store.user("nobody") is None
    store.add_session("t1", "ann", T0 + dt.timedelta(hours=8), created_at=T0)
    store.add_session("t2", "demo", T0 + dt.timedelta(hours=1), created_at=T0)
    assert store.session_user("t1", T0 + dt.timedelta(hours=2)) == "ann"
    assert store.session_user("t2", T0 + dt.timedelta(hours=2)) is None  # expired
    store.touch_session("t1", T0 + dt.timedelta(minutes=30))
    store.touch_session("t1", T0 + dt.timedelta(minutes=10))  # never moves back
    assert store.session("t1")["last_seen_at"] == T0 + dt.timedelta(minutes=30)
    store.set_justification("t1", "nominal", "investigation", "op X", T0)
    assert store.justification("t1", "nominal") == ("investigation", "op X")
    assert store.set_user_disabled("ann", True, T0) and store.user("ann")["disabled"]
    assert not store.set_user_role("nobody", "admin")
    assert store.users()["sessions"].to_list() == [1, 1]
    assert store.purge_sessions(T0 + dt.timedelta(hours=2)) == 1
    assert store.end_demo_sessions() == 0
    assert store.end_user_sessions("ann") == 1
    assert store.justification("t1", "nominal") is None  # the session is gone
    assert store.has_real_soc_records() is False


def test_an_audit_entry_commits_or_rolls_back_with_the_write(store):
    log = AuditLog()
    log.record(store, ANALYST, "consultation", "ward", "/ward/{code}")
    with pytest.raises(RuntimeError), store.transaction():
        store.upsert_user("u1", "U", "analyst", "x", demo=False)
        log.record(store, ANALYST, "alteration", "user", "users add")
        raise RuntimeError("the write fails")
    assert store.user("u1") is None and len(store.audit_entries()) == 1
    with store.transaction():
        store.upsert_user("u2", "U", "analyst", "x", demo=False)
        log.record(store, ANALYST, "alteration", "user", "users add")
    log.record(store, ANALYST, "consultation", "ward", "/ward/{code}", record_ids={"ward": ["E1"]})
    assert [e["seq"] for e in store.audit_entries()] == [1, 2, 3]
    assert audit.verify(store).ok
    found, total = store.audit_search("analyst1", "E1", None, None, None, 10)
    assert total == 1 and found["seq"].to_list() == [3]


def test_concurrent_appends_keep_one_chain(store):
    log = AuditLog(KEY)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                if i % 5 == 0:
                    with store.transaction():
                        log.record(store, ANALYST, "alteration", "user", f"t{n}")
                else:
                    log.record(store, ANALYST, "consultation", "ward", f"t{n}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    report = audit.verify(store, KEY)
    assert report.ok and report.checked == 40 and report.head_seq == 40


def test_soc_records_import_update_and_keep_history(store, tmp_path: Path):
    first = tmp_path / "groups.csv"
    first.write_text("group_id,group_type,name\nG-A,OCG,Alpha\nG-B,OCG,Beta\n")
    assert import_entity(store, "groups", first).inserted == 2
    second = tmp_path / "groups-2.csv"
    second.write_text("group_id,group_type,name\nG-A,OCG,Alpha Two\nG-B,OCG,Beta\n")
    result = import_entity(store, "groups", second)
    assert (result.inserted, result.updated, result.unchanged) == (0, 1, 1)
    groups = store.soc_frame("soc_groups", columns=["group_id", "name"]).sort("group_id")
    assert groups.rows() == [("G-A", "Alpha Two"), ("G-B", "Beta")]
    history = store.soc_history("groups")
    assert history["entity_key"].to_list() == ["G-A"] and "Alpha" in history["previous"][0]
    assert store.restricted_only_nominals() == []


def test_generation_moves_with_page_data_only(store, northumbria: Path):
    before = store.generation
    store.upsert_user("ann", "Ann", "analyst", "hash-1", demo=False)
    store.add_session("t1", "ann", T0 + dt.timedelta(hours=8), created_at=T0)
    AuditLog().record(store, ANALYST, "consultation", "ward", "/ward/{code}")
    assert store.generation == before  # sign-ins and the audit log are not page data
    assert ingest(store, [northumbria / "2021-05-northumbria-street.csv.gz"])[0].ok
    assert store.generation != before


def test_two_processes_share_one_postgresql_store(engine, store_at, northumbria: Path):
    """Two store objects on one database (as two app workers): each sees the other's
    imports through `generation`, and their audit entries make one chain."""
    if engine != "postgresql":
        pytest.skip("one DuckDB file has one writing process (its lock)")
    first, second = store_at("shared"), store_at("shared")
    try:
        seen = second.generation
        heard = threading.Event()
        stop = second.listen(heard.set)  # as the other app process's live updates do
        try:
            second.upsert_user("ann", "Ann", "analyst", "x", demo=False)
            assert not heard.wait(1.5)  # accounts are not page data: no notification
            assert ingest(first, [northumbria / "2021-05-northumbria-street.csv.gz"])[0].ok
            assert heard.wait(10)
        finally:
            stop()
        assert second.generation != seen
        assert second.crime_cells("lsoa").is_empty()  # no area sets: no cells per set
        assert second.table_counts()["crimes"] == first.table_counts()["crimes"] > 0
        held = len(first.audit_entries())
        # two app processes appending at once, each with its own chain lock and connection
        script = (
            "import sys, time\n"
            "from placeharm.audit import Actor, AuditLog\n"
            "from placeharm.store.postgres import PostgresStore\n"
            "store, log = PostgresStore(sys.argv[1]), AuditLog()\n"
            "actor = Actor('admin1', 'admin', '10.0.0.9')\n"
            "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # start together\n"
            "for _ in range(100):\n"
            "    with store.transaction():\n"
            "        log.record(store, actor, 'alteration', 'user', 'users add')\n"
        )
        start = str(time.time() + 6)
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", script, first._url, start], stderr=subprocess.PIPE
            )
            for _ in range(2)
        ]
        for worker in workers:
            _, err = worker.communicate(timeout=120)
            assert worker.returncode == 0, err.decode()[-800:]
        report = audit.verify(first)
        assert report.ok and report.head_seq == held + 200
    finally:
        first.close()
        second.close()


def test_a_postgresql_store_is_backed_up_by_postgresql_tools(engine, store, tmp_path: Path):
    if engine != "postgresql":
        pytest.skip("DuckDB's backup is tested in test_store_lifecycle")
    with pytest.raises(StoreError, match="pg_dump"):
        store.backup(tmp_path / "copy.duckdb")


def _rows(frame: pl.DataFrame) -> list[tuple]:
    """A frame's rows in one order, nested lists as tuples (comparable and sortable)."""

    def plain(value: object) -> object:
        return tuple(plain(v) for v in value) if isinstance(value, list) else value

    return sorted((tuple(plain(v) for v in row) for row in frame.rows()), key=repr)


def test_the_demo_and_its_soc_overlay_give_the_same_cells_on_both_engines(
    engine, store_at, tmp_path: Path
):
    """The demo's police.uk months and its synthetic SOC overlay, built on each engine:
    the harm cube and the SOC cells equal DuckDB's."""
    if engine != "postgresql":
        pytest.skip("compares PostgreSQL with DuckDB")
    from placeharm.services import demo, soc
    from placeharm.store.duckdb import DuckDBStore

    stores = [DuckDBStore(tmp_path / "demo.duckdb"), store_at("demo")]
    try:
        for s in stores:
            demo.build_demo(s)
            assert all(r.ok for r in soc.build_overlay(s, seed=3, out_dir=tmp_path / "csv").results)
        duck, pg = stores
        for name in ("ward", "chb"):
            assert pg.crime_cells(name).equals(duck.crime_cells(name)), name
            duck_cells, pg_cells = duck.soc_cells(name), pg.soc_cells(name)
            assert duck_cells.keys() == pg_cells.keys()
            for key, frame in duck_cells.items():
                assert pg_cells[key].schema == frame.schema, (name, key)
                assert _rows(pg_cells[key]) == _rows(frame), (name, key)
        assert pg.invariant_failures() == duck.invariant_failures()
        # record reads: radius search's first cut, addresses, pages, exports, MoPI reviews
        box = (-1.7, 54.95, -1.55, 55.0)
        cols = ["intel_id", "reported_date", "latitude", "longitude"]
        during = ("reported_date", "reported_date", None, dt.date(2022, 3, 31))
        assert _rows(pg.located_within("soc_intelligence", cols, box, during)) == _rows(
            duck.located_within("soc_intelligence", cols, box, during)
        )
        some = duck.soc_frame("soc_addresses", columns=["address"])["address"][0]
        for args in ((None, some.split()[-1], 5), (None, some, 50)):
            (pg_found, pg_n), (duck_found, duck_n) = (
                pg.addresses_matching(*args),
                duck.addresses_matching(*args),
            )
            assert pg_n == duck_n > 0 and _rows(pg_found) == _rows(duck_found)
        page = ("crimes", ["crime_id", "month", "crime_type"], None, None, "month")
        pg_page, pg_total = pg.records_page(
            *page, ("ward", "E05001111"), None, "month", True, 25, 50
        )
        duck_page, duck_total = duck.records_page(
            *page, ("ward", "E05001111"), None, "month", True, 25, 50
        )
        assert pg_total == duck_total > 75 and pg_page.height == 25
        assert pg_page["month"].to_list() == duck_page["month"].to_list()
        pg_n, pg_batches = pg.records_stream(*page, None, None, "month", False, batch_rows=7000)
        duck_n, duck_batches = duck.records_stream(*page, None, None, "month", False)
        pg_all, duck_all = pl.concat(list(pg_batches)), pl.concat(list(duck_batches))
        assert pg_n == duck_n == pg_all.height == pg.table_counts()["crimes"]
        assert _rows(pg_all) == _rows(duck_all)
        # a map point's details and outcome rates (issue 15)
        ward = ("ward", "E05001111")
        assert _rows(pg.crime_point_details(ward)) == _rows(duck.crime_point_details(ward))
        assert _rows(pg.crime_locations(ward, dt.date(2021, 11, 1), dt.date(2022, 3, 31))) == _rows(
            duck.crime_locations(ward, dt.date(2021, 11, 1), dt.date(2022, 3, 31))
        )
        spring = (dt.date(2021, 11, 1), dt.date(2022, 3, 31))
        assert _rows(pg.outcome_counts("ward", *spring)) == _rows(
            duck.outcome_counts("ward", *spring)
        )
        ids = duck.crime_frame(["crime_id"])["crime_id"].drop_nulls().unique().head(50).to_list()
        assert len(ids) == 50
        assert _rows(pg.outcomes_of_crime_ids(ids)) == _rows(duck.outcomes_of_crime_ids(ids))
        # SOC measures in one statement, for every role's scope
        from placeharm.harm import load_index
        from placeharm.services import policy
        from placeharm.soc.measures import load_measures, score_in_store

        index, measures = load_index("css"), load_measures().measures
        periods = {
            "now": (dt.date(2022, 1, 1), dt.date(2022, 3, 31)),
            "previous": (dt.date(2021, 10, 1), dt.date(2021, 12, 31)),
        }
        for role in policy.Role:
            if role is policy.Role.auditor:
                continue
            scope = policy.scope(duck, policy.User("u", "U", role))
            keys = ["area_code", "period"]
            want = score_in_store(duck, "ward", measures, index, periods, scope).sort(keys)
            got = score_in_store(pg, "ward", measures, index, periods, scope).sort(keys)
            assert got.columns == want.columns and got.height == want.height > 0, role
            for col in got.columns:
                assert got[col].to_list() == pytest.approx(want[col].to_list()), (role, col)
        kinds = ("nominals", "intelligence")
        assert _rows(pg.mopi_overdue(dt.date(2026, 1, 1), kinds)) == _rows(
            duck.mopi_overdue(dt.date(2026, 1, 1), kinds)
        )
    finally:
        for s in stores:
            s.close()

"""Daily aggregates under concurrent writers: readings committed late, and marks committed while a refresh runs.

PostgreSQL hands out reading ids at insert, not at commit, and runs each statement of a READ COMMITTED refresh
on its own snapshot; these tests commit other transactions at exactly those moments, on real connections.
SQLite serialises writers, which the last test checks.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest
import sqlalchemy
from sqlalchemy import Connection, event, insert, select

from core.daily_aggregates import daily_training_features, refresh_daily_aggregates
from core.db import Database, HealthMetric, device_day_metrics
from core.simulator import delete_simulated, simulate_fleet
from tests.conftest import fresh_postgres
from tests.core.conftest import FIXED_END, SMALL_FLEET
from tests.core.test_daily_aggregates import add_readings, assert_same, full_reading, raw_features

DAY = dt.timedelta(days=1)
NEW_DAY = FIXED_END.replace(hour=0) + 2 * DAY  # after the fleet's last reading
END = NEW_DAY + 3 * DAY  # puts NEW_DAY among the inner days, which training reads from the table


@pytest.fixture
def pg_fleet(postgres_url: str) -> Iterator[Database]:
    """The small fleet seeded into the real PostgreSQL server, aggregates built."""
    database = fresh_postgres(postgres_url)
    simulate_fleet(database, **SMALL_FLEET)
    yield database
    database.dispose()


def reading_rows(device_id: str, at: dt.datetime, scale: float) -> list[dict]:
    """One reading of all 11 metrics, as insert(HealthMetric) takes them."""
    return [
        {"device_id": device_id, "metric_name": k, "metric_value": v, "metric_unit": "", "timestamp": at}
        for k, v in full_reading(scale).items()
    ]


def stored_aggregates(db: Database) -> list[tuple]:
    """Every device_day_metrics row, in key order."""
    with db.engine.connect() as conn:
        stmt = select(device_day_metrics).order_by(device_day_metrics.c.device_id, device_day_metrics.c.day)
        return [tuple(row) for row in conn.execute(stmt)]


def statistics(rows: list[tuple]) -> np.ndarray:
    """The statistic columns of device_day_metrics rows as floats (NaN for a metric without readings)."""
    return np.array([row[2:] for row in rows], dtype=float)


def assert_equal_to_a_full_rebuild(db: Database) -> None:
    """The incrementally kept table holds what a rebuild from every reading holds; training reads the same."""
    kept = stored_aggregates(db)
    refresh_daily_aggregates(db, full=True)
    rebuilt = stored_aggregates(db)
    assert [r[:2] for r in kept] == [r[:2] for r in rebuilt]
    # Sums in another order differ in the last bits; a missed or stale reading moves them by far more.
    np.testing.assert_allclose(statistics(kept), statistics(rebuilt), rtol=1e-12, equal_nan=True)
    assert_same(raw_features(db, days_back=70, end=END), daily_training_features(db, days_back=70, end=END))


def ids_of(conn: Connection, device_id: str) -> list[int]:
    """The reading ids of a device on NEW_DAY, as this connection sees them."""
    m = HealthMetric.__table__.c
    stmt = select(m.id).where(m.device_id == device_id, m.timestamp >= NEW_DAY, m.timestamp < NEW_DAY + DAY)
    return list(conn.execute(stmt).scalars())


def test_readings_committed_after_later_ones_and_a_refresh_are_folded_in(pg_fleet):
    with pg_fleet.engine.connect() as a:
        # A takes its ids first and stays open; B takes later ids and commits; a refresh runs in between.
        a.execute(insert(HealthMetric), reading_rows("sim-0001", NEW_DAY + dt.timedelta(hours=3), 2.0))
        add_readings(pg_fleet, "sim-0002", NEW_DAY + dt.timedelta(hours=4), full_reading(3.0))
        refresh_daily_aggregates(pg_fleet)
        a.commit()
        assert max(ids_of(a, "sim-0001")) < min(ids_of(a, "sim-0002"))
    refresh_daily_aggregates(pg_fleet)
    day_rows = [r for r in stored_aggregates(pg_fleet) if str(r[0]) == NEW_DAY.date().isoformat()]
    assert {r[1] for r in day_rows} == {"sim-0001", "sim-0002"}
    assert_equal_to_a_full_rebuild(pg_fleet)


def test_a_late_commit_to_an_already_marked_day_is_folded_in(pg_fleet):
    # sim-0003's day is marked by a committed reading; A adds to that same day and stays open while a later
    # transaction commits and a refresh processes the mark: A's readings must still count once A commits.
    add_readings(pg_fleet, "sim-0003", NEW_DAY + dt.timedelta(hours=1), full_reading(1.0))
    with pg_fleet.engine.connect() as a:
        a.execute(insert(HealthMetric), reading_rows("sim-0003", NEW_DAY + dt.timedelta(hours=7), 5.0))
        add_readings(pg_fleet, "sim-0004", NEW_DAY + dt.timedelta(hours=8), full_reading(4.0))
        refresh_daily_aggregates(pg_fleet)
        a.commit()
    refresh_daily_aggregates(pg_fleet)
    with pg_fleet.engine.connect() as conn:
        n = conn.execute(
            select(device_day_metrics.c.temperature__n).where(
                device_day_metrics.c.device_id == "sim-0003", device_day_metrics.c.day == NEW_DAY.date()
            )
        ).scalar_one()
    assert n == 2
    assert_equal_to_a_full_rebuild(pg_fleet)


@contextmanager
def commit_elsewhere_before(db: Database, prefix: str, write: Callable[[Connection], None]) -> Iterator[list[str]]:
    """While refreshes run inside the block: just before the first statement starting with `prefix`, another
    connection runs `write` and commits. Yields the list the statement is appended to once `write` has run."""
    fired: list[str] = []

    def hook(conn, cursor, statement, parameters, context, executemany) -> None:
        if not fired and statement.lstrip().upper().startswith(prefix):
            fired.append(statement)
            other = sqlalchemy.create_engine(db.engine.url)
            try:
                with other.begin() as elsewhere:
                    write(elsewhere)
            finally:
                other.dispose()

    event.listen(db.engine, "before_cursor_execute", hook)
    try:
        yield fired
    finally:
        event.remove(db.engine, "before_cursor_execute", hook)


def change_a_past_day(conn: Connection) -> None:
    """An operator's plain-SQL fix of sim-0005's readings on a day no refresh is working on."""
    m = HealthMetric.__table__.c
    day = FIXED_END.replace(hour=0) - 20 * DAY
    conn.execute(
        HealthMetric.__table__.update()
        .where(m.device_id == "sim-0005", m.timestamp >= day, m.timestamp < day + DAY)
        .values(metric_value=m.metric_value + 7.0)
    )


@pytest.mark.parametrize(
    "moment, full",
    [
        ("INSERT INTO DEVICE_DAY_METRICS", False),  # between removing the dirty days' rows and writing them again
        ("DELETE FROM DEVICE_DAY_DIRTY", False),  # just before the work set is cleared
        ("DELETE FROM DEVICE_DAY_PENDING", True),  # a rebuild clearing the marks it makes redundant
        ("INSERT INTO DEVICE_DAY_METRICS", True),  # ... and after it cleared them
    ],
)
def test_a_mark_committed_while_a_refresh_runs_waits_for_the_next_refresh(pg_fleet, moment, full):
    add_readings(pg_fleet, "sim-0006", NEW_DAY + dt.timedelta(hours=2), full_reading(6.0))  # work for the refresh
    with commit_elsewhere_before(pg_fleet, moment, change_a_past_day) as fired:
        refresh_daily_aggregates(pg_fleet, full=full)
    assert fired, f"the refresh ran no statement starting with {moment}"
    refresh_daily_aggregates(pg_fleet)
    assert_equal_to_a_full_rebuild(pg_fleet)


# What a database from before the insert trigger runs: marks deleted and changed readings in device_day_dirty.
OLD_FUNCTION = """CREATE OR REPLACE FUNCTION device_day_mark_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO device_day_dirty (device_id, day)
        SELECT DISTINCT device_id, CAST(timestamp AS date) FROM old_rows ON CONFLICT DO NOTHING;
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO device_day_dirty (device_id, day)
            SELECT DISTINCT device_id, CAST(timestamp AS date) FROM new_rows ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$"""


def test_a_database_from_before_the_insert_trigger_gets_it_and_is_rebuilt_once(pg_fleet, caplog):
    with pg_fleet.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER device_day_dirty_on_insert ON device_health_metrics")
        conn.exec_driver_sql("DROP TABLE device_day_pending")
        conn.exec_driver_sql(OLD_FUNCTION)
    # What the gap left behind: readings below the mark that no refresh folded in; and an old-style mark.
    add_readings(pg_fleet, "sim-0001", NEW_DAY + dt.timedelta(hours=3), full_reading(2.0))
    with pg_fleet.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE device_day_state SET last_metric_id = (SELECT max(id) FROM device_health_metrics)")
        change_a_past_day(conn)
    with caplog.at_level("INFO", logger="core.daily_aggregates"):
        summary = refresh_daily_aggregates(pg_fleet)
    assert_equal_to_a_full_rebuild(pg_fleet)
    assert summary.full and "rebuilding once" in caplog.text
    # From now on inserts mark their days, and the late-commit gap is closed.
    add_readings(pg_fleet, "sim-0002", NEW_DAY + dt.timedelta(hours=4), full_reading(3.0))
    with pg_fleet.engine.connect() as conn:
        marked = conn.exec_driver_sql("SELECT device_id, day FROM device_day_pending").all()
        assert [(d, str(day)) for d, day in marked] == [("sim-0002", NEW_DAY.date().isoformat())]
        assert conn.exec_driver_sql("SELECT count(*) FROM device_day_dirty").scalar_one() == 0
    assert not refresh_daily_aggregates(pg_fleet).full
    assert_equal_to_a_full_rebuild(pg_fleet)


def test_sqlite_writers_cannot_commit_while_a_refresh_runs(sim_db):
    """The premise of SQLite's id path: a refresh holds the write lock from its first statement to its commit, so
    no reading commits in between, and ids commit in order (one writer at a time)."""
    add_readings(sim_db, "sim-0006", NEW_DAY + dt.timedelta(hours=2), full_reading(6.0))
    errors: list[str] = []

    def write(conn: Connection) -> None:
        conn.exec_driver_sql("PRAGMA busy_timeout = 200")
        try:
            conn.execute(insert(HealthMetric), reading_rows("sim-0007", NEW_DAY + dt.timedelta(hours=5), 1.0))
        except sqlalchemy.exc.OperationalError as exc:
            errors.append(str(exc.orig))

    with commit_elsewhere_before(sim_db, "INSERT INTO DEVICE_DAY_METRICS", write) as fired:
        summary = refresh_daily_aggregates(sim_db)
    assert fired and summary.device_days == 1
    assert errors and "locked" in errors[0]
    with sim_db.engine.connect() as conn:
        assert ids_of(conn, "sim-0007") == []


def test_deleting_the_newest_readings_refreshes_their_days_without_a_rebuild(pg_fleet):
    """PostgreSQL never hands ids out again, so a highest id below the mark is no reason to rebuild: the delete
    trigger marked the days (on 10,000 devices x 180 days the rebuild took 240 s; the marked days take 0.04 s)."""
    m = HealthMetric.__table__.c
    with pg_fleet.engine.begin() as conn:
        top = conn.execute(select(sqlalchemy.func.max(m.id))).scalar_one()
        conn.execute(HealthMetric.__table__.delete().where(m.id > top - 500))
    summary = refresh_daily_aggregates(pg_fleet)
    assert not summary.full and summary.device_days > 0
    assert_equal_to_a_full_rebuild(pg_fleet)


def test_a_truncate_which_fires_no_delete_trigger_makes_the_next_refresh_rebuild(pg_fleet):
    with pg_fleet.engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE device_health_metrics")
    add_readings(pg_fleet, "sim-0003", FIXED_END - dt.timedelta(days=3), full_reading(1.0))
    summary = refresh_daily_aggregates(pg_fleet)
    assert summary.full
    # Only the new reading's device-day is left: the truncated readings' days went with them.
    kept = stored_aggregates(pg_fleet)
    assert [r[:2] for r in kept] == [((FIXED_END - dt.timedelta(days=3)).date(), "sim-0003")]


def wait_until_blocked(db: Database, timeout: float = 20.0) -> None:
    """Until some other session of this database waits on a lock (pg_stat_activity), or fail."""
    probe = sqlalchemy.create_engine(db.engine.url)
    try:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with probe.connect() as conn:
                waiting = conn.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                ).scalar_one()
            if waiting:
                return
            time.sleep(0.05)
        raise AssertionError("the deleting transaction never waited on a lock")
    finally:
        probe.dispose()


@pytest.mark.parametrize("refresh", ["touched days", "rebuild", "first build"])
def test_devices_deleted_while_a_refresh_runs_leave_no_aggregates_behind(pg_fleet, refresh):
    # The refresh has removed the rows it recomputes (sim-0006's last day among them) and is about to write them
    # again from a snapshot taken before the deletion commits: the deletion must not finish first and miss them.
    add_readings(pg_fleet, "sim-0006", FIXED_END - dt.timedelta(hours=1), full_reading(6.0))
    if refresh == "first build":  # no state row yet: the refresh's own, uncommitted, is what there is to wait for
        with pg_fleet.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM device_day_state")
    deleting = ThreadPoolExecutor(max_workers=1)

    def start_deleting(conn, cursor, statement, parameters, context, executemany) -> None:
        if not started and statement.lstrip().upper().startswith("INSERT INTO DEVICE_DAY_METRICS"):
            started.append(deleting.submit(delete_simulated, pg_fleet))
            wait_until_blocked(pg_fleet)

    started: list[Future] = []
    event.listen(pg_fleet.engine, "before_cursor_execute", start_deleting)
    try:
        refresh_daily_aggregates(pg_fleet, full=refresh == "rebuild")
    finally:
        event.remove(pg_fleet.engine, "before_cursor_execute", start_deleting)
    assert started, "the refresh wrote no aggregates"
    assert started[0].result(timeout=60) > 0
    deleting.shutdown()
    assert stored_aggregates(pg_fleet) == []
    refresh_daily_aggregates(pg_fleet)
    assert stored_aggregates(pg_fleet) == []

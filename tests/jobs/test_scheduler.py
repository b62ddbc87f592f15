"""The scheduler: one leader among many, take-over when it dies, entries inline or through RQ."""

from __future__ import annotations

import multiprocessing
import multiprocessing.process
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from redis import Redis

from comptoir.jobs.scheduler import AdvisoryLock, FileLock, Scheduler
from comptoir.jobs.schedules import ScheduleEntry, register_schedule, schedule_entries
from comptoir.platform.db import db
from comptoir.platform.outbox import OutboxMessage, Queue
from comptoir.platform.queue import rq_queue

queued_sweeps: list[str] = []


def _queued_sweep() -> str:
    queued_sweeps.append("swept")
    return "swept"


QUEUED_ENTRY = register_schedule(
    ScheduleEntry(name="tests.queued_sweep", interval=3600, function=_queued_sweep, queue=Queue.LOW)
)


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_the_outbox_relay_is_a_registered_entry() -> None:
    (relay,) = [entry for entry in schedule_entries() if entry.name == "outbox.relay"]
    assert relay.interval == 30
    assert relay.queue is None  # runs in the scheduler itself, Redis or not


# --------------------------------------------------------------------------- threads


def run_two(app: Flask, make_lock: Callable[[], AdvisoryLock | FileLock], runs: list[str]) -> None:
    """Two schedulers in two threads: one leads, the other takes over when it stops."""
    entry = ScheduleEntry(
        name="tests.tick",
        interval=0.1,
        function=lambda: runs.append(threading.current_thread().name),
    )
    schedulers = [
        Scheduler(app, lock=make_lock(), entries=[entry], retry_interval=0.2) for _ in range(2)
    ]
    stops = [threading.Event() for _ in schedulers]
    threads = [
        threading.Thread(target=s.run, args=(stop,), name=f"scheduler-{i}", daemon=True)
        for i, (s, stop) in enumerate(zip(schedulers, stops, strict=True))
    ]
    try:
        for thread in threads:
            thread.start()
        assert wait_until(lambda: len(runs) >= 3, 10)
        leaders = [i for i, s in enumerate(schedulers) if s.is_leader]
        assert len(leaders) == 1
        (leader,) = leaders
        other = 1 - leader
        assert set(runs) == {f"scheduler-{leader}"}

        stops[leader].set()
        threads[leader].join(timeout=5)
        assert not threads[leader].is_alive()
        assert wait_until(lambda: schedulers[other].is_leader, 5)
        assert wait_until(lambda: f"scheduler-{other}" in runs, 5)
        assert not schedulers[leader].is_leader
    finally:
        for stop in stops:
            stop.set()
        for thread in threads:
            thread.join(timeout=5)


def test_one_leader_among_threads_with_the_file_lock(app: Flask, tmp_path: Path) -> None:
    runs: list[str] = []
    run_two(app, lambda: FileLock(tmp_path / "scheduler.lock"), runs)


def test_one_leader_among_threads_with_the_advisory_lock(app: Flask, database_url: str) -> None:
    runs: list[str] = []
    locks: list[AdvisoryLock] = []

    def make() -> AdvisoryLock:
        locks.append(AdvisoryLock(database_url))
        return locks[-1]

    try:
        run_two(app, make, runs)
    finally:
        for lock in locks:
            lock.dispose()


def test_a_leader_whose_database_session_dies_steps_down(app: Flask, database_url: str) -> None:
    reports: list[tuple[int, str]] = []
    locks = [AdvisoryLock(database_url) for _ in range(2)]
    schedulers = [
        Scheduler(
            app,
            lock=lock,
            entries=[ScheduleEntry(name="tests.idle", interval=60, function=lambda: None)],
            retry_interval=0.2,
            report=lambda message, index=index, **_: reports.append((index, message)),
        )
        for index, lock in enumerate(locks)
    ]
    stop = threading.Event()
    threads = [threading.Thread(target=s.run, args=(stop,), daemon=True) for s in schedulers]
    try:
        for thread in threads:
            thread.start()
        assert wait_until(lambda: sum(s.is_leader for s in schedulers) == 1, 10)
        (leader,) = [i for i, s in enumerate(schedulers) if s.is_leader]
        with app.app_context():
            # What a network cut or a database restart does to the leader's session.
            terminated = (
                db.session.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_locks "
                        "WHERE locktype = 'advisory' AND granted AND database = "
                        "(SELECT oid FROM pg_database WHERE datname = current_database())"
                    )
                )
                .scalars()
                .all()
            )
            db.session.commit()
        assert terminated == [True]
        assert wait_until(lambda: (leader, "lost the lock; standing by") in reports, 5)
        # Someone leads again, on a live session.
        assert wait_until(lambda: sum(s.is_leader for s in schedulers) == 1, 10)
        with app.app_context():
            assert len(lock_holders()) == 1
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
        for lock in locks:
            lock.dispose()


def test_a_failing_entry_does_not_stop_the_others(app: Flask, tmp_path: Path) -> None:
    ran: list[str] = []
    reports: list[str] = []

    def broken() -> None:
        message = "sweep broke"
        raise RuntimeError(message)

    entries = [
        ScheduleEntry(name="tests.broken", interval=60, function=broken),
        ScheduleEntry(name="tests.fine", interval=60, function=lambda: ran.append("fine")),
    ]
    scheduler = Scheduler(
        app,
        lock=FileLock(tmp_path / "scheduler.lock"),
        entries=entries,
        report=lambda message, **_: reports.append(message),
    )
    assert scheduler.run(threading.Event(), once=True) is True
    assert ran == ["fine"]
    assert any("tests.broken failed: RuntimeError: sweep broke" in r for r in reports)
    assert scheduler.runs == {"tests.fine": 1}


def test_an_entry_with_a_queue_goes_through_rq_once_at_a_time(
    app: Flask, redis: Redis, jobs: Callable[[], int], tmp_path: Path
) -> None:
    queued_sweeps.clear()
    scheduler = Scheduler(app, lock=FileLock(tmp_path / "lock"), entries=[QUEUED_ENTRY])
    low = rq_queue(redis, Queue.LOW.value)
    scheduler.run_entry(QUEUED_ENTRY)
    assert low.count == 1
    # Still queued from the previous round: not queued a second time.
    scheduler.run_entry(QUEUED_ENTRY)
    assert low.count == 1
    assert queued_sweeps == []
    assert jobs() == 1
    assert queued_sweeps == ["swept"]
    scheduler.run_entry(QUEUED_ENTRY)
    assert low.count == 1


def test_without_redis_an_entry_with_a_queue_runs_inline(
    app: Flask, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    from tests.platform.smtp import mail_app

    embedded = mail_app(database_url, "", tmp_path, mail_url="dev://", limits_url=redis_url)
    queued_sweeps.clear()
    try:
        Scheduler(embedded, lock=FileLock(tmp_path / "lock"), entries=[QUEUED_ENTRY]).run_entry(
            QUEUED_ENTRY
        )
        assert queued_sweeps == ["swept"]
    finally:
        with embedded.app_context():
            db.engine.dispose()


# --------------------------------------------------------------------------- the command


@pytest.fixture
def keep_signal_handlers() -> Iterator[None]:
    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


def test_scheduler_command_once(app: Flask, database_url: str, keep_signal_handlers: None) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["scheduler", "--once"])
    assert result.exit_code == 0, result.output
    assert "leader" in result.output
    assert "ran outbox.relay" in result.output

    # While another instance holds the lock, --once does nothing and says so.
    other = AdvisoryLock(database_url)
    try:
        assert other.acquire()
        result = runner.invoke(args=["scheduler", "--once"])
        assert result.exit_code == 1
        assert "standby" in result.output
        assert "another scheduler is active" in result.output
    finally:
        other.dispose()


def pending_message() -> int:
    message = OutboxMessage(job="mail.send", arguments={"mail_id": 0}, queue="high")
    db.session.add(message)
    db.session.commit()
    return message.id


def relayed(message_id: int) -> bool:
    db.session.rollback()
    return (
        db.session.execute(
            sa.select(OutboxMessage.relayed_at).where(OutboxMessage.id == message_id)
        ).scalar_one()
        is not None
    )


def relayed_ids(redis: Redis) -> list[int]:
    """The outbox messages waiting in RQ's e-mail queue."""
    return sorted(job.args[0] for job in rq_queue(redis, Queue.HIGH.value).get_jobs())


def lock_holders() -> list[str]:
    db.session.rollback()
    return list(
        db.session.execute(
            sa.text(
                "SELECT a.application_name FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        ).scalars()
    )


def _scheduler_process(
    app: Flask, database_url: str, reports: multiprocessing.Queue[tuple[int, str]]
) -> None:
    """A scheduler process, as ``comptoir scheduler`` runs it (forked: no interpreter start-up)."""
    with app.app_context():
        db.engine.dispose(close=False)  # the parent's pooled connections stay the parent's
    (relay,) = [entry for entry in schedule_entries() if entry.name == "outbox.relay"]
    pid = os.getpid()
    scheduler = Scheduler(
        app,
        lock=AdvisoryLock(database_url),
        entries=[relay],
        retry_interval=0.3,
        report=lambda message, **_: reports.put((pid, message)),
    )
    scheduler.run(threading.Event())


class Reports:
    def __init__(self, source: multiprocessing.Queue[tuple[int, str]]) -> None:
        self.source = source
        self.by_pid: dict[int, list[str]] = {}

    def said(self, pid: int | None, text: str) -> bool:
        while True:
            try:
                sender, message = self.source.get_nowait()
            except queue.Empty:
                break
            self.by_pid.setdefault(sender, []).append(message)
        return pid is not None and any(text in line for line in self.by_pid.get(pid, []))


def test_two_scheduler_processes_one_leader_and_take_over_when_it_is_killed(
    app: Flask, database_url: str, redis: Redis
) -> None:
    context = multiprocessing.get_context("fork")
    source: multiprocessing.Queue[tuple[int, str]] = context.Queue()
    reports = Reports(source)
    with app.app_context():
        first_message = pending_message()
        db.session.remove()
        processes = [
            context.Process(target=_scheduler_process, args=(app, database_url, source))
            for _ in range(2)
        ]
        for process in processes:
            process.start()
        try:

            def role(process: multiprocessing.process.BaseProcess) -> str | None:
                if reports.said(process.pid, "leader (pid"):
                    return "leader"
                if reports.said(process.pid, "standby:"):
                    return "standby"
                return None

            assert wait_until(lambda: all(role(p) for p in processes), 15), reports.by_pid
            assert sorted(str(role(p)) for p in processes) == ["leader", "standby"]
            (leader,) = [p for p in processes if role(p) == "leader"]
            (standby,) = [p for p in processes if p is not leader]

            # The leader holds the one lock and runs the entries: the relay sweep sent the
            # pending message to RQ. The standby runs nothing.
            assert lock_holders() == [f"comptoir-scheduler:{leader.pid}"]
            assert wait_until(lambda: reports.said(leader.pid, "ran outbox.relay"), 10)
            assert relayed(first_message)
            assert relayed_ids(redis) == [first_message]
            assert not reports.said(standby.pid, "ran outbox.relay")

            # The leader is killed without a word; PostgreSQL ends its session and frees the
            # lock, and the standby takes over within its retry interval.
            second_message = pending_message()
            assert leader.pid is not None
            os.kill(leader.pid, signal.SIGKILL)
            leader.join(timeout=5)
            assert wait_until(lambda: reports.said(standby.pid, "leader (pid"), 10), reports.by_pid
            assert wait_until(lambda: reports.said(standby.pid, "ran outbox.relay"), 10)
            assert wait_until(lambda: relayed(second_message), 5)
            assert lock_holders() == [f"comptoir-scheduler:{standby.pid}"]
            assert relayed_ids(redis) == [first_message, second_message]
        finally:
            for process in processes:
                if process.is_alive():
                    process.kill()
                process.join(timeout=5)
            source.close()
            source.join_thread()

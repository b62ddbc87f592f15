"""A small HTTP load generator: concurrent keep-alive clients for a bounded time.

Pure Python (threads with ``http.client``) spread over a few processes, so that the generator is
not held back by one interpreter lock and runs wherever Python does. Each client sends one
request at a time and waits for the answer (closed loop), like ``wrk -c``.

A benchmark brings its own client, ``client(plan, index, out)``: a module-level function (the
processes are spawned, so it must be importable) that waits for ``plan.start``, sends requests
through a ``KeepAlive`` connection until ``plan.stop`` and records them in ``out``.
"""

from __future__ import annotations

import http.client
import itertools
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any


@dataclass
class Result:
    succeeded: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    # The time the clients were really sending (time.monotonic()), per run; a slow process start
    # must not count as idle time.
    windows: list[tuple[float, float]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(end - start for start, end in self.windows)

    @property
    def per_second(self) -> float:
        return self.succeeded / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        """Latency in milliseconds below which ``fraction`` of the requests finished."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
        return ordered[index] * 1000

    def record(self, status: int, *, ok: bool, elapsed: float) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if ok:
            self.succeeded += 1
            self.latencies.append(elapsed)
        else:
            self.errors += 1

    def merge(self, other: Result, *, same_run: bool = True) -> None:
        self.succeeded += other.succeeded
        self.errors += other.errors
        self.latencies.extend(other.latencies)
        for status, count in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + count
        if not same_run or not self.windows:
            self.windows.extend(other.windows)
        elif other.windows:
            # Clients of one run: the run lasts from the first start to the last end.
            starts = [self.windows[-1][0], *(w[0] for w in other.windows)]
            ends = [self.windows[-1][1], *(w[1] for w in other.windows)]
            self.windows[-1] = (min(starts), max(ends))


class KeepAlive:
    """One client's keep-alive connection; a failed request counts as status 0 and reconnects."""

    def __init__(self, port: int, *, host: str = "127.0.0.1", timeout: float = 30) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.connection = http.client.HTTPConnection(host, port, timeout=timeout)

    def send(
        self,
        method: str,
        path: str,
        *,
        body: str | bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        try:
            self.connection.request(method, path, body=body, headers=headers or {})
            response = self.connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            return 0, b""

    def close(self) -> None:
        self.connection.close()


def wait_until(moment: float) -> float:
    """Sleep until ``moment`` (time.monotonic()), so that every client starts together."""
    while time.monotonic() < moment:
        time.sleep(0.001)
    return time.monotonic()


Client = Callable[[Any, int, Result], None]


def _run_clients(client: Client, plan: Any, clients: int) -> Result:
    results = [Result() for _ in range(clients)]
    threads = [threading.Thread(target=client, args=(plan, n, results[n])) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = Result()
    for result in results:
        total.merge(result)
    return total


def processes_for(clients: int) -> int:
    return min(clients, max(2, os.cpu_count() or 2))


def client_shares(clients: int, processes: int) -> list[int]:
    """How many of the clients each process runs, as evenly as can be."""
    return [clients // processes + (1 if n < clients % processes else 0) for n in range(processes)]


@contextmanager
def process_pool(processes: int) -> Iterator[ProcessPoolExecutor]:
    with ProcessPoolExecutor(max_workers=processes, mp_context=get_context("spawn")) as pool:
        yield pool


def drive(
    pool: ProcessPoolExecutor,
    processes: int,
    client: Client,
    plan_for: Callable[[int, int, float, float], Any],
    *,
    clients: int,
    seconds: float,
    delay: float = 0.5,
) -> Result:
    """One run: ``clients`` closed-loop clients for ``seconds``, spread over ``processes``.

    ``plan_for(process_number, first_client, start, stop)`` answers that process's plan; its
    clients are numbered from 0 within the process.
    """
    shares = client_shares(clients, processes)
    # Every process starts at the same moment, once all are spawned.
    start = time.monotonic() + delay
    futures = [
        pool.submit(
            _run_clients, client, plan_for(n, sum(shares[:n]), start, start + seconds), share
        )
        for n, share in enumerate(shares)
        if share
    ]
    total = Result()
    for future in futures:
        total.merge(future.result())
    return total


# --------------------------------------------------------------------------- GET paths in turn


@dataclass(frozen=True)
class Plan:
    port: int
    paths: list[str]
    first: int  # this process's first client: the clients start at different paths
    start: float  # time.monotonic() values, shared by the processes of one run
    stop: float


def _get_paths(plan: Plan, index: int, out: Result) -> None:
    connection = KeepAlive(plan.port, timeout=10)
    offset = plan.first + index
    cycle = itertools.islice(itertools.cycle(plan.paths), offset % len(plan.paths), None)
    wait_until(plan.start)
    while True:
        now = time.perf_counter()
        if time.monotonic() >= plan.stop:
            break
        status, _ = connection.send("GET", next(cycle), headers={"Accept-Language": "fr"})
        out.record(status, ok=status == 200, elapsed=time.perf_counter() - now)
    connection.close()


def run(
    port: int,
    paths: list[str],
    *,
    concurrency: int = 20,
    seconds: float = 20.0,
    processes: int | None = None,
) -> Result:
    """Drive ``paths`` (in turn) with ``concurrency`` clients for ``seconds``."""
    processes = processes or processes_for(concurrency)

    def plan_for(_process: int, first: int, start: float, stop: float) -> Plan:
        return Plan(port=port, paths=paths, first=first, start=start, stop=stop)

    with process_pool(processes) as pool:
        total = drive(
            pool,
            processes,
            _get_paths,
            plan_for,
            clients=concurrency,
            seconds=seconds,
            delay=1.5,
        )
    # The rate is over the planned time, as the shop page's recorded figures are.
    total.windows = [(0.0, seconds)]
    return total

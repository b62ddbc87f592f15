"""A small HTTP load generator: concurrent keep-alive clients for a bounded time.

Pure Python (threads with ``http.client``) spread over a few processes, so that the generator is
not held back by one interpreter lock and runs wherever Python does. Each client sends one
request at a time and waits for the answer (closed loop), like ``wrk -c``.
"""

from __future__ import annotations

import http.client
import itertools
import math
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context


@dataclass
class Result:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        """Latency in milliseconds below which ``fraction`` of the requests finished."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
        return ordered[index] * 1000

    def merge(self, other: Result) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.latencies.extend(other.latencies)


@dataclass(frozen=True)
class Plan:
    host: str
    port: int
    paths: list[str]
    start: float  # time.monotonic() values, shared by the processes of one run
    stop: float


def _client(plan: Plan, offset: int, out: Result) -> None:
    host, port = plan.host, plan.port
    connection = http.client.HTTPConnection(host, port, timeout=10)
    cycle = itertools.islice(itertools.cycle(plan.paths), offset % len(plan.paths), None)
    while time.monotonic() < plan.start:
        time.sleep(0.001)
    while True:
        now = time.perf_counter()
        if time.monotonic() >= plan.stop:
            break
        path = next(cycle)
        try:
            connection.request("GET", path, headers={"Accept-Language": "fr"})
            response = connection.getresponse()
            response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            ok = False
            connection.close()
            connection = http.client.HTTPConnection(host, port, timeout=10)
        elapsed = time.perf_counter() - now
        if ok:
            out.requests += 1
            out.latencies.append(elapsed)
        else:
            out.errors += 1
    connection.close()


def _process(plan: Plan, clients: int, first: int) -> Result:
    results = [Result() for _ in range(clients)]
    threads = [
        threading.Thread(target=_client, args=(plan, first + n, results[n])) for n in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = Result()
    for result in results:
        total.merge(result)
    return total


def run(
    host: str,
    port: int,
    paths: list[str],
    *,
    concurrency: int = 20,
    seconds: float = 20.0,
    processes: int | None = None,
) -> Result:
    """Drive ``paths`` (in turn) with ``concurrency`` clients for ``seconds``."""
    processes = processes or min(concurrency, max(2, os.cpu_count() or 2))
    shares = [
        concurrency // processes + (1 if n < concurrency % processes else 0)
        for n in range(processes)
    ]
    # Every process starts at the same moment, once all are spawned.
    start = time.monotonic() + 1.5
    plan = Plan(host=host, port=port, paths=paths, start=start, stop=start + seconds)
    total = Result(seconds=seconds)
    with ProcessPoolExecutor(max_workers=processes, mp_context=get_context("spawn")) as pool:
        futures = [
            pool.submit(_process, plan, share, sum(shares[:n]))
            for n, share in enumerate(shares)
            if share
        ]
        for future in futures:
            total.merge(future.result())
    return total

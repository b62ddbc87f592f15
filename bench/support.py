"""What the benchmarks share: a dedicated database, the app on it, a gunicorn server, their
options, the figures they print and the results file they write."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:
    from flask import Flask

    from bench.loadgen import Result

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get(
    "COMPTOIR_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
APP_ROLE = os.environ.get("COMPTOIR_BENCH_APP_ROLE", "comptoir")
PG_HOST = os.environ.get("COMPTOIR_BENCH_PG_HOST", "127.0.0.1:5432")
REDIS_URL = os.environ.get("COMPTOIR_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET_KEY = "benchmark-only-secret-key-" + "x" * 32


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def create_database(name: str) -> str:
    """A fresh database owned by the app's ordinary role (row-level security applies)."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [APP_ROLE]).fetchone()
        if exists is None:
            admin.execute(f'CREATE ROLE "{APP_ROLE}" LOGIN NOSUPERUSER NOBYPASSRLS')
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}" OWNER "{APP_ROLE}"')
    return f"postgresql://{APP_ROLE}@{PG_HOST}/{name}"


def create_app(database_url: str, instance: Path) -> Flask:
    """The app on the benchmark's database, to migrate and seed it."""
    from comptoir.app import create_app as create_comptoir_app
    from comptoir.platform.settings import Environment, Settings

    return create_comptoir_app(
        Settings(
            env=Environment.DEVELOPMENT,
            database_url=database_url,
            secret_key=SECRET_KEY,
            instance_path=instance,
        )
    )


def app_env(database_url: str, instance: Path, **extra: str) -> dict[str, str]:
    """The environment the served app reads its settings from."""
    return {
        "COMPTOIR_ENV": "development",
        "COMPTOIR_DATABASE_URL": database_url,
        "COMPTOIR_REDIS_URL": REDIS_URL,
        "COMPTOIR_SECRET_KEY": SECRET_KEY,
        "COMPTOIR_INSTANCE_PATH": str(instance),
        **extra,
    }


def parser(
    name: str, doc: str, *, seconds: float, clients: int, rounds: bool = True
) -> argparse.ArgumentParser:
    """The options every load benchmark takes; a benchmark adds its own."""
    options = argparse.ArgumentParser(
        prog=f"python -m bench.{name}", description=doc.split("\n\n", maxsplit=1)[0]
    )
    options.add_argument("--seconds", type=float, default=seconds, help="measured time per run")
    if rounds:
        options.add_argument("--rounds", type=int, default=2, help="runs of each case, alternated")
    options.add_argument("--warmup", type=float, default=3.0, help="unmeasured time first")
    options.add_argument("--clients", type=int, default=clients, help="concurrent clients")
    options.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    options.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    return options


def figures(
    label: str, result: Result, *, unit: str, count: str, width: int = 28
) -> dict[str, Any]:
    """Print a run's rate and latencies, and answer them for the results file.

    ``unit`` names what is counted per second (``adds`` gives ``adds_per_second``); ``count``
    is the key of the number of successes.
    """
    data = {
        "label": label,
        f"{unit}_per_second": round(result.per_second, 1),
        "p50_ms": round(result.percentile(0.50), 1),
        "p95_ms": round(result.percentile(0.95), 1),
        "p99_ms": round(result.percentile(0.99), 1),
        count: result.succeeded,
        "errors": result.errors,
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
    }
    print(
        f"{label:<{width}} {data[f'{unit}_per_second']:>9.1f} {unit}/s   "
        f"p50 {data['p50_ms']:>6.1f} ms   p95 {data['p95_ms']:>6.1f} ms   errors {result.errors}",
        flush=True,
    )
    return data


def ratio(
    measured: dict[str, Any], reference: dict[str, Any], *, key: str, name: str, goal: float | None
) -> float:
    """Print and answer ``measured / reference`` on ``key``, against ``goal`` when there is one."""
    value = measured[key] / reference[key] if reference[key] else 0.0
    if goal is None:
        print(f"ratio {name}: {value:.2f}")
    else:
        print(f"ratio {name}: {value:.2f} (goal >= {goal}) {'met' if value >= goal else 'MISSED'}")
    return value


def write_results(name: str, argv: list[str], **figures: Any) -> None:
    """``bench/results/<name>.json``: when, where and how the figures were measured, and them."""
    results = PROJECT_ROOT / "bench" / "results" / f"{name}.json"
    results.parent.mkdir(exist_ok=True)
    record = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": f"python -m bench.{name} " + " ".join(argv),
        **figures,
    }
    results.write_text(json.dumps(record, indent=2) + "\n")
    print(f"results written to {results.relative_to(PROJECT_ROOT)}")


@contextlib.contextmanager
def gunicorn(
    target: str, *, env: dict[str, str], workers: int, threads: int, ready_path: str = "/"
) -> Iterator[int]:
    """Serve ``target`` (``module:app``) on a free loopback port; yields the port."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--worker-class",
        "gthread",
        "--keep-alive",
        "30",
        "--log-level",
        "warning",
        "--chdir",
        str(PROJECT_ROOT),
        target,
    ]
    log = PROJECT_ROOT / "instance" / f"bench-{target.replace(':', '-')}.log"
    log.parent.mkdir(exist_ok=True)
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            _wait_ready(port, ready_path, process)
            yield port
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(port: int, path: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    url = f"http://127.0.0.1:{port}{path}"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            message = f"the server stopped (exit {process.returncode}); see instance/bench-*.log"
            raise RuntimeError(message)
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    message = f"{url} did not answer 200 within a minute"
    raise RuntimeError(message)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    return (
        f"{os.cpu_count()} CPU ({cpu}){memory}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}"
    )

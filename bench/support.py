"""What the benchmarks share: a dedicated database, a gunicorn server, the machine's description."""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg

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

"""The RQ worker class ``comptoir worker`` runs."""

from __future__ import annotations

from typing import Any

from rq import Worker

from comptoir.platform.db import db


class ComptoirWorker(Worker):
    """RQ's forking worker, with database connections that never cross a fork.

    Each job runs in a child process (a crash or a timeout kills the child, not the worker). The
    child must not reuse the parent's pooled connections, and closes its own cleanly when done.
    """

    def main_work_horse(self, *args: Any, **kwargs: Any) -> None:
        # Forget (without closing) what the parent's pool holds; the parent keeps using it.
        db.engine.dispose(close=False)
        super().main_work_horse(*args, **kwargs)

    def perform_job(self, *args: Any, **kwargs: Any) -> bool:
        try:
            return bool(super().perform_job(*args, **kwargs))
        finally:
            if getattr(self, "_is_horse", False):
                db.session.remove()
                db.engine.dispose()

"""Run every benchmark in turn: ``python -m bench`` (``make bench``).

A benchmark is a module of this package with a ``main(argv) -> int``; list it in ``BENCHMARKS``.
``python -m bench shop_page --seconds 30`` runs one, with its own options.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ["shop_page", "cart_add", "cart_sweep", "webhooks"]


def main(argv: list[str]) -> int:
    if argv and not argv[0].startswith("-"):
        names, rest = [argv[0]], argv[1:]
    else:
        names, rest = BENCHMARKS, argv
    status = 0
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"\n=== {name} ===", flush=True)
        status = max(status, int(module.main(rest)))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

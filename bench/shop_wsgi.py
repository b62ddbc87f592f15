"""The real app for the benchmark, configured from the environment like ``wsgi.py``.

``BENCH_SHOP_CACHE_SECONDS`` sets the shop page cache's lifetime (0 turns it off) so that the
same run can measure pages with and without it.
"""

from __future__ import annotations

import dataclasses
import os

from comptoir.app import create_app
from comptoir.platform.settings import Settings

_settings = Settings.from_env()
_ttl = os.environ.get("BENCH_SHOP_CACHE_SECONDS")
if _ttl is not None:
    _settings = dataclasses.replace(
        _settings, extra={**_settings.extra, "COMPTOIR_SHOP_CACHE_SECONDS": int(_ttl)}
    )
app = create_app(_settings)

"""gunicorn settings for Comptoir's web process: ``gunicorn -c deploy/gunicorn.conf.py wsgi:app``.

Tuned by environment variables, as container platforms expect:

- ``PORT`` (default 8000) and ``HOST`` (default 0.0.0.0): where to listen;
- ``WEB_CONCURRENCY`` (default 2): worker processes; ``GUNICORN_THREADS`` (default 4) per process;
- ``FORWARDED_ALLOW_IPS`` (default 127.0.0.1): the proxies trusted to say the request came over
  HTTPS (``X-Forwarded-Proto``). Set it to the load balancer's address, or ``*`` when only the
  load balancer can reach the container;
- ``GUNICORN_TIMEOUT`` (default 30 seconds).
"""

from __future__ import annotations

import os
from pathlib import Path

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # noqa: S104
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads absorb requests that wait on PostgreSQL, Redis or Stripe without more processes.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5
# Heartbeat files in memory where Linux offers it: container disks can be slow or read-only.
_SHM = Path("/dev/shm")  # noqa: S108 - gunicorn's heartbeat files, not data
worker_tmp_dir = str(_SHM) if _SHM.is_dir() else None
# Recycle workers now and then so that a slow leak cannot grow without bound.
max_requests = 2000
max_requests_jitter = 200

forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}

# The app logs its own structured lines; gunicorn's access log adds one per request, with the
# request id the app echoes back (X-Request-ID) so the two can be joined.
accesslog = "-"
errorlog = "-"
access_log_format = (
    '%(h)s "%(r)s" %(s)s %(b)s %(M)sms '
    'request_id=%({x-request-id}o)s forwarded_for="%({x-forwarded-for}i)s" '
    'agent="%(a)s"'
)
# No control socket: it would be written under $HOME, which is read-only in the container.
control_socket_disable = True

# Each worker builds the app after the fork: no connection is shared across processes.
preload_app = False

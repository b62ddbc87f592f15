#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis answer on 127.0.0.1 for the tests, and that the app's ordinary
# database role exists. Starts a service that is installed but stopped; otherwise says what to install.
set -euo pipefail

PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
PG_ADMIN=${PG_ADMIN:-postgres}
APP_ROLE=${COMPTOIR_TEST_APP_ROLE:-comptoir}
REDIS_PORT=${REDIS_PORT:-6379}

pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]; }

if ! command -v pg_isready >/dev/null 2>&1; then
  echo "PostgreSQL is not installed. Install it (Debian: apt-get install postgresql) and run make test again." >&2
  exit 1
fi
if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "Starting PostgreSQL..."
    for version in $(ls /etc/postgresql); do
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
  fi
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || { echo "PostgreSQL does not answer on $PG_HOST:$PG_PORT; start it (as root: pg_ctlcluster <version> main start)." >&2; exit 1; }
fi

if ! command -v redis-cli >/dev/null 2>&1; then
  echo "Redis is not installed. Install it (Debian: apt-get install redis-server) and run make test again." >&2
  exit 1
fi
if ! redis_up; then
  echo "Starting Redis..."
  redis_dir=${REDIS_DIR:-/var/lib/redis}
  [ -w "$redis_dir" ] || redis_dir=$(mktemp -d)
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir "$redis_dir" --logfile "$redis_dir/redis-test.log"
  for _ in $(seq 1 30); do redis_up && break; sleep 0.5; done
  redis_up || { echo "Redis does not answer on 127.0.0.1:$REDIS_PORT." >&2; exit 1; }
fi

# The app connects as an ordinary role: row-level security does not apply to superusers.
psql -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_ADMIN" -d postgres -v ON_ERROR_STOP=1 <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$APP_ROLE') THEN
    CREATE ROLE "$APP_ROLE" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
  END IF;
END
\$\$;
SQL
echo "PostgreSQL and Redis are ready; the test role '$APP_ROLE' exists."

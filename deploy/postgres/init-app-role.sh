#!/usr/bin/env bash
# Runs once, when the PostgreSQL container creates its data directory (docker-entrypoint-initdb.d).
# The app connects as an ordinary role that owns its database: no SUPERUSER and no BYPASSRLS,
# because row-level security does not apply to those.
set -euo pipefail
: "${COMPTOIR_DB_PASSWORD:?set COMPTOIR_DB_PASSWORD}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v app_password="$COMPTOIR_DB_PASSWORD" <<'SQL'
CREATE ROLE comptoir LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD :'app_password';
CREATE DATABASE comptoir OWNER comptoir;
SQL

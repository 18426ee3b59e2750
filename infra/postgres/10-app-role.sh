#!/bin/sh
# First start of the compose PostgreSQL: create the application role with a password before
# the migrations run (they then only grant it DML). It owns nothing and cannot bypass
# row-level security.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v app_password="$ATTENDWISE_APP_DB_PASSWORD" <<'SQL'
CREATE ROLE attendwise_app LOGIN PASSWORD :'app_password' NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
SQL

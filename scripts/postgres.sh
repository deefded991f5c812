#!/usr/bin/env bash
# Install (if missing) and start Debian's PostgreSQL, and create the role the tests use.
# The tests create and drop their own databases with it, so it gets CREATEDB.
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$version main"; then
    pg_createcluster "$version" main >/dev/null
fi
pg_ctlcluster "$version" main start 2>/dev/null || pg_ctlcluster "$version" main status >/dev/null
for _ in $(seq 1 50); do
    runuser -u postgres -- pg_isready -q -h 127.0.0.1 && break
    sleep 0.2
done
runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 <<'SQL'
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fedgrid') THEN
        CREATE ROLE fedgrid LOGIN CREATEDB PASSWORD 'fedgrid';
    END IF;
END
$$;
SQL
echo "PostgreSQL $version running on 127.0.0.1:5432 (role fedgrid)"

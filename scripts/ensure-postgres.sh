#!/usr/bin/env bash
# Make sure the PostgreSQL the tests use answers: 127.0.0.1:5432, user postgres, trust auth,
# database "test". A machine without PostgreSQL gets Debian's package (this runs as root in
# CI). With POSTROOM_TEST_PG_DSN set, the caller provides the server and nothing is done.
set -euo pipefail

if [ -n "${POSTROOM_TEST_PG_DSN:-}" ]; then
  exit 0
fi

ready() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "PostgreSQL is not installed: installing Debian's postgresql"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

version=$(ls /etc/postgresql | sort -V | tail -n 1)
if ! ready; then
  hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -q "postroom-tests" "$hba"; then
    # Local test server: trust loopback connections, as the test machines are set up.
    sed -i '1i host all all 127.0.0.1/32 trust # postroom-tests\nhost all all ::1/128 trust # postroom-tests' "$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do ready && break; sleep 1; done
fi
ready || { echo "PostgreSQL does not answer on 127.0.0.1:5432" >&2; exit 1; }

if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc "select 1 from pg_database where datname='test'" | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -d postgres -qc "create database test"
fi

#!/usr/bin/env bash
# Start what the tests need when it is not already running: PostgreSQL on 127.0.0.1:5432.
# This machine kind starts PostgreSQL before each session; a machine without it gets it installed.
set -euo pipefail

pg_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }

if ! pg_up; then
  if ls /etc/postgresql/*/main >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
fi
if ! pg_up; then
  echo "services: installing PostgreSQL" >&2
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
  ver=$(ls /etc/postgresql | head -1)
  conf=/etc/postgresql/$ver/main
  sed -i "s/^#\?listen_addresses.*/listen_addresses = '127.0.0.1'/" "$conf/postgresql.conf"
  sed -i -E 's/^(host|local)(.*)(md5|peer|scram-sha-256)$/\1\2trust/' "$conf/pg_hba.conf"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  su postgres -c "psql -qc 'CREATE DATABASE test'" 2>/dev/null || true
fi
pg_up && echo "services: PostgreSQL answers on 127.0.0.1:5432" >&2

# Headless Chromium for the dashboard's end-to-end tests (Debian's build; never a downloaded one).
if [ ! -x /usr/bin/chromium ]; then
  echo "services: installing Chromium" >&2
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
/usr/bin/chromium --version >&2 || true

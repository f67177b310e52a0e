# shellcheck shell=bash disable=SC2034  # variables here are used by the sourcing scripts
# Sourced by the infra/local/*.sh scripts; not executable on its own.
# Settings come from the environment so several checkouts (or CI jobs) can run side by side.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SHOP_LOCAL_DIR="${SHOP_LOCAL_DIR:-$REPO/.local}"
SHOP_HOST=127.0.0.1

: "${SHOP_KAFKA_PORT:=9092}" "${SHOP_KAFKA_CONTROLLER_PORT:=9093}"
: "${SHOP_PG_PORT:=5432}" "${SHOP_PG_USER:=postgres}" "${SHOP_PG_PASSWORD:=postgres}"
: "${SHOP_GATEWAY_PORT:=8000}" "${SHOP_WALLET_PORT:=8101}" "${SHOP_CATALOG_PORT:=8102}"
: "${SHOP_ORDER_PORT:=8103}" "${SHOP_COUPON_PORT:=8104}" "${SHOP_PAYMENT_PORT:=8105}"
: "${SHOP_ANALYTICS_PORT:=8106}"
export SHOP_LOCAL_DIR SHOP_KAFKA_PORT SHOP_KAFKA_CONTROLLER_PORT SHOP_PG_PORT SHOP_PG_USER \
  SHOP_PG_PASSWORD SHOP_GATEWAY_PORT SHOP_WALLET_PORT SHOP_CATALOG_PORT SHOP_ORDER_PORT \
  SHOP_COUPON_PORT SHOP_PAYMENT_PORT SHOP_ANALYTICS_PORT

COMPONENT="${COMPONENT:-local}"
log() { echo "[$COMPONENT] $*"; }
die() { echo "[$COMPONENT] ERROR: $*" >&2; exit 1; }

# die, showing the end of a log file: the real reason is almost always in there.
die_with_log() { # message logfile...
  local msg=$1 f; shift
  echo "[$COMPONENT] ERROR: $msg" >&2
  for f in "$@"; do
    [[ -s $f ]] || continue
    echo "----- last lines of $f -----" >&2
    tail -n 30 "$f" >&2
  done
  exit 1
}

port_open() { # host port
  timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

wait_for_port() { # host port timeout_seconds
  local deadline=$((SECONDS + $3))
  until port_open "$1" "$2"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# A pid file only counts if its process is alive AND still the program we started:
# after a reboot or crash the pid may have been reused by something else. Zombies (which
# kill -0 still reports alive) have an empty cmdline, so they count as dead too.
pid_from_file() { # pidfile cmdline-pattern -> prints pid, fails if not ours/alive
  local pid cmd
  [[ -f $1 ]] || return 1
  read -r pid <"$1" || true
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmd == *"$2"* ]] || return 1
  echo "$pid"
}

stop_pid() { # pid timeout_seconds
  local pid=$1 deadline=$((SECONDS + $2))
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      log "still running after $2 s, sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.2
  done
}

usage() { # subcommands...
  echo "usage: $(basename "$0") {$(IFS='|'; echo "$*")}" >&2
  exit 2
}

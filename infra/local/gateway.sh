#!/usr/bin/env bash
# nginx API gateway on 127.0.0.1:$SHOP_GATEWAY_PORT, routing /api/... to the local services.
# usage: gateway.sh start|stop|status|reload|render   (reload re-renders the config from the
# template; render only writes and checks it). SHOP_GATEWAY_TEMPLATE renders another template
# (bench/storm_bench.py runs the previous one beside this one).
set -euo pipefail
COMPONENT=gateway
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

NDIR="$SHOP_LOCAL_DIR/nginx"
CONF="$NDIR/nginx.conf"
PIDFILE="$NDIR/logs/nginx.pid"
TEMPLATE="${SHOP_GATEWAY_TEMPLATE:-$REPO/infra/gateway/nginx.conf.template}"
PORT_VARS=(SHOP_GATEWAY_PORT SHOP_WALLET_PORT SHOP_CATALOG_PORT SHOP_ORDER_PORT
  SHOP_COUPON_PORT SHOP_PAYMENT_PORT SHOP_ANALYTICS_PORT)

find_nginx() {
  command -v nginx || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || return 1
}
if ! NGINX=$(find_nginx); then
  ((EUID == 0)) || die "nginx not installed (run: sudo apt-get install -y nginx-light)"
  log "installing nginx with apt-get ..."
  apt-get update -qq && { apt-get install -y -qq nginx-light || apt-get install -y -qq nginx; } >/dev/null
  NGINX=$(find_nginx) || die "nginx installation failed"
fi

# Root master, unprivileged workers: the config never needs them to touch the filesystem.
GLOBAL=()
if ((EUID == 0)); then GLOBAL=(-g "user nobody $(id -gn nobody);"); fi
ngx() { "$NGINX" -p "$NDIR/" -c "$CONF" -e logs/error.log "${GLOBAL[@]}" "$@"; }

# A service's replicas: SHOP_<NAME>_PORTS (comma-separated, scripts/dev.py sets it), else its
# one SHOP_<NAME>_PORT.
ports_of() { # SHOP_<NAME>_PORT -> prints the ports, space-separated
  local list=${1}S
  list=${!list:-${!1}}
  [[ $list =~ ^[0-9]+(,[0-9]+)*$ ]] || die "${1}S must be comma-separated port numbers, got '$list'"
  echo "${list//,/ }"
}

# The listen backlog: connections the kernel completes before nginx accepts them. A storm of
# new connections beyond it waits for TCP's 1 s retransmit; the kernel silently caps it at
# net.core.somaxconn, so the rendered config says what is really in effect.
backlog() {
  local want=${SHOP_GATEWAY_BACKLOG:-4096} somaxconn syn cookies
  [[ $want =~ ^[0-9]+$ ]] && ((want > 0)) || die "SHOP_GATEWAY_BACKLOG must be a positive number, got '$want'"
  somaxconn=$(cat /proc/sys/net/core/somaxconn 2>/dev/null || echo "$want")
  if ((somaxconn < want)); then
    echo "[$COMPONENT] WARNING: listen backlog $want capped at net.core.somaxconn=$somaxconn;" \
      "for connection storms set: sysctl -w net.core.somaxconn=$want" >&2
    want=$somaxconn
  fi
  # Without SYN cookies the half-open queue is bounded by tcp_max_syn_backlog as well.
  syn=$(cat /proc/sys/net/ipv4/tcp_max_syn_backlog 2>/dev/null || echo "$want")
  cookies=$(cat /proc/sys/net/ipv4/tcp_syncookies 2>/dev/null || echo 1)
  if ((cookies == 0 && syn < want)); then
    echo "[$COMPONENT] WARNING: tcp_syncookies=0 and net.ipv4.tcp_max_syn_backlog=$syn < $want;" \
      "set: sysctl -w net.ipv4.tcp_max_syn_backlog=$want" >&2
  fi
  echo "$want"
}

# An unprivileged nginx cannot raise its descriptor limit past the hard one (setrlimit fails
# and workers keep the soft limit): render what it can have and say what to raise.
cap_nofile() { # conf
  local want hard
  want=$(sed -n 's/^worker_rlimit_nofile \([0-9]*\);/\1/p' "$1")
  hard=$(ulimit -Hn)
  [[ -n $want && $hard != unlimited ]] && ((EUID != 0 && hard < want)) || return 0
  echo "[$COMPONENT] WARNING: worker_rlimit_nofile $want capped at this shell's hard limit" \
    "$hard (worker_connections $((hard / 2)), about $((hard / 4)) proxied clients per worker);" \
    "raise it (ulimit -Hn, limits.conf) for storms" >&2
  sed -i -e "s/^worker_rlimit_nofile [0-9]*;/worker_rlimit_nofile $hard;/" \
    -e "s/^\( *worker_connections\) [0-9]*;/\1 $((hard / 2));/" "$1"
}

# What the gateway serves as files, laid out as in the compose image: web/<name>/dist, the shop's
# OpenAPI document and each service's AsyncAPI document. A world-readable copy in /tmp, made
# again at every render, because workers running as nobody may not traverse the checkout (a
# fresh clone under a 0700 directory, say).
web_dir() {
  local copy dist svc
  copy="/tmp/shop-web-$(printf %s "$NDIR" | md5sum | cut -c1-12)"
  rm -rf "$copy" && mkdir -p "$copy/api" "$copy/asyncapi"
  for dist in "$REPO"/web/*/dist; do
    [[ -d $dist ]] || continue
    mkdir -p "$copy/$(basename "$(dirname "$dist")")" && cp -r "$dist" "$_/"
  done
  cp "$REPO/docs/generated/openapi.json" "$copy/api/"
  for svc in wallet catalog order coupon payment-mock analytics; do
    cp "$REPO/services/$svc/asyncapi.json" "$copy/asyncapi/${svc%-mock}.json"
  done
  chmod -R a+rX "$copy"
  echo "$copy"
}

render() {
  local args=() v p ports servers
  for v in "${PORT_VARS[@]}"; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a port number, got '${!v}'"
    if [[ $v != SHOP_GATEWAY_PORT ]]; then
      # The template's one `server ...${SHOP_<NAME>_PORT}...;` becomes one per replica.
      ports=$(ports_of "$v") || exit 1
      servers=""
      for p in $ports; do servers+="${servers:+ }server \\1$p\\2;"; done
      args+=(-e "s/server \\([^;]*\\)\\\${$v}\\([^;]*\\);/$servers/g")
    fi
    args+=(-e "s/\\\${$v}/${!v}/g")
  done
  # Abuse limits per client address, on unless SHOP_RATE_LIMITS says off (load tests).
  local limits=${SHOP_RATE_LIMITS:-on}
  case "${limits,,}" in off | false | 0 | no) limits=off ;; *) limits=on ;; esac
  args+=(-e "s/\\\${SHOP_RATE_LIMITS}/$limits/g")
  local listen_backlog
  listen_backlog=$(backlog)
  args+=(-e "s/\\\${SHOP_GATEWAY_BACKLOG}/$listen_backlog/g")
  # Static pages: web/<name>/dist of this checkout.
  args+=(-e "s|\\\${SHOP_WEB_DIR}|$(web_dir)|g")
  mkdir -p "$NDIR/logs" "$NDIR/temp"
  sed "${args[@]}" "$TEMPLATE" >"$CONF.new"
  cap_nofile "$CONF.new"
  ! grep -nE '\$\{SHOP_[A-Z_]+\}' "$CONF.new" >&2 || die "unknown placeholder left in $TEMPLATE"
  mv "$CONF.new" "$CONF"
  ngx -t -q 2>"$NDIR/logs/configtest.log" || die_with_log "invalid config $CONF" "$NDIR/logs/configtest.log"
}

start() {
  if pid=$(pid_from_file "$PIDFILE" "nginx: master"); then
    # report the address it really uses, which may differ from this shell's settings
    log "already running (pid $pid) on $(sed -n 's/^ *listen \([^ ;]*\).*/\1/p' "$CONF")"
    return
  fi
  ! port_open "$SHOP_HOST" "$SHOP_GATEWAY_PORT" || die "port $SHOP_GATEWAY_PORT is taken by another process (set SHOP_GATEWAY_PORT)"
  render
  log "starting on $SHOP_HOST:$SHOP_GATEWAY_PORT ..."
  ngx 2>>"$NDIR/logs/error.log" || die_with_log "nginx failed to start" "$NDIR/logs/error.log"
  wait_for_port "$SHOP_HOST" "$SHOP_GATEWAY_PORT" 10 || die_with_log "not listening after 10s" "$NDIR/logs/error.log"
  # nginx listens before it daemonizes: the master writes its pid file and takes its
  # "nginx: master" title a moment after the port opens.
  local tries
  for tries in {1..50}; do
    pid=$(pid_from_file "$PIDFILE" "nginx: master") && break
    ((tries < 50)) || die_with_log "nginx exited" "$NDIR/logs/error.log"
    sleep 0.1
  done
  log "ready (pid $pid, http://$SHOP_HOST:$SHOP_GATEWAY_PORT/health)"
}

stop() {
  if ! pid=$(pid_from_file "$PIDFILE" "nginx: master"); then log "not running"; return; fi
  log "stopping (pid $pid) ..."
  stop_pid "$pid" 10
  log "stopped"
}

reload() {
  if ! pid=$(pid_from_file "$PIDFILE" "nginx: master"); then start; return; fi
  render
  kill -HUP "$pid"
  log "reloaded config (pid $pid)"
}

status() {
  if ! pid=$(pid_from_file "$PIDFILE" "nginx: master"); then log "stopped"; return 3; fi
  log "running (pid $pid) on http://$SHOP_HOST:$SHOP_GATEWAY_PORT, config $CONF, logs $NDIR/logs"
  local v name p
  for v in "${PORT_VARS[@]:1}"; do
    name=${v#SHOP_}; name=${name%_PORT}
    for p in $(ports_of "$v"); do
      if port_open "$SHOP_HOST" "$p"; then echo "  ${name,,} 127.0.0.1:$p up"; else echo "  ${name,,} 127.0.0.1:$p down"; fi
    done
  done
}

case "${1:-}" in
  start | stop | status | reload | render) "$1" ;;
  *) usage start stop status reload render ;;
esac

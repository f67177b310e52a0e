#!/usr/bin/env bash
# nginx API gateway on 127.0.0.1:$SHOP_GATEWAY_PORT, routing /api/... to the local services.
# usage: gateway.sh start|stop|status|reload   (reload re-renders the config from the template)
set -euo pipefail
COMPONENT=gateway
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

NDIR="$SHOP_LOCAL_DIR/nginx"
CONF="$NDIR/nginx.conf"
PIDFILE="$NDIR/logs/nginx.pid"
TEMPLATE="$REPO/infra/gateway/nginx.conf.template"
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

# Workers running as nobody must reach web/*/dist: a checkout they cannot traverse (one under
# /root, say) is served from a world-readable copy in /tmp, made again at every render.
web_dir() {
  local web="$REPO/web" copy dist
  if ((EUID != 0)) || runuser -u nobody -- test -x "$web" 2>/dev/null; then echo "$web"; return; fi
  copy="/tmp/shop-web-$(printf %s "$NDIR" | md5sum | cut -c1-12)"
  rm -rf "$copy" && mkdir -p "$copy"
  for dist in "$web"/*/dist; do
    [[ -d $dist ]] || continue
    mkdir -p "$copy/$(basename "$(dirname "$dist")")" && cp -r "$dist" "$_/"
  done
  chmod -R a+rX "$copy"
  echo "$copy"
}

render() {
  local args=() v
  for v in "${PORT_VARS[@]}"; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a port number, got '${!v}'"
    args+=(-e "s/\\\${$v}/${!v}/g")
  done
  # Abuse limits per client address, on unless SHOP_RATE_LIMITS says off (load tests).
  local limits=${SHOP_RATE_LIMITS:-on}
  case "${limits,,}" in off | false | 0 | no) limits=off ;; *) limits=on ;; esac
  args+=(-e "s/\\\${SHOP_RATE_LIMITS}/$limits/g")
  # Static pages: web/<name>/dist of this checkout.
  args+=(-e "s|\\\${SHOP_WEB_DIR}|$(web_dir)|g")
  mkdir -p "$NDIR/logs" "$NDIR/temp"
  sed "${args[@]}" "$TEMPLATE" >"$CONF.new"
  ! grep -nE '\$\{SHOP_[A-Z_]+\}' "$CONF.new" >&2 || die "unknown placeholder left in $TEMPLATE"
  mv "$CONF.new" "$CONF"
  ngx -t -q 2>"$NDIR/logs/configtest.log" || die_with_log "invalid config $CONF" "$NDIR/logs/configtest.log"
}

start() {
  if pid=$(pid_from_file "$PIDFILE" "nginx: master"); then
    # report the address it really uses, which may differ from this shell's settings
    log "already running (pid $pid) on $(sed -n 's/^ *listen \([^;]*\);.*/\1/p' "$CONF")"
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
  local v name
  for v in "${PORT_VARS[@]:1}"; do
    name=${v#SHOP_}; name=${name%_PORT}
    if port_open "$SHOP_HOST" "${!v}"; then echo "  ${name,,} 127.0.0.1:${!v} up"; else echo "  ${name,,} 127.0.0.1:${!v} down"; fi
  done
}

case "${1:-}" in
  start | stop | status | reload) "$1" ;;
  *) usage start stop status reload ;;
esac

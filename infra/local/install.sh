#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks for the local stack (uv, nginx, Node.js for the web
# pages, which it builds) and checks the rest (Python 3.11+, Java 17+, Maven). Idempotent; takes
# well under a second when all is there. `install.sh chromium` adds Debian's Chromium for the
# browser tests (make test-ui).
set -euo pipefail
COMPONENT=install
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

missing=()
SUDO=()
if ((EUID != 0)) && command -v sudo >/dev/null; then SUDO=(sudo); fi
can_apt() { ((EUID == 0)) || ((${#SUDO[@]})); }

apt_updated=
apt_install() { # packages...
  [[ -n $apt_updated ]] || { log "apt-get update"; "${SUDO[@]}" apt-get update -qq; apt_updated=1; }
  log "apt-get install $*"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

check_python() {
  if ! command -v python3 >/dev/null; then missing+=("Python 3.11+ (apt-get install -y python3)"); return; fi
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    missing+=("Python 3.11+ (python3 is $(python3 -V 2>&1 | awk '{print $2}'))")
}

ensure_uv() {
  command -v uv >/dev/null && return
  command -v python3 >/dev/null || return 0   # reported by check_python
  local ubin; ubin="$(python3 -m site --user-base)/bin/uv"
  if [[ ! -x $ubin ]]; then
    if ! python3 -m pip --version >/dev/null 2>&1; then
      can_apt || { missing+=("pip, to install uv (apt-get install -y python3-pip)"); return; }
      apt_install python3-pip
    fi
    log "pip install --user uv"
    # Debian's python refuses --user installs (PEP 668) unless told; uv is a standalone binary
    python3 -m pip install -q --user uv 2>/dev/null ||
      python3 -m pip install -q --user --break-system-packages uv
  fi
  if ((EUID == 0)); then
    ln -sf "$ubin" /usr/local/bin/uv; log "uv -> /usr/local/bin/uv"
  else
    log "uv installed as $ubin: add $(dirname "$ubin") to PATH"
  fi
}

ensure_nginx() {
  command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] && return
  can_apt || { missing+=("nginx (apt-get install -y nginx-light)"); return; }
  apt_install nginx-light || apt_install nginx
}

ensure_node() {
  command -v npm >/dev/null && return
  can_apt || { missing+=("Node.js and npm, to build web/* (apt-get install -y nodejs npm)"); return; }
  apt_install nodejs npm
}

# Each web/<name> with a package-lock.json is built into web/<name>/dist, which the gateway
# serves; skipped while dist is newer than everything else in the directory.
build_web() {
  command -v npm >/dev/null || return 0   # reported by ensure_node
  local lock dir name
  for lock in "$REPO"/web/*/package-lock.json; do
    [[ -f $lock ]] || continue
    dir=$(dirname "$lock") name=web/$(basename "$(dirname "$lock")")
    if [[ -d $dir/dist ]] && [[ -z $(find "$dir" \( -path "$dir/node_modules" -o -path "$dir/dist" \) \
      -prune -o -type f -newer "$dir/dist" -print -quit) ]]; then continue; fi
    log "npm ci && npm run build in $name"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null && npm run --silent build >/dev/null) ||
      missing+=("a build of $name (cd $name && npm ci && npm run build)")
  done
}

# Only the browser tests need it: Debian's package, never a browser download of a test tool.
ensure_chromium() {
  [[ -x /usr/bin/chromium ]] && return
  can_apt || { missing+=("Chromium, for the browser tests (apt-get install -y chromium)"); return; }
  apt_install chromium fonts-dejavu-core
}

check_java() {
  if ! command -v java >/dev/null; then
    missing+=("Java 17+ (apt-get install -y openjdk-17-jre-headless, or default-jre-headless)"); return
  fi
  local v; v=$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
  local major=${v%%.*}; [[ $major == 1 ]] && major=$(cut -d. -f2 <<<"$v")   # "1.8.0" style
  [[ $major =~ ^[0-9]+$ ]] && ((major >= 17)) || missing+=("Java 17+ (found java '$v')")
}

check_mvn() {
  command -v mvn >/dev/null || missing+=("Maven, to fetch Kafka's jars (apt-get install -y maven)")
}

check_python
ensure_uv
ensure_nginx
check_java
check_mvn
ensure_node
build_web
if [[ " $* " == *" chromium "* ]]; then ensure_chromium; fi

if ((${#missing[@]})); then
  for m in "${missing[@]}"; do echo "[$COMPONENT] MISSING: $m" >&2; done
  exit 1
fi
log "ok: python3 $(python3 -V | awk '{print $2}'), $(uv --version 2>/dev/null || echo 'uv (see above)'), nginx, node $(node --version 2>/dev/null), java, mvn"

#!/usr/bin/env bash
# Real XMPP servers as loopback test peers for the interop tests (tests/test_interop.py):
# Prosody 0.12 (with our test modules) and ejabberd 23.01, from Debian bookworm packages.
#
# usage: [PEERS=/tmp/xmpp-peers] bash tests/peers/peers.sh install|setup|start|stop|status
#   install  apt packages (root; keeps apt from starting the system services)
#   setup    test CA + server certificate, configs, Prosody test modules (no daemons; idempotent)
#   start    both servers in the background, wait until they answer, add the ejabberd users,
#            then write $PEERS/peers.env, which the tests read (nothing to do if already up)
#   stop     SIGTERM to the PIDs that start recorded, wait until gone; removes peers.env
#   status   what runs; exit 0 only when both servers answer
#
# Everything lives under $PEERS, which must be readable by the user 'ejabberd' (keep it
# under /tmp).  Every listener is on 127.0.0.1.  Users on host ya.ru: test/testpass and
# other/otherpass on both servers (on Prosody the password is also the X-YANDEX-OAUTH token).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PEERS=${PEERS:-/tmp/xmpp-peers}
P=$PEERS/prosody
E=$PEERS/ejabberd
DOMAIN=ya.ru
PROSODY_PORT=5222
PROSODY_TLS_PORT=5223
EJABBERD_PORT=6222
EJABBERD_TLS_PORT=6223
EJABBERD_DIST_PORT=5210
PING_INTERVAL=2           # seconds; server -> client pings on both servers
STATE=$PEERS/peers.env
EJCTL=(ejabberdctl --config-dir "$E" --logs "$E/logs" --spool "$E/spool")

log() { echo "peers: $*" >&2; }

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

pid_in() { [ -f "$1" ] && cat "$1" || true; }

install() {
  [ "$(id -u)" = 0 ] || { log "install needs root (apt-get)"; return 1; }
  local guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then   # keep apt from starting prosody/ejabberd on 0.0.0.0
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    guard=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    prosody lua-zlib lua-unbound lua-event ejabberd erlang-p1-oauth2 openssl >/dev/null
  if [ -n "$guard" ]; then rm -f /usr/sbin/policy-rc.d; fi
  dpkg-query -W prosody ejabberd
}

substitute() {  # TEMPLATE OUTPUT
  sed -e "s|@PEERS@|$PEERS|g" \
      -e "s|@PROSODY_PORT@|$PROSODY_PORT|g; s|@PROSODY_TLS_PORT@|$PROSODY_TLS_PORT|g" \
      -e "s|@EJABBERD_PORT@|$EJABBERD_PORT|g; s|@EJABBERD_TLS_PORT@|$EJABBERD_TLS_PORT|g" \
      -e "s|@EJABBERD_DIST_PORT@|$EJABBERD_DIST_PORT|g; s|@PING_INTERVAL@|$PING_INTERVAL|g" \
      "$1" > "$2"
}

make_certs() {  # a test CA and a server certificate it signs, for localhost and ya.ru
  local c=$PEERS/certs
  [ -f "$c/ca.pem" ] && [ -f "$c/cert.pem" ] && [ -f "$c/key.pem" ] && return 0
  mkdir -p "$c"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -sha256 \
    -subj "/O=yaxmpp interop tests/CN=yaxmpp interop test CA (do not trust)" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$c/ca-key.pem" -out "$c/ca.pem" 2>/dev/null
  openssl req -new -newkey rsa:2048 -nodes -subj "/O=yaxmpp interop tests/CN=localhost" \
    -keyout "$c/key.pem" -out "$c/cert.csr" 2>/dev/null
  printf '%s\n' "subjectAltName=DNS:localhost,DNS:$DOMAIN" "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" \
    "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid,issuer" > "$c/cert.ext"
  openssl x509 -req -in "$c/cert.csr" -CA "$c/ca.pem" -CAkey "$c/ca-key.pem" -CAcreateserial \
    -days 3650 -sha256 -extfile "$c/cert.ext" -out "$c/cert.pem" 2>/dev/null
  rm -f "$c/cert.csr" "$c/cert.ext" "$c/ca.srl"
}

setup() {
  mkdir -p "$PEERS"
  make_certs
  # Prosody: config and our test modules.
  mkdir -p "$P/data" "$P/plugins"
  substitute "$HERE/prosody/prosody.cfg.lua.in" "$P/prosody.cfg.lua"
  cp "$HERE"/prosody/plugins/*.lua "$P/plugins/"
  prosodyctl --config "$P/prosody.cfg.lua" check config >"$P/check.log" 2>&1 \
    || { cat "$P/check.log" >&2; return 1; }
  # ejabberd: runs as user 'ejabberd', so everything under $E must be its own.
  mkdir -p "$E/spool" "$E/logs"
  substitute "$HERE/ejabberd/ejabberd.yml.in" "$E/ejabberd.yml"
  substitute "$HERE/ejabberd/ejabberdctl.cfg.in" "$E/ejabberdctl.cfg"
  cp /etc/ejabberd/inetrc "$E/inetrc"
  cat "$PEERS/certs/cert.pem" "$PEERS/certs/key.pem" "$PEERS/certs/ca.pem" > "$E/combined.pem"
  chmod 600 "$E/combined.pem"
  chown -R ejabberd:ejabberd "$E"
  log "set up in $PEERS"
}

start_prosody() {
  if alive "$(pid_in "$P/launched.pid")"; then log "prosody already running"; return 0; fi
  rm -f "$P/prosody.pid"
  nohup prosody --config "$P/prosody.cfg.lua" -F </dev/null >"$P/stdout.log" 2>&1 &
  echo $! > "$P/launched.pid"
}

start_ejabberd() {
  if alive "$(pid_in "$E/ejabberd.pid")"; then log "ejabberd already running"; return 0; fi
  rm -f "$E/ejabberd.pid"
  # As root, ejabberdctl re-executes itself through su: $! is that wrapper, and the real
  # server (beam.smp) writes its own PID to $E/ejabberd.pid (EJABBERD_PID_PATH).
  (cd "$E" && exec nohup "${EJCTL[@]}" foreground </dev/null >"$E/stdout.log" 2>&1) &
  echo $! > "$E/launched.pid"
}

ejabberd_accounts() {
  local u
  for u in test other; do   # rc 1 when the account exists already (kept in the spool)
    "${EJCTL[@]}" register "$u" "$DOMAIN" "${u}pass" >/dev/null 2>&1 || true
  done
  # An OAuth token for X-OAUTH2 (needs erlang-p1-oauth2), valid for a day.
  "${EJCTL[@]}" oauth_issue_token "test@$DOMAIN" 86400 sasl_auth | cut -f1
}

failed() {  # NAME LOG
  log "$1 did not come up; the end of its log:"
  tail -n 30 "$2" >&2 || true
  return 1
}

start() {
  [ -f "$P/prosody.cfg.lua" ] && [ -f "$E/ejabberd.yml" ] || { log "run setup first"; return 1; }
  rm -f "$STATE"
  start_prosody
  start_ejabberd
  python3 "$HERE/wait_xmpp.py" "$PROSODY_PORT" "$DOMAIN" 30 "$(cat "$P/launched.pid")" \
    || failed prosody "$P/prosody.log"
  python3 "$HERE/wait_xmpp.py" "$EJABBERD_PORT" "$DOMAIN" 60 "$(cat "$E/launched.pid")" \
    || failed ejabberd "$E/logs/ejabberd.log"
  local token
  token=$(ejabberd_accounts)
  [ -n "$token" ] || { log "ejabberd issued no OAuth token"; return 1; }
  cat > "$STATE.tmp" <<EOF
PEERS=$PEERS
DOMAIN=$DOMAIN
CA=$PEERS/certs/ca.pem
PING_INTERVAL=$PING_INTERVAL
PROSODY_PORT=$PROSODY_PORT
PROSODY_TLS_PORT=$PROSODY_TLS_PORT
PROSODY_LOG=$P/prosody.log
PROSODY_PID=$(cat "$P/launched.pid")
EJABBERD_PORT=$EJABBERD_PORT
EJABBERD_TLS_PORT=$EJABBERD_TLS_PORT
EJABBERD_LOG=$E/logs/ejabberd.log
EJABBERD_PID=$(cat "$E/ejabberd.pid")
EJABBERD_OAUTH_TOKEN=$token
EOF
  mv "$STATE.tmp" "$STATE"
  log "prosody pid $(cat "$P/launched.pid"), ejabberd (beam.smp) pid $(cat "$E/ejabberd.pid"); state in $STATE"
}

wait_gone() {  # NAME PID: wait up to 10 s for a process we signalled, then SIGKILL it
  local name=$1 pid=$2
  for _ in $(seq 100); do alive "$pid" || return 0; sleep 0.1; done
  log "$name (pid $pid) still alive after 10 s, SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

stop() {
  rm -f "$STATE"
  local prosody ejabberd wrapper pid
  prosody=$(pid_in "$P/launched.pid")
  ejabberd=$(pid_in "$E/ejabberd.pid")
  wrapper=$(pid_in "$E/launched.pid")   # ejabberdctl's su wrapper; it ends with the server
  for pid in $prosody $ejabberd; do kill -TERM "$pid" 2>/dev/null || true; done
  [ -z "$prosody" ] || wait_gone prosody "$prosody"
  [ -z "$ejabberd" ] || wait_gone ejabberd "$ejabberd"
  [ -z "$wrapper" ] || wait_gone "ejabberd wrapper" "$wrapper"
  rm -f "$P/launched.pid" "$P/prosody.pid" "$E/launched.pid" "$E/ejabberd.pid"
  log "stopped"
}

status() {
  local rc=0
  if alive "$(pid_in "$P/launched.pid")" && python3 "$HERE/wait_xmpp.py" "$PROSODY_PORT" "$DOMAIN" 2 >/dev/null; then
    echo "prosody: running, pid $(cat "$P/launched.pid"), ports $PROSODY_PORT/$PROSODY_TLS_PORT"
  else
    echo "prosody: not running"; rc=1
  fi
  if alive "$(pid_in "$E/ejabberd.pid")" && python3 "$HERE/wait_xmpp.py" "$EJABBERD_PORT" "$DOMAIN" 2 >/dev/null; then
    echo "ejabberd: running, pid $(cat "$E/ejabberd.pid"), ports $EJABBERD_PORT/$EJABBERD_TLS_PORT"
  else
    echo "ejabberd: not running"; rc=1
  fi
  [ -f "$STATE" ] && echo "state: $STATE" || echo "state: none"
  return $rc
}

case "${1:-}" in
  install|setup|start|stop|status) "$1" ;;
  *) echo "usage: [PEERS=dir] $0 install|setup|start|stop|status" >&2; exit 2 ;;
esac

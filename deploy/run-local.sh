#!/usr/bin/env bash
# Try the multi-process deployment on one machine: K app processes behind nginx, one database.
#
#   deploy/run-local.sh [K] [app.py flags...]        e.g.  deploy/run-local.sh 2 --model tiny
#
# Starts `python app.py --port 7861 ... 786K` (flags passed through; RELAY_DB picks the database,
# a SQLite file or a postgresql:// URL) and Debian's nginx with deploy/nginx.conf on
# http://127.0.0.1:8080/, in the foreground. Ctrl-C (or SIGTERM) stops all of them.
# Environment: PYTHON (default .venv/bin/python), PORT (proxy, 8080), HOST (proxy address,
# 127.0.0.1), BASE_PORT (first app, 7861), RUN_DIR (logs and nginx files, ./relay-data/run-local).
set -euo pipefail
cd "$(dirname "$0")/.."

K=${1:-2}
[ $# -gt 0 ] && shift
case "$K" in ''|*[!0-9]*|0) echo "usage: deploy/run-local.sh [K>=1] [app.py flags...]" >&2; exit 2 ;; esac
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
PORT=${PORT:-8080}
HOST=${HOST:-127.0.0.1}
BASE_PORT=${BASE_PORT:-7861}
RUN_DIR=${RUN_DIR:-relay-data/run-local}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "error: nginx is not installed (apt-get install nginx)" >&2; exit 2; }

mkdir -p "$RUN_DIR/tmp"
RUN_DIR=$(cd "$RUN_DIR" && pwd)
pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

wait_port() {  # wait_port PORT PID WHAT [HOST]: until something listens on HOST:PORT (default 127.0.0.1)
  for _ in $(seq 1 1200); do
    if (exec 3<>"/dev/tcp/${4:-127.0.0.1}/$1") 2>/dev/null; then return 0; fi
    kill -0 "$2" 2>/dev/null || { echo "error: $3 exited; see its log in $RUN_DIR" >&2; return 1; }
    sleep 0.25
  done
  echo "error: $3 did not start within 5 minutes; see $RUN_DIR" >&2; return 1
}

ports=()
for i in $(seq 1 "$K"); do
  port=$((BASE_PORT + i - 1))
  ports+=("$port")
  "$PYTHON" app.py "$@" --host 127.0.0.1 --port "$port" >"$RUN_DIR/app-$i.log" 2>&1 &
  pids+=($!)
  echo "app $i: http://127.0.0.1:$port/ (pid $!, log $RUN_DIR/app-$i.log)"
  # With --model tiny the first process builds the tiny model's cache folder; the others then
  # reuse it instead of racing to build it. Otherwise all start at once.
  if [ "$i" -eq 1 ] && [[ " $* " == *" tiny "* || " $* " == *"=tiny "* || "${RELAY_MODEL:-}" == tiny ]]; then
    wait_port "$port" "${pids[0]}" "app 1"
  fi
done
for i in $(seq 1 "$K"); do wait_port "${ports[$((i - 1))]}" "${pids[$((i - 1))]}" "app $i"; done

# deploy/nginx.conf with our app ports and listen address; wrapped in a main config that keeps
# every nginx file under RUN_DIR (no /etc, no /var, no system service).
PORTS="${ports[*]}" LISTEN="$HOST:$PORT" awk '
  /^upstream relay_apps/ { inside = 1 }
  inside && /^[ \t]*server[ \t]/ {
    if (!done) {
      n = split(ENVIRON["PORTS"], ps, " ")
      for (i = 1; i <= n; i++) { line = $0; sub(/[^ \t]+:[0-9]+/, "127.0.0.1:" ps[i], line); print line }
      done = 1
    }
    next
  }
  inside && /^}/ { inside = 0 }
  /^[ \t]*listen[ \t]/ && !listened { sub(/listen[ \t]+[^;]+;/, "listen " ENVIRON["LISTEN"] ";"); listened = 1 }
  { print }
' deploy/nginx.conf >"$RUN_DIR/relay.conf"
user=""
[ "$(id -u)" -eq 0 ] && user="user root;"  # workers as nobody could not enter a 0700 home folder
cat >"$RUN_DIR/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $RUN_DIR/nginx.pid;
error_log $RUN_DIR/nginx-error.log warn;
$user
events { worker_connections 1024; }
http {
    access_log $RUN_DIR/nginx-access.log;
    client_body_temp_path $RUN_DIR/tmp/client_body;
    proxy_temp_path $RUN_DIR/tmp/proxy;
    fastcgi_temp_path $RUN_DIR/tmp/fastcgi;
    uwsgi_temp_path $RUN_DIR/tmp/uwsgi;
    scgi_temp_path $RUN_DIR/tmp/scgi;
    include $RUN_DIR/relay.conf;
}
EOF
"$NGINX" -p "$RUN_DIR" -e "$RUN_DIR/nginx-error.log" -c "$RUN_DIR/nginx.conf" &
pids+=($!)
wait_port "$PORT" "$!" "nginx" "${HOST/#0.0.0.0/127.0.0.1}"
echo "Relay: http://$HOST:$PORT/ ($K app processes behind nginx; Ctrl-C stops everything)"
wait -n "${pids[@]}" || true
echo "a process exited; stopping the others (logs in $RUN_DIR)" >&2
exit 1

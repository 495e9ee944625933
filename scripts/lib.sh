# Shared helpers for kvsim's shell scripts: find the binary, start a throwaway server on free
# ports, wait for a leader, read status fields, clean up. Source it; do not run it.

# The binary: $KVSIM if set; else the newer of this checkout's release and debug builds (so
# the scripts work right after `make server`, which builds the release one); else one built
# now with `cargo build --release`.
KVSIM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${KVSIM:-}" ]; then
  for candidate in "$KVSIM_ROOT/target/release/kvsim" "$KVSIM_ROOT/target/debug/kvsim"; do
    if [ -x "$candidate" ] && { [ -z "${KVSIM:-}" ] || [ "$candidate" -nt "$KVSIM" ]; }; then
      KVSIM="$candidate"
    fi
  done
fi
if [ -z "${KVSIM:-}" ]; then
  echo "no kvsim build found in $KVSIM_ROOT/target; building one (cargo build --release)" >&2
  (cd "$KVSIM_ROOT" && cargo build --release) >&2 || {
    echo "could not build kvsim; build it with 'cargo build' or set KVSIM" >&2
    exit 2
  }
  KVSIM="$KVSIM_ROOT/target/release/kvsim"
fi
if [ ! -x "$KVSIM" ]; then
  echo "kvsim binary not found at $KVSIM (build it with 'cargo build' or set KVSIM)" >&2
  exit 2
fi

SERVER_PID=""
SERVER_DIR=""

stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
  if [ -n "$SERVER_DIR" ]; then
    rm -rf "$SERVER_DIR"
    SERVER_DIR=""
  fi
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Starts `kvsim server` on three free consecutive ports in a temp dir; sets TARGET to node 1.
start_server() {
  SERVER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kvsim-script.XXXXXX")
  local base
  for _ in $(seq 1 50); do
    base=$((20000 + RANDOM % 10000))
    if ! port_in_use "$base" && ! port_in_use $((base + 1)) && ! port_in_use $((base + 2)); then
      break
    fi
  done
  "$KVSIM" server --data-dir-root "$SERVER_DIR" --base-port "$base" --tick-ms 50 \
    >"$SERVER_DIR/server.log" 2>&1 &
  SERVER_PID=$!
  TARGET="127.0.0.1:$base"
}

# Starts `kvsim server --mode dynamo` with $NODES nodes (default 5) on free consecutive ports
# in a temp dir, with any extra flags given; sets TARGET to node 1 and BASE to its port, and
# waits until every node answers.
start_dynamo_server() {
  local nodes=${NODES:-5} port ok
  SERVER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kvsim-script.XXXXXX")
  for _ in $(seq 1 50); do
    BASE=$((20000 + RANDOM % 10000))
    ok=1
    for port in $(seq "$BASE" $((BASE + nodes - 1))); do
      if port_in_use "$port"; then ok=0; fi
    done
    [ $ok = 1 ] && break
  done
  "$KVSIM" server --mode dynamo --nodes "$nodes" --data-dir-root "$SERVER_DIR" --base-port "$BASE" "$@" \
    >"$SERVER_DIR/server.log" 2>&1 &
  SERVER_PID=$!
  TARGET="127.0.0.1:$BASE"
  local deadline=$((SECONDS + 20))
  for port in $(seq "$BASE" $((BASE + nodes - 1))); do
    until [ "$(status_field "127.0.0.1:$port" running)" = "True" ]; do
      [ $SECONDS -lt $deadline ] || {
        echo "node on port $port did not start within 20 s" >&2
        tail -20 "$SERVER_DIR/server.log" >&2
        return 1
      }
      sleep 0.1
    done
  done
}

# Prints a field of a node's status JSON: status_field ADDR FIELD
status_field() {
  "$KVSIM" status --target-addr "$1" --output json 2>/dev/null |
    python3 -c "import json,sys; v=json.load(sys.stdin).get('$2'); print('' if v is None else v)" 2>/dev/null ||
    true
}

# Waits (up to 20 s) until the node at $1 knows a leader; sets LEADER to the leader's address.
wait_for_leader() {
  local deadline=$((SECONDS + 20))
  LEADER=""
  while [ $SECONDS -lt $deadline ]; do
    LEADER=$(status_field "$1" leader_addr)
    [ -n "$LEADER" ] && return 0
    sleep 0.1
  done
  echo "no leader elected within 20 s" >&2
  [ -n "$SERVER_DIR" ] && tail -20 "$SERVER_DIR/server.log" >&2
  return 1
}

# Prints the addresses of every node, one per line, as listed by the node at $1.
node_addrs() {
  "$KVSIM" status --target-addr "$1" --output json |
    python3 -c "import json,sys; [print(n['addr']) for n in json.load(sys.stdin)['nodes']]"
}

# Quotes one argument for display the way a person would type it.
quote() {
  if [[ "$1" =~ ^[A-Za-z0-9_.:/=@%+,-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

# Echoes a kvsim command, then runs it.
show() {
  local line="\$ kvsim" arg
  for arg in "$@"; do line+=" $(quote "$arg")"; done
  echo "$line"
  "$KVSIM" "$@"
}

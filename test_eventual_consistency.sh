#!/usr/bin/env bash
# Eventual consistency, step by step: write through the leader, read a follower at once (it
# may still hold the old value), wait for it to catch up, and check every node agrees.
#
#   ./test_eventual_consistency.sh               # starts its own server on free ports
#   ./test_eventual_consistency.sh HOST:PORT     # uses a running server (any node)
#
# Exits non-zero if the nodes do not converge within 10 seconds.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/lib.sh
trap stop_server EXIT

if [ $# -ge 1 ]; then
  TARGET="$1"
else
  start_server
  echo "started a kvsim server in $SERVER_DIR (node 1 at $TARGET)"
fi
wait_for_leader "$TARGET"
FOLLOWER=$(node_addrs "$TARGET" | grep -v -x "$LEADER" | head -1)
echo "leader:   $LEADER"
echo "follower: $FOLLOWER"
echo

TABLE=ConsistencyTest
echo "==> 1. Create table $TABLE (if it does not exist)"
if ! "$KVSIM" describe-table --target-addr "$LEADER" --table-name "$TABLE" >/dev/null 2>&1; then
  "$KVSIM" create-table --target-addr "$LEADER" --table-name "$TABLE" --partition-key-name id --output json >/dev/null
  echo "created $TABLE"
else
  echo "$TABLE already exists"
fi

VALUE="v-$(date +%s%N)"
echo
echo "==> 2. Write value $VALUE through the leader"
show put-item --target-addr "$LEADER" --table-name "$TABLE" --item-data "{\"id\":\"demo\",\"value\":\"$VALUE\"}"

read_value() {
  "$KVSIM" get-item --target-addr "$1" --table-name "$TABLE" --partition-key demo --output json 2>/dev/null |
    python3 -c "import json,sys; print(json.load(sys.stdin).get('value',''))" 2>/dev/null || true
}

echo
echo "==> 3. Read the follower at once (eventually consistent: may be stale)"
FIRST=$(read_value "$FOLLOWER")
if [ "$FIRST" = "$VALUE" ]; then
  echo "follower already has the new value: $FIRST"
else
  echo "follower returned a stale value: '${FIRST:-<no item>}'"
fi

echo
echo "==> 4. Read the follower again until it has the new value"
START=$SECONDS
DEADLINE=$((SECONDS + 10))
while [ "$(read_value "$FOLLOWER")" != "$VALUE" ]; do
  if [ $SECONDS -ge $DEADLINE ]; then
    echo "FAIL: the follower did not converge within 10 s" >&2
    exit 1
  fi
  sleep 0.05
done
echo "follower now returns $VALUE (after ~$((SECONDS - START)) s)"

echo
echo "==> 5. Check that every node agrees"
FAILED=0
for addr in $(node_addrs "$TARGET"); do
  DEADLINE=$((SECONDS + 10))
  GOT=$(read_value "$addr")
  while [ "$GOT" != "$VALUE" ] && [ $SECONDS -lt $DEADLINE ]; do
    sleep 0.05
    GOT=$(read_value "$addr")
  done
  if [ "$GOT" = "$VALUE" ]; then
    echo "  $addr: $GOT"
  else
    echo "  $addr: '${GOT:-<no item>}' (expected $VALUE)"
    FAILED=1
  fi
done
echo
if [ $FAILED -ne 0 ]; then
  echo "FAIL: the nodes did not converge" >&2
  exit 1
fi
echo "PASS: all nodes converged on $VALUE"

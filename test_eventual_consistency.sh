#!/usr/bin/env bash
# Eventual consistency, step by step, and by design rather than by luck: delay one follower,
# write through the leader, read the follower at once (stale), read with --consistent (fresh),
# heal, and watch the follower converge; finally check every node agrees.
#
#   ./test_eventual_consistency.sh               # starts its own server on free ports
#   ./test_eventual_consistency.sh HOST:PORT     # uses a running server (any node)
#   ./test_eventual_consistency.sh --mode dynamo # the same walk on a leaderless cluster
#
# In --mode dynamo (three nodes, every key on all three: N=3, R=2, W=2) there is no leader:
# the delayed node is cut off long enough to be suspected, answers reads from its own replica
# alone (stale), a consistent read at a reachable node asks every live replica (fresh), and
# after healing, read repair and anti-entropy bring the delayed node up to date.
#
# Exits non-zero if a step does not behave as described.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/lib.sh

# Against a server it did not start, leave it as found: heal the delay this script set (if a
# step failed before healing) and drop the table it created.
TABLE=ConsistencyTest
DELAY_SET=0
CREATED_TABLE=0
cleanup() {
  if [ -z "$SERVER_PID" ]; then
    if [ "$DELAY_SET" = 1 ]; then
      "$KVSIM" fault heal --target-addr "$TARGET" >/dev/null 2>&1 || true
    fi
    if [ "$CREATED_TABLE" = 1 ]; then
      "$KVSIM" delete-table --target-addr "$TARGET" --table-name "$TABLE" >/dev/null 2>&1 || true
    fi
  fi
  stop_server
}
trap cleanup EXIT

MODE=raft
if [ "${1:-}" = "--mode" ]; then
  MODE="${2:-}"
  [ "$MODE" = raft ] || [ "$MODE" = dynamo ] || { echo "--mode must be raft or dynamo, got '$MODE'" >&2; exit 2; }
  shift 2
fi
if [ "$MODE" = dynamo ]; then
  NODES=3 start_dynamo_server --replicas 3 --read-quorum 2 --write-quorum 2
  echo "started a kvsim server --mode dynamo in $SERVER_DIR (node 1 at $TARGET)"
  # No leader: node 1 takes the writes, node 3 is the one delayed.
  LEADER="$TARGET"
  FOLLOWER="127.0.0.1:$((BASE + 2))"
  FOLLOWER_ID=3
  echo "writes through: $LEADER (node 1; any node would do)"
  echo "delayed node:   $FOLLOWER (node 3)"
else
  if [ $# -ge 1 ]; then
    TARGET="$1"
  else
    start_server
    echo "started a kvsim server in $SERVER_DIR (node 1 at $TARGET)"
  fi
  wait_for_leader "$TARGET"
  FOLLOWER=$(node_addrs "$TARGET" | grep -v -x "$LEADER" | head -1)
  FOLLOWER_ID=$(status_field "$FOLLOWER" node_id)
  echo "leader:   $LEADER"
  echo "follower: $FOLLOWER (node $FOLLOWER_ID)"
fi

echo
echo "==> 1. Create table $TABLE (if it does not exist) and write an old value"
if ! "$KVSIM" describe-table --target-addr "$LEADER" --table-name "$TABLE" >/dev/null 2>&1; then
  "$KVSIM" create-table --target-addr "$LEADER" --table-name "$TABLE" --partition-key-name id --output json >/dev/null
  CREATED_TABLE=1
  echo "created $TABLE"
fi
OLD="old-$(date +%s%N)"
show put-item --target-addr "$LEADER" --table-name "$TABLE" --item-data "{\"id\":\"demo\",\"value\":\"$OLD\"}"

read_value() { # read_value ADDR [--consistent]
  "$KVSIM" get-item --target-addr "$1" --table-name "$TABLE" --partition-key demo --output json "${@:2}" 2>/dev/null |
    python3 -c "import json,sys; print(json.load(sys.stdin).get('value',''))" 2>/dev/null || true
}
wait_for_value() { # wait_for_value ADDR VALUE: polls for up to 10 s
  local deadline=$((SECONDS + 10))
  while [ "$(read_value "$1")" != "$2" ]; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.05
  done
}
wait_for_value "$FOLLOWER" "$OLD" || { echo "FAIL: the follower never got the old value" >&2; exit 1; }

echo
# A minute: no loaded machine takes that long to reach step 4, and step 6's heal ends the
# delay at once, so the stale read is certain rather than a race against a clock.
echo "==> 2. Delay every message to and from the follower by 60 seconds (until step 6 heals it)"
DELAY_SET=1
show fault delay --node "$FOLLOWER_ID" --ms 60000 --target-addr "$LEADER"
if [ "$MODE" = dynamo ]; then
  # Leaderless: wait until the delayed node has given up on the others (suspects them), so it
  # answers from its own replica alone; the others go on without it.
  DEADLINE=$((SECONDS + 20))
  until [ "$("$KVSIM" status --target-addr "$FOLLOWER" --output json |
    python3 -c "import json,sys; print(sorted(json.load(sys.stdin)['suspected']))")" = "[1, 2]" ]; do
    [ $SECONDS -lt $DEADLINE ] || { echo "FAIL: the delayed node never suspected the others" >&2; exit 1; }
    sleep 0.1
  done
  echo "node $FOLLOWER_ID suspects nodes 1 and 2: it is on its own"
fi

NEW="new-$(date +%s%N)"
echo
echo "==> 3. Write a new value through $([ "$MODE" = dynamo ] && echo "node 1" || echo "the leader")"
show put-item --target-addr "$LEADER" --table-name "$TABLE" --item-data "{\"id\":\"demo\",\"value\":\"$NEW\"}"

echo
echo "==> 4. Read the follower at once (eventually consistent)"
GOT=$(read_value "$FOLLOWER")
echo "follower returned: $GOT"
if [ "$GOT" != "$OLD" ]; then
  echo "FAIL: expected the stale value $OLD from the delayed follower" >&2
  exit 1
fi
echo "stale, as expected: the new value has not reached the follower yet"

echo
if [ "$MODE" = dynamo ]; then
  # The delayed node can reach no other replica: even a consistent read there has only its
  # own. A consistent read at a reachable node asks every live replica.
  CONSISTENT_AT="127.0.0.1:$((BASE + 1))"
  echo "==> 5. Read with --consistent at node 2 (asks every live replica of the key)"
else
  CONSISTENT_AT="$FOLLOWER"
  echo "==> 5. Read the same follower with --consistent (goes to the leader)"
fi
GOT=$(read_value "$CONSISTENT_AT" --consistent)
echo "consistent read returned: $GOT"
[ "$GOT" = "$NEW" ] || { echo "FAIL: a consistent read must return $NEW" >&2; exit 1; }

echo
echo "==> 6. Heal the network and watch the follower converge"
show fault heal --target-addr "$LEADER"
DELAY_SET=0
START=$SECONDS
wait_for_value "$FOLLOWER" "$NEW" || { echo "FAIL: the follower did not converge within 10 s" >&2; exit 1; }
echo "follower now returns $NEW (after ~$((SECONDS - START)) s)"

echo
echo "==> 7. Check that every node agrees"
FAILED=0
for addr in $(node_addrs "$TARGET"); do
  if wait_for_value "$addr" "$NEW"; then
    echo "  $addr: $NEW"
  else
    echo "  $addr: '$(read_value "$addr")' (expected $NEW)"
    FAILED=1
  fi
done
echo
[ $FAILED -eq 0 ] || { echo "FAIL: the nodes did not converge" >&2; exit 1; }
echo "PASS: stale read shown, consistent read fresh, all nodes converged on $NEW"

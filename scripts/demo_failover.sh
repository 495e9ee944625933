#!/usr/bin/env bash
# Failover, end to end, against a fresh server on free ports: crash the leader, watch a new
# leader get elected in a newer term, keep writing, restart the old leader and watch it catch
# up. Stops the server at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
trap stop_server EXIT

start_server
wait_for_leader "$TARGET"
step() { echo; echo "# $*"; }

LEADER_ID=$(status_field "$LEADER" node_id)
OLD_TERM=$(status_field "$LEADER" term)
OTHER=$(node_addrs "$TARGET" | grep -v -x "$LEADER" | head -1)
echo "# kvsim server running in $SERVER_DIR"

step "1. The cluster, and some data"
show status --target-addr "$OTHER" --all
show create-table --target-addr "$LEADER" --table-name Music --partition-key-name Artist --output json >/dev/null
show put-item --target-addr "$LEADER" --table-name Music --item-data '{"Artist":"Queen","Year":1975}'

step "2. Crash the leader (node $LEADER_ID)"
show fault crash --node "$LEADER_ID" --target-addr "$OTHER"

step "3. Wait for a new leader in a newer term"
DEADLINE=$((SECONDS + 15))
while :; do
  NEW=$(status_field "$OTHER" leader_addr)
  TERM=$(status_field "$OTHER" term)
  if [ -n "$NEW" ] && [ "$NEW" != "$LEADER" ] && [ "${TERM:-0}" -gt "$OLD_TERM" ]; then break; fi
  [ $SECONDS -lt $DEADLINE ] || { echo "no new leader within 15 s" >&2; exit 1; }
  sleep 0.1
done
show status --target-addr "$OTHER" --all

step "4. Writes carry on through the new leader"
show put-item --target-addr "$OTHER" --table-name Music --item-data '{"Artist":"Journey","Year":1983}'

step "5. Restart the old leader; it rejoins as a follower and catches up"
show fault restart --node "$LEADER_ID" --target-addr "$OTHER"
DEADLINE=$((SECONDS + 15))
until [ "$(status_field "$LEADER" applied_index)" = "$(status_field "$NEW" commit_index)" ] &&
  [ "$(status_field "$LEADER" role)" = "follower" ]; do
  [ $SECONDS -lt $DEADLINE ] || { echo "the old leader did not catch up within 15 s" >&2; exit 1; }
  sleep 0.1
done
show status --target-addr "$OTHER" --all
show get-item --target-addr "$LEADER" --table-name Music --partition-key Journey

step "6. What happened, from every node's event log"
show events --target-addr "$OTHER"

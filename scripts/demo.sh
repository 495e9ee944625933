#!/usr/bin/env bash
# The seed's demo scenario, end to end, against a fresh server on free ports, which it stops
# at the end: create a table, write two songs, read them from the leader and from a follower,
# query, delete, drop the table.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
trap stop_server EXIT

start_server
wait_for_leader "$TARGET"
FOLLOWER=$(node_addrs "$TARGET" | grep -v -x "$LEADER" | head -1)
echo "# kvsim server running in $SERVER_DIR; leader $LEADER, a follower $FOLLOWER"
echo

step() { echo; echo "# $*"; }

step "2. Create the Music table"
show create-table --target-addr "$LEADER" --table-name Music --partition-key-name Artist --sort-key-name SongTitle

step "3. Put two items"
show put-item --target-addr "$LEADER" --table-name Music \
  --item-data '{"Artist":"The Beatles","SongTitle":"Let It Be","Album":"Let It Be","Year":1970}'
show put-item --target-addr "$LEADER" --table-name Music \
  --item-data '{"Artist":"Queen","SongTitle":"Bohemian Rhapsody","Album":"A Night at the Opera","Year":1975}'

step "4. Get an item from the leader"
show get-item --target-addr "$LEADER" --table-name Music --partition-key "The Beatles" --sort-key "Let It Be"

step "5. Get an item from a follower (eventually consistent: wait until it has replicated)"
DEADLINE=$((SECONDS + 10))
until "$KVSIM" get-item --target-addr "$FOLLOWER" --table-name Music --partition-key Queen \
  --sort-key "Bohemian Rhapsody" >/dev/null 2>&1; do
  [ $SECONDS -lt $DEADLINE ] || { echo "the follower never got the item" >&2; exit 1; }
  sleep 0.05
done
show get-item --target-addr "$FOLLOWER" --table-name Music --partition-key Queen --sort-key "Bohemian Rhapsody"

step "6. Query The Beatles"
show query-items --target-addr "$LEADER" --table-name Music --partition-key "The Beatles"

step "7. Delete Let It Be"
show delete-item --target-addr "$LEADER" --table-name Music --partition-key "The Beatles" --sort-key "Let It Be"

step "8. Delete the table"
show delete-table --target-addr "$LEADER" --table-name Music

step "The cluster"
show status --target-addr "$LEADER" --all

step "9. Stop the server"
stop_server
echo "stopped"

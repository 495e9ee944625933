#!/usr/bin/env bash
# The leaderless engine, end to end, against a fresh five-node `--mode dynamo` server on free
# ports: partition the cluster, write one item on both sides, watch both sides answer with
# their own version, heal, watch the conflict detected and merged and every node agree; then
# crash a node, write, see the hints its stand-ins keep, restart it and see them handed back.
# Every step is checked; the script fails if the cluster does not behave so.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
trap stop_server EXIT

start_dynamo_server --merger vector
N() { echo "127.0.0.1:$((BASE + $1 - 1))"; }
step() { echo; echo "# $*"; }
fail() { echo "demo-dynamo: $*" >&2; exit 1; }
# get_json NODE PK: the item Acme/PK as node NODE reads it, with its clock, as JSON.
get_json() {
  "$KVSIM" get-item --target-addr "$(N "$1")" --table-name Music --partition-key Acme \
    --sort-key "$2" --show-version --output json
}
# field JSON EXPR: a Python expression over the parsed JSON `d`.
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($2)" <<<"$1"; }
# Waits (up to 20 s) until every node in "$1" (ids) suspects exactly the ids in "$2".
wait_suspects() {
  local deadline=$((SECONDS + 20)) n want
  want=$(echo "$2" | tr ' ' '\n' | sort -n | tr '\n' ' ')
  for n in $1; do
    until [ "$("$KVSIM" status --target-addr "$(N "$n")" --output json |
      python3 -c "import json,sys; print(' '.join(map(str, sorted(json.load(sys.stdin)['suspected']))) + ' ')")" = "$want" ]; do
      [ $SECONDS -lt $deadline ] || fail "node $n does not suspect [$2] within 20 s"
      sleep 0.1
    done
  done
}
hints_total() {
  local total=0 n h
  for n in 1 2 3 4 5; do
    h=$("$KVSIM" status --target-addr "$(N "$n")" --output json |
      python3 -c "import json,sys; print(sum(json.load(sys.stdin).get('hints', {}).values()))")
    total=$((total + h))
  done
  echo "$total"
}
echo "# kvsim server --mode dynamo running in $SERVER_DIR"

step "1. Five leaderless nodes: any node takes any request"
show status --target-addr "$TARGET" --all
show create-table --target-addr "$(N 1)" --table-name Music --partition-key-name Artist \
  --sort-key-name Song --output json >/dev/null
show put-item --target-addr "$(N 2)" --table-name Music --item-data-typed \
  --item-data '{"Artist":{"S":"Acme"},"Song":{"S":"Hello"},"Tags":{"SS":["pop"]}}'

step "2. Partition the network: nodes 1,2 | nodes 3,4,5"
show fault partition 1,2 3,4,5 --target-addr "$TARGET"
wait_suspects "1 2" "3 4 5"
wait_suspects "3 4 5" "1 2"
show status --target-addr "$TARGET" --all

step "3. Write the same item on both sides: both are accepted (Raft would refuse the minority)"
show put-item --target-addr "$(N 1)" --table-name Music --item-data-typed \
  --item-data '{"Artist":{"S":"Acme"},"Song":{"S":"Hello"},"Tags":{"SS":["pop","left"]},"Left":{"N":"1"}}'
show put-item --target-addr "$(N 4)" --table-name Music --item-data-typed \
  --item-data '{"Artist":{"S":"Acme"},"Song":{"S":"Hello"},"Tags":{"SS":["pop","right"]},"Right":{"N":"2"}}'
show get-item --target-addr "$(N 2)" --table-name Music --partition-key Acme --sort-key Hello --show-version
show get-item --target-addr "$(N 5)" --table-name Music --partition-key Acme --sort-key Hello --show-version
LEFT=$(get_json 2 Hello)
RIGHT=$(get_json 5 Hello)
[ "$(field "$LEFT" "d['item'].get('Left')")" = "1" ] || fail "the left side does not answer its own write: $LEFT"
[ "$(field "$RIGHT" "d['item'].get('Right')")" = "2" ] || fail "the right side does not answer its own write: $RIGHT"
[ "$(field "$LEFT" "'Right' in d['item']")" = "False" ] || fail "the left side saw the right's write through a partition"

step "4. Heal: the conflict is detected, merged by the vector merger, and every node agrees"
show fault heal --target-addr "$TARGET"
DEADLINE=$((SECONDS + 20))
for n in 1 2 3 4 5; do
  until [ "$(field "$(get_json "$n" Hello)" "(d['item'].get('Left'), d['item'].get('Right'), sorted(d['item'].get('Tags', [])), d['merged'])")" = "(1, 2, ['left', 'pop', 'right'], 2)" ]; do
    [ $SECONDS -lt $DEADLINE ] || fail "node $n does not answer the merged item within 20 s: $(get_json "$n" Hello)"
    sleep 0.2
  done
done
show get-item --target-addr "$(N 3)" --table-name Music --partition-key Acme --sort-key Hello --show-version

step "5. Crash node 5 and write: its stand-ins keep hints for it"
show fault crash --node 5 --target-addr "$TARGET"
wait_suspects "1 2 3 4" "5"
# Each artist is a partition with its own three owners: write songs of new artists until
# one of them belongs to node 5 (three in five do).
WROTE=0
until [ "$(hints_total)" -gt 0 ]; do
  WROTE=$((WROTE + 1))
  [ $WROTE -le 40 ] || fail "no node keeps a hint for the crashed node after 40 writes"
  "$KVSIM" put-item --target-addr "$(N 1)" --table-name Music \
    --item-data "{\"Artist\":\"Band $WROTE\",\"Song\":\"Hit\"}" >/dev/null
done
echo "(wrote $WROTE songs of new artists through node 1, until one belonged to node 5)"
show status --target-addr "$TARGET" --all

step "6. Restart node 5: the hints are handed back to it"
show fault restart --node 5 --target-addr "$TARGET"
DEADLINE=$((SECONDS + 20))
until [ "$(hints_total)" = 0 ]; do
  [ $SECONDS -lt $DEADLINE ] || fail "hints are not handed back within 20 s"
  sleep 0.2
done
show status --target-addr "$TARGET" --all
show scan --target-addr "$(N 5)" --table-name Music

step "7. What happened, from every node's event log"
"$KVSIM" events --target-addr "$TARGET" >"$SERVER_DIR/events.txt"
grep -E "conflict_detected|hint_stored|hint_handed_off|suspicion_refuted" "$SERVER_DIR/events.txt" | tail -12
grep -q conflict_detected "$SERVER_DIR/events.txt" || fail "no conflict_detected event"
grep -q hint_handed_off "$SERVER_DIR/events.txt" || fail "no hint_handed_off event"
echo
echo "demo-dynamo: every step behaved as expected"

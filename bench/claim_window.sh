#!/bin/bash
# Claimed, not started (docs/architecture.md): SIGKILL random workers of `worker start --count 2`
# running no-op jobs, then compare what the database counted with what the jobs did. Each job's
# only act is to append "<id> <attempt>" to a file, so a "worker lost" run without that line is an
# attempt counted for a job that never started, and a job its supervisor released that has more
# lines than its attempts ran without its attempt counted.
#
#   bench/claim_window.sh [rounds=5] [jobs=20000] [kills=60]     (needs the sqlite3 program)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${1:-5} N=${2:-20000} KILLS=${3:-60}
Q=(deno run --allow-read --allow-write --allow-env --allow-run --allow-net --allow-sys=hostname,uid "$ROOT/src/main.ts")
echo "rounds=$ROUNDS jobs=$N kills=$KILLS load $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
  D=$(mktemp -d); export QUEUECTL_DB=$D/q.db
  for kv in "lease 1" "backoff_base 1" "max_retries 50"; do "${Q[@]}" config set $kv >/dev/null; done
  for i in $(seq "$N"); do
    printf '{"id":"j%s","command":"printf \\"%%s %%s\\\\n\\" \\"$QUEUECTL_JOB_ID\\" \\"$QUEUECTL_ATTEMPT\\" >> %s/started"}\n' "$i" "$D"
  done > "$D/jobs.jsonl"
  "${Q[@]}" enqueue --file "$D/jobs.jsonl" >/dev/null || exit 1
  "${Q[@]}" worker start --count 2 --until-empty --log "$D/w.log" &
  SUP=$!
  sleep 1.5
  for _ in $(seq "$KILLS"); do
    v=$(sqlite3 "$QUEUECTL_DB" "select pid from workers where supervisor_id is not null" 2>/dev/null | shuf -n1)
    [ -n "$v" ] && kill -9 "$v" 2>/dev/null
    sleep "0.$((RANDOM % 5 + 3))"
  done
  wait $SUP
  sqlite3 "$QUEUECTL_DB" "select job_id||' '||attempt from job_runs where error like 'worker lost%'" | sort > "$D/lost"
  sort "$D/started" > "$D/started.sorted"
  released=$(grep -o '\] released j[0-9]*: ' "$D/w.log" | awk '{print $3}' | tr -d :)
  ran=0
  for j in $released; do
    a=$(sqlite3 "$QUEUECTL_DB" "select attempts from jobs where id='$j'")
    [ "$(grep -c "^$j " "$D/started")" -gt "$a" ] && ran=$((ran + 1))
  done
  echo "round $round: completed $(sqlite3 "$QUEUECTL_DB" "select count(*) from jobs where state='completed'")/$N," \
    "worker-lost runs $(wc -l < "$D/lost"), of which never started $(comm -23 "$D/lost" "$D/started.sorted" | wc -l);" \
    "released uncounted $(echo $released | wc -w), of which had run $ran"
  rm -rf "$D"
done

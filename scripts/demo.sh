#!/usr/bin/env bash
# The main job on its embedded default: builds bulkupsert, starts the server
# on a fresh data folder with a key pair it makes, imports the bundled sample
# (data/sample-contacts.csv) through rpc-cli, and shows each job's result.
# DEMO_DIR=... keeps the folder somewhere else; DEMO_FILE=... imports
# another CSV or NDJSON file.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target bulkupsertd rpc-cli >/dev/null

cli=build/tools/rpc-cli/rpc-cli
daemon=build/src/bulkupsertd
dir=${DEMO_DIR:-$(mktemp -d /tmp/bulkupsert-demo.XXXXXX)}
file=${DEMO_FILE:-data/sample-contacts.csv}
mkdir -p "$dir"
export BULKUPSERT_URL="ipc://$dir/bulkupsert.sock"

echo "== key pair"
rm -f "$dir/secret.key"
"$cli" keygen --secret "$dir/secret.key" --keyring "$dir/keyring"

echo "== server (data in $dir/data, log in $dir/server.log)"
"$daemon" --listen "$BULKUPSERT_URL" --data-dir "$dir/data" \
  --keyring "$dir/keyring" 2>"$dir/server.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true' EXIT

BULKUPSERT_TOKEN=$("$cli" token issue --secret "$dir/secret.key" --tenant demo \
  --perm DataSpace.Manage,DataSpace.Read --ttl 1h --sub demo)
export BULKUPSERT_TOKEN

# Ready when the server answers at all (an unknown job is a clean 404).
for _ in $(seq 1 100); do
  if "$cli" job get 00000000-0000-7000-8000-000000000000 2>&1 | grep -q NOT_FOUND; then
    break
  fi
  sleep 0.1
done

echo "== import $file"
# Streams the file in requests of 1000 records, waits for every job and
# prints the outcome counts; records that did not land go to errors.csv
# (exit status 3 when there are any).
rc=0
"$cli" import "$file" --wait --errors "$dir/errors.csv" --progress lines || rc=$?
if [ "$rc" -gt 3 ] || [ "$rc" -eq 1 ] || [ "$rc" -eq 2 ]; then
  exit "$rc"
fi
echo "(records that did not land: $dir/errors.csv)"

echo "== jobs"
"$cli" job list

echo "== the newest job"
newest=$("$cli" job list --limit 1 2>/dev/null | awk 'NR == 2 { print $1 }')
"$cli" job get "$newest" --json

#!/usr/bin/env bash
# A large attachment through the HTTP API, with the peak resident memory of each process:
# a client uploads SIZE MiB (default 1024) to `outsourcer serve`, a generic worker in its own
# process gets it as a file through a command handler and checks its SHA-256, then the client
# downloads it again and checks it. Prints figures; asserts nothing about time.
#
#   scripts/attachment-memory.sh [SIZE_MIB]
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-1024}

cargo build --release --quiet -p outsourcer -p outsourced-worker --bins
cargo build --release --quiet -p outsourced-examples --example attachment_client
BIN=target/release
CLIENT=$BIN/examples/attachment_client

DIR=$(mktemp -d)
trap 'kill "${SERVER:-0}" 2>/dev/null || true; rm -rf "$DIR"' EXIT
export OUTSOURCED_DATABASE_URL="sqlite://$DIR/outsourced.db"
export OUTSOURCED_KEY_FILE="$DIR/server.key"
out() { $BIN/outsourcer --json "$@"; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

out queue create big --unlimited >/dev/null
out worker create w1 >/dev/null
out queue hire big w1 >/dev/null
PRODUCER=$(out producer create bench)
out producer grant bench big >/dev/null
KEY=$(echo "$PRODUCER" | field consumer_key)
SECRET=$(echo "$PRODUCER" | field consumer_secret)

$BIN/outsourcer serve --bind 127.0.0.1:0 >"$DIR/serve.out" 2>"$DIR/serve.log" &
SERVER=$!
for _ in $(seq 1 100); do grep -q serving "$DIR/serve.out" 2>/dev/null && break; sleep 0.1; done
URL=$(awk '{print $2}' "$DIR/serve.out")

cat >"$DIR/checksum.sh" <<'SH'
#!/bin/sh
sha256sum "$OUTSOURCED_ATTACHMENT" | cut -d' ' -f1 > "$(dirname "$0")/worker-saw"
SH
chmod +x "$DIR/checksum.sh"
$BIN/outsourcer worker config w1 --url "$URL" -o "$DIR/w1.yml" >/dev/null
printf '\ncommands:\n  Checksum:\n    program: ./checksum.sh\n' >>"$DIR/w1.yml"

echo "# ${SIZE} MiB through $URL"
UP=$($CLIENT up "$URL" "$KEY" "$SECRET" big "$SIZE")
echo "$UP"
JOB=$(echo "$UP" | sed -E 's/^up: job ([0-9]+).*/\1/')
/usr/bin/time -f "worker: peak RSS %M KiB, %e s" $BIN/outsourced-worker --config "$DIR/w1.yml" --exit-on-complete 2>&1 >/dev/null | grep '^worker:'
echo "worker: its command saw SHA-256 $(cat "$DIR/worker-saw")"
$CLIENT down "$URL" "$KEY" "$SECRET" "$JOB"
SERVER_PEAK=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER/status")
echo "server: peak RSS ${SERVER_PEAK} KiB"
$BIN/outsourcer job show "$JOB" | grep -E 'state|attachment'

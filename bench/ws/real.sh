#!/usr/bin/env bash
# WebSocket load against a real `plaza serve` (issue 5): seeds users on a
# fresh SQLite database (or PLAZA_DATABASE_URL), logs them in for access
# tokens, creates the post the fan-out subscribers watch, then runs
# bench/ws against the server: memory per socket, fan-out to -fanout
# subscribers, chat at -chat-rate.
#
#   bench/ws/real.sh                      # 10,000 sockets, 1,000 subscribers, 500 msg/s
#   N=2000 USERS=250 bench/ws/real.sh     # quicker
#
# Everything listens on 127.0.0.1. Output in $OUT (default /tmp/wsbench-<time>).
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-10000}
USERS=${USERS:-1250} # sockets per user are limited to 8 (PLAZA_WS_MAX_CONNS_PER_USER)
FANOUT=${FANOUT:-1000}
EVENTS=${EVENTS:-200}
CHAT_RATE=${CHAT_RATE:-500}
CHAT_DURATION=${CHAT_DURATION:-10s}
PORT=${PORT:-18090}
OUT=${OUT:-/tmp/wsbench-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
DATA=$(mktemp -d /tmp/wsbench-data.XXXXXX)
SERVER_PID=
cleanup() {
	[[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
	rm -rf "$DATA"
}
trap cleanup EXIT

echo "== build"
go build -o "$OUT/plaza" ./cmd/plaza
go build -o "$OUT/seed" ./bench/cmd/seed
go build -o "$OUT/ws" ./bench/ws

URL=${PLAZA_DATABASE_URL:-sqlite://$DATA/plaza.db}
echo "== seed $USERS users"
"$OUT/seed" -db "$URL" -users "$USERS" -follows 0 -posts 1 -likes 0 -comments 0 -feeds none >"$OUT/seed.txt" 2>&1 || { cat "$OUT/seed.txt"; exit 1; }

echo "== serve on 127.0.0.1:$PORT"
PLAZA_DATABASE_URL=$URL PLAZA_DATA_DIR=$DATA PLAZA_ADDR=127.0.0.1:$PORT PLAZA_RATE_LIMITS=off \
	PLAZA_LOG_LEVEL=warn PLAZA_ACCESS_TOKEN_TTL=2h \
	PLAZA_SECRET_KEY=bench-secret-key-0123456789abcdefghijklmnop \
	"$OUT/plaza" serve >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
BASE=http://127.0.0.1:$PORT
for _ in $(seq 300); do curl -fsS -o /dev/null "$BASE/readyz" 2>/dev/null && break; sleep 0.1; done

echo "== tokens for $USERS users"
: >"$OUT/tokens.txt"
seq 1 "$USERS" | xargs -P 4 -I{} sh -c 'printf "{\"email\":\"user%05d@bench.test\",\"password\":\"bench password 123\"}" {} |
	curl -fsS -H "Content-Type: application/json" --data-binary @- '"$BASE"'/api/token/' | jq -r .access >>"$OUT/tokens.txt"
[[ $(grep -c . "$OUT/tokens.txt") == "$USERS" ]] || { echo "got $(wc -l <"$OUT/tokens.txt") tokens, want $USERS"; exit 1; }
POST=$(curl -fsS -H "Authorization: Bearer $(head -1 "$OUT/tokens.txt")" -H "Content-Type: application/json" \
	-d '{"content":"watch me"}' "$BASE/api/posts/" | jq -r .id)

echo "== load: $N sockets, fan-out to $FANOUT subscribers of post $POST, chat at $CHAT_RATE msg/s"
"$OUT/ws" -url "$BASE" -tokens "$OUT/tokens.txt" -n "$N" -post "$POST" -fanout "$FANOUT" -events "$EVENTS" \
	-chat-rate "$CHAT_RATE" -chat-duration "$CHAT_DURATION" 2>&1 | tee "$OUT/ws.txt"
echo "== results in $OUT"

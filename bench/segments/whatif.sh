#!/usr/bin/env bash
# What would the proposed changes buy? Builds a throw-away copy of the
# committed tree (git archive HEAD into a temp dir) with whatif.patch
# applied: the patch adds environment toggles, off by default, for
#
#   PLAZA_EXP_SENDFILE=1        statusWriter gets a ReadFrom, so
#                               http.ServeContent reaches sendfile(2)
#   PLAZA_EXP_USER_CACHE=10s    token -> user cached for that long
#   PLAZA_EXP_MEDIA_CACHE=10s   ready media rows cached for that long
#   PLAZA_EXP_LEAN_OBSERVE=1    metric children cached per route/status,
#                               access-log attributes built only when the
#                               level is enabled
#   PLAZA_EXP_OPENAT2=1         blob.Local.Open: one openat2(RESOLVE_BENEATH)
#                               instead of os.Root's per-directory walk
#
# Variants run: base, sendfile, sendfile+cache, sendfile+cache+lean, all
# (the four changes together).
#
# and runs nginx and four plaza variants side by side against the data
# directory that run.sh left (KEEP=1), alternating wrk rounds:
#
#   KEEP=1 bench/segments/run.sh         # prints "kept /tmp/segbench-work.XXXX"
#   bench/segments/whatif.sh /tmp/segbench-work.XXXX
#
# The working tree is never modified.
set -euo pipefail
export LC_ALL=C
# PRIORITY=1: on a machine shared with other heavy work, run this script in
# a session of its own (setsid) whose scheduling group gets nice -20
# (/proc/self/autogroup, needs root), so nginx, plaza and wrk, all in it,
# compete with the rest of the machine on equal terms with each other but
# less with everything else. Off by default.
if [[ ${PRIORITY:-0} == 1 && -z ${SEGBENCH_SESSION:-} ]]; then
	SEGBENCH_SESSION=1 exec setsid --wait "$0" "$@"
fi
if [[ ${PRIORITY:-0} == 1 ]]; then
	echo -20 >/proc/self/autogroup 2>/dev/null || echo "PRIORITY=1: could not raise the autogroup priority" >&2
fi
WORK=${1:?usage: whatif.sh /tmp/segbench-work.XXXX (from KEEP=1 run.sh)}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
DATA=$WORK/data
[[ -f $DATA/plaza.db && -f $WORK/nginx/nginx.conf ]] || { echo "$WORK is not a kept run.sh work dir" >&2; exit 1; }

cd "$(dirname "$0")/../.."
HERE=$(pwd)
SRC=$(mktemp -d /tmp/segbench-whatif-src.XXXXXX)
OUT=${OUT:-/tmp/segbench-whatif-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$SRC"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

git archive HEAD | tar -x -C "$SRC"
(cd "$SRC" && git apply -p1 "$HERE/bench/segments/whatif.patch" && go build -o "$SRC/plaza-whatif" ./cmd/plaza)

free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 20000))
		if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "$p"; return; fi
	done
}

# nginx on the kept config, on a fresh port
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
NPORT=$(free_port)
sed -E "s/listen 127\.0\.0\.1:[0-9]+;/listen 127.0.0.1:$NPORT;/" "$WORK/nginx/nginx.conf" >"$OUT/nginx.conf"
"$NGINX" -p "$WORK/nginx" -c "$OUT/nginx.conf" 2>"$OUT/nginx.err" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
SEG=$(grep -o 'root [^;]*' "$OUT/nginx.conf" | cut -d' ' -f2)
ID=$(echo "$SEG" | sed -E 's#.*/media/([0-9]+)/hls/.*#\1#')

declare -A URL PID
NAMES=(base sendfile sendfile+cache sendfile+cache+lean all)
declare -A ENVS=(
	[base]=""
	[sendfile]="PLAZA_EXP_SENDFILE=1"
	[sendfile+cache]="PLAZA_EXP_SENDFILE=1 PLAZA_EXP_USER_CACHE=10s PLAZA_EXP_MEDIA_CACHE=10s"
	[sendfile+cache+lean]="PLAZA_EXP_SENDFILE=1 PLAZA_EXP_USER_CACHE=10s PLAZA_EXP_MEDIA_CACHE=10s PLAZA_EXP_LEAN_OBSERVE=1"
	[all]="PLAZA_EXP_SENDFILE=1 PLAZA_EXP_USER_CACHE=10s PLAZA_EXP_MEDIA_CACHE=10s PLAZA_EXP_LEAN_OBSERVE=1 PLAZA_EXP_OPENAT2=1"
)
for n in "${NAMES[@]}"; do
	env PLAZA_DATA_DIR="$DATA" PLAZA_ADDR=127.0.0.1:0 PLAZA_RATE_LIMITS=off PLAZA_LOG_LEVEL=warn \
		PLAZA_VIDEO_RESOLUTIONS=360p PLAZA_ACCESS_TOKEN_TTL=2h PLAZA_WORKERS=off ${ENVS[$n]} \
		"$SRC/plaza-whatif" serve >"$OUT/$n.out" 2>"$OUT/$n.err" &
	PID[$n]=$!
	PIDS+=("$!")
done
for n in "${NAMES[@]}"; do
	for _ in $(seq 1 300); do
		grep -q 'listening on http://' "$OUT/$n.out" 2>/dev/null && break
		kill -0 "${PID[$n]}" 2>/dev/null || { echo "$n exited:" >&2; cat "$OUT/$n.err" >&2; exit 1; }
		sleep 0.2
	done
	base=$(grep -o 'listening on http://[^ ]*' "$OUT/$n.out" | head -1 | sed 's/listening on //')
	[[ -n $base ]] || { echo "$n did not start" >&2; exit 1; }
	URL[$n]="$base/api/media/$ID/hls/360p/segment_000.ts/"
done
BASE0=${URL[base]%%/api/*}
TOKEN=$(curl -sf -X POST -H 'Content-Type: application/json' \
	-d '{"email":"segbench@example.com","password":"segbench-Passw0rd-123"}' "$BASE0/api/token/" | jq -r .access)
AUTH="Authorization: Bearer $TOKEN"
for n in "${NAMES[@]}"; do
	curl -sf -H "$AUTH" -o "$OUT/check.ts" "${URL[$n]}"
	cmp -s "$OUT/check.ts" "$SEG/segment_000.ts" || { echo "$n serves other bytes" >&2; exit 1; }
done
NURL="http://127.0.0.1:$NPORT/segment_000.ts"

RESULTS=$OUT/results.txt
: >"$RESULTS"
cpu_ticks() { # PIDS (comma-separated) -> user+system ticks so far
	local p t=0
	for p in ${1//,/ }; do t=$((t + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12 + $13}'))); done
	echo "$t"
}
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
# On a shared machine, wait (up to QUIET_WAIT seconds, default 120) until
# the CPU pressure of the last 10 s (/proc/pressure/cpu "some avg10") is
# below QUIET_PSI percent (default 40) before a run; QUIET_WAIT=0 disables.
psi() { awk '/^some/ { sub("avg10=", "", $2); print $2 }' /proc/pressure/cpu 2>/dev/null || echo 0; }
wait_quiet() {
	local waited=0
	while ((waited < ${QUIET_WAIT:-120})) && awk -v p="$(psi)" -v q="${QUIET_PSI:-40}" 'BEGIN { exit !(p >= q) }'; do
		sleep 5
		waited=$((waited + 5))
	done
}
one() { # name url pids [wrk args] -> "round name rps server_us/req wrk_us/req"
	local name=$1 url=$2 pids=$3
	shift 3
	local f="$OUT/wrk-$r-$name.txt" t0 t1
	wait_quiet
	t0=$(cpu_ticks "$pids")
	/usr/bin/time -f '%U %S' -o "$f.time" wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 10s "$@" "$url" >"$f"
	t1=$(cpu_ticks "$pids")
	awk -v r="$r" -v n="$name" -v d=$((t1 - t0)) -v t="$CLK_TCK" -v tf="$f.time" '
		/requests in/ { reqs = $1 } /^Requests\/sec:/ { rps = $2 }
		END { getline w < tf; split(w, c, " "); printf "%s %s %s %.1f %.1f\n", r, n, rps, d * 1e6 / t / reqs, (c[1] + c[2]) * 1e6 / reqs }' "$f" | tee -a "$RESULTS"
}
wrk -t"$THREADS" -c"$CONNS" -d3s "$NURL" >/dev/null
for n in "${NAMES[@]}"; do wrk -t"$THREADS" -c"$CONNS" -d3s -H "$AUTH" "${URL[$n]}" >/dev/null; done
echo "# round name rps server_us/req wrk_us/req"
for r in $(seq 1 "$ROUNDS"); do
	order=(nginx "${NAMES[@]}")
	((r % 2)) || order=("${NAMES[@]}" nginx)
	for n in "${order[@]}"; do
		if [[ $n == nginx ]]; then
			one nginx "$NURL" "$(pgrep -d, -P "$NGINX_PID")"
		else
			one "$n" "${URL[$n]}" "${PID[$n]}" -H "$AUTH"
		fi
	done
done
echo
median() { sort -g | awk '{a[NR]=$1} END { if (NR % 2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2] + a[NR/2+1]) / 2 }'; }
N=$(awk '$2 == "nginx" {print $3}' "$RESULTS" | median)
NS=$(awk '$2 == "nginx" {print $4}' "$RESULTS" | median)
NW=$(awk '$2 == "nginx" {print $5}' "$RESULTS" | median)
for n in nginx "${NAMES[@]}"; do
	rps=$(awk -v n="$n" '$2 == n {print $3}' "$RESULTS" | median)
	paired=$(awk -v n="$n" '{ r[$1, $2] = $3; rounds[$1] = 1 }
		END { for (x in rounds) if (r[x, "nginx"] > 0) printf "%.3f\n", r[x, n] / r[x, "nginx"] }' "$RESULTS" | median)
	su=$(awk -v n="$n" '$2 == n {print $4}' "$RESULTS" | median)
	wu=$(awk -v n="$n" '$2 == n {print $5}' "$RESULTS" | median)
	awk -v n="$n" -v r="$rps" -v b="$N" -v p="$paired" -v su="$su" -v wu="$wu" -v ns="$NS" -v nw="$NW" 'BEGIN {
		printf "%-22s %8.1f rps  ratio %.2f (per-round median %s)  CPU us/req server %6.1f wrk %6.1f  CPU-bound ratio %.2f\n",
			n, r, r / b, p, su, wu, (ns + nw) / (su + wu) }'
done | tee "$OUT/summary.txt"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/summary.txt"

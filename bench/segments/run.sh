#!/usr/bin/env bash
# Segment serving benchmark (issue 4): authenticated HLS segment GETs from
# `plaza serve` against nginx serving the very same file, side by side, on
# loopback. Goal: plaza >= 0.7 x nginx requests/s.
#
#   bench/segments/run.sh                 # from anywhere inside the module
#   ROUNDS=5 DURATION=15 CONNS=64 THREADS=2 bench/segments/run.sh
#
# Steps: build plaza (and bench/segments/profserve), start `plaza serve` on a
# fresh data dir (SQLite, local blob store), create a user, get a Bearer
# token, upload a generated 10 s 640x360 clip, wait until it is ready, pick
# 360p/segment_000.ts; start nginx (sendfile, tcp_nopush, keepalive, no
# access log) with its root on the segment's directory in the blob store;
# then alternate wrk rounds (nginx first on odd rounds, plaza first on even
# ones), record requests/s and the CPU time per request of server and
# client (/proc, /usr/bin/time) and print medians and the ratio. One more round each with "Range: bytes=0-65535". Finally
# (PROFILE=1, the default) plaza is restarted as bench/segments/profserve
# (same app, plus /debug/pprof on another loopback port) to take a CPU and
# an allocation profile under the same load.
#
# Needs: go, ffmpeg, nginx, wrk, curl, jq; strace (syscall counts) and
# /usr/bin/time (client CPU) are optional.
# Everything listens on 127.0.0.1 only. Output and profiles stay in
# $OUT (default /tmp/segbench-<time>); the data directory is removed unless
# KEEP=1.
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

ROUNDS=${ROUNDS:-5}
RANGE_ROUNDS=${RANGE_ROUNDS:-1}
DURATION=${DURATION:-15} # seconds per wrk run
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
PROFILE=${PROFILE:-1}
KEEP=${KEEP:-0}
RANGE_HDR="Range: bytes=0-65535"

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
OUT=${OUT:-/tmp/segbench-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/segbench-work.XXXXXX)
DATA=$WORK/data
PLAZA_BIN=${PLAZA_BIN:-/tmp/plaza-seg}
PROF_BIN=${PROF_BIN:-/tmp/plaza-seg-prof}

for tool in go ffmpeg nginx wrk curl jq; do
	command -v "$tool" >/dev/null || [[ $tool == nginx && -x /usr/sbin/nginx ]] || { echo "missing $tool" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if [[ $KEEP != 1 ]]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '== %s\n' "$*" >&2; }

free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 20000))
		if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "$p"; return; fi
	done
}

# wait_listen FILE PID: the "listening on http://host:port" line -> base URL
wait_listen() {
	local file=$1 pid=$2 i
	for i in $(seq 1 200); do
		if grep -q 'listening on http://' "$file" 2>/dev/null; then
			grep -o 'listening on http://[^ ]*' "$file" | head -1 | sed 's/listening on //'
			return
		fi
		kill -0 "$pid" 2>/dev/null || { echo "server exited" >&2; cat "$file" "$file.err" >&2 || true; return 1; }
		sleep 0.1
	done
	echo "server did not start" >&2
	return 1
}

log "build"
go build -o "$PLAZA_BIN" ./cmd/plaza
go build -o "$PROF_BIN" ./bench/segments/profserve

export PLAZA_DATA_DIR=$DATA PLAZA_ADDR=127.0.0.1:0 PLAZA_RATE_LIMITS=off PLAZA_LOG_LEVEL=warn \
	PLAZA_VIDEO_RESOLUTIONS=360p PLAZA_ACCESS_TOKEN_TTL=2h
unset PLAZA_DATABASE_URL PLAZA_STORAGE_URL PLAZA_REDIS_URL PLAZA_PUBLIC_URL 2>/dev/null || true
EMAIL=segbench@example.com
PASSWORD=segbench-Passw0rd-123

log "user, server, token"
"$PLAZA_BIN" user create --email "$EMAIL" --password "$PASSWORD" --username segbench >"$OUT/user.txt"
"$PLAZA_BIN" serve >"$WORK/plaza.out" 2>"$WORK/plaza.out.err" &
PLAZA_PID=$!
PIDS+=("$PLAZA_PID")
BASE=$(wait_listen "$WORK/plaza.out" "$PLAZA_PID")
TOKEN=$(curl -sf -X POST -H 'Content-Type: application/json' \
	-d "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" "$BASE/api/token/" | jq -r .access)
[[ -n $TOKEN && $TOKEN != null ]] || { echo "no token" >&2; exit 1; }
AUTH="Authorization: Bearer $TOKEN"

log "clip, upload, transcode"
ffmpeg -v error -y -f lavfi -i testsrc2=size=640x360:rate=30:duration=10 \
	-f lavfi -i sine=frequency=440:sample_rate=48000:duration=10 \
	-c:v libx264 -pix_fmt yuv420p -c:a aac -shortest "$WORK/clip.mp4"
ID=$(curl -sf -H "$AUTH" -F "file=@$WORK/clip.mp4;type=video/mp4" "$BASE/api/media/" | jq -r .id)
[[ $ID =~ ^[0-9]+$ ]] || { echo "upload failed: $ID" >&2; exit 1; }
STATUS=
for _ in $(seq 1 300); do
	STATUS=$(curl -sf -H "$AUTH" "$BASE/api/media/$ID/" | jq -r .status)
	[[ $STATUS == ready || $STATUS == failed ]] && break
	sleep 1
done
[[ $STATUS == ready ]] || { echo "media $ID ended $STATUS" >&2; cat "$WORK/plaza.out.err" >&2; exit 1; }

SEG_URL="$BASE/api/media/$ID/hls/360p/segment_000.ts/"
SEG_FILE="$DATA/media/media/$ID/hls/360p/segment_000.ts"
if [[ ! -f $SEG_FILE ]]; then
	SEG_FILE=$(find "$DATA/media" -path "*/$ID/*360p/segment_000.ts" | head -1)
fi
[[ -f $SEG_FILE ]] || { echo "segment file not found under $DATA/media" >&2; exit 1; }
SEG_DIR=$(dirname "$SEG_FILE")
SEG_SIZE=$(stat -c %s "$SEG_FILE")
curl -sf -H "$AUTH" -o "$WORK/from-plaza.ts" "$SEG_URL"
cmp -s "$WORK/from-plaza.ts" "$SEG_FILE" || { echo "plaza served other bytes than $SEG_FILE" >&2; exit 1; }

log "nginx"
NGX=$WORK/nginx
mkdir -p "$NGX"/{tmp,logs}
NGINX_PORT=$(free_port)
{
	[[ $EUID == 0 ]] && echo "user root;" # the blob store's files are 0640 root
	cat <<EOF
worker_processes auto;
daemon off;
pid $NGX/nginx.pid;
error_log $NGX/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    types { video/MP2T ts; }
    default_type application/octet-stream;
    client_body_temp_path $NGX/tmp/body;
    proxy_temp_path $NGX/tmp/proxy;
    fastcgi_temp_path $NGX/tmp/fastcgi;
    uwsgi_temp_path $NGX/tmp/uwsgi;
    scgi_temp_path $NGX/tmp/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $SEG_DIR;
        location / { }
    }
}
EOF
} >"$NGX/nginx.conf"
"$NGINX" -p "$NGX" -c "$NGX/nginx.conf" 2>"$NGX/logs/stderr" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
NGINX_URL="http://127.0.0.1:$NGINX_PORT/segment_000.ts"
for _ in $(seq 1 100); do curl -sf -o "$WORK/from-nginx.ts" "$NGINX_URL" && break; sleep 0.1; done
cmp -s "$WORK/from-nginx.ts" "$SEG_FILE" || { echo "nginx does not serve the segment" >&2; cat "$NGX/logs/"* >&2; exit 1; }

# The processes whose CPU counts as "server": plaza's one process; nginx's workers.
server_pids() {
	case $1 in
	plaza) echo "$PLAZA_PID" ;;
	nginx) pgrep -d, -P "$NGINX_PID" ;;
	esac
}

# cpu_ticks PIDS: user and system clock ticks used so far by the
# comma-separated processes (/proc/PID/stat fields 14 and 15).
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
cpu_ticks() {
	local p u=0 s=0 a b
	for p in ${1//,/ }; do
		read -r a b < <(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12, $13}')
		u=$((u + a))
		s=$((s + b))
	done
	echo "$u $s"
}

# bench NAME URL TAG [wrk header args...]: one wrk run. Appends to
# results.txt "tag name rps MB/s p50 p99 requests server_us/req
# server_usr_us/req server_sys_us/req wrk_us/req timeouts psi_before
# psi_after" (CPU pressure avg10 of the machine): CPU time per
# request from /proc (robust on a shared machine, where requests/s
# also depends on what else runs).
RESULTS=$OUT/results.txt
: >"$RESULTS"
TIME_BIN=
[[ -x /usr/bin/time ]] && TIME_BIN=/usr/bin/time
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
bench() {
	local name=$1 url=$2 tag=$3
	shift 3
	local f="$OUT/wrk-$tag-$name.txt" spids u0 s0 u1 s1
	spids=$(server_pids "$name")
	wait_quiet
	local psi0
	psi0=$(psi)
	read -r u0 s0 < <(cpu_ticks "$spids")
	if [[ -n $TIME_BIN ]]; then
		$TIME_BIN -f '%U %S' -o "$f.time" wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 10s --latency "$@" "$url" >"$f"
	else
		wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 10s --latency "$@" "$url" >"$f"
	fi
	read -r u1 s1 < <(cpu_ticks "$spids")
	if grep -q 'Non-2xx or 3xx' "$f" || { grep 'Socket errors' "$f" | grep -Eq 'connect [1-9]|read [1-9]|write [1-9]'; }; then
		echo "wrk reported errors for $name ($tag):" >&2
		cat "$f" >&2
		exit 1
	fi
	local rps mbps p50 p99 reqs timeouts wrkcpu=-
	rps=$(awk '/^Requests\/sec:/ {print $2}' "$f")
	mbps=$(awk '/^Transfer\/sec:/ {v=$2; if (v ~ /GB/) v*=1024; else if (v ~ /KB/) v/=1024; printf "%.0f", v}' "$f")
	p50=$(awk '$1=="50%" {print $2}' "$f")
	p99=$(awk '$1=="99%" {print $2}' "$f")
	reqs=$(awk '/requests in/ {print $1}' "$f")
	timeouts=$(awk '/Socket errors/ {print $NF}' "$f")
	[[ -f $f.time ]] && wrkcpu=$(awk -v n="$reqs" 'END { printf "%.1f", ($1 + $2) / n * 1e6 }' "$f.time")
	local us uu su
	read -r us uu su < <(awk -v n="$reqs" -v t="$CLK_TCK" -v du=$((u1 - u0)) -v ds=$((s1 - s0)) \
		'BEGIN { k = 1e6 / t / n; printf "%.1f %.1f %.1f\n", (du + ds) * k, du * k, ds * k }')
	echo "$tag $name $rps $mbps $p50 $p99 $reqs $us $uu $su $wrkcpu ${timeouts:-0} $psi0 $(psi)" | tee -a "$RESULTS" >&2
}

median() { sort -g | awk '{a[NR]=$1} END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2] + a[NR/2+1]) / 2 }'; }
col() { awk -v t="$1" -v n="$2" -v c="$3" '$1 ~ t && $2 == n {print $c}' "$RESULTS" | grep -v '^-$' || true; }

log "warm-up"
wrk -t"$THREADS" -c"$CONNS" -d3s "$NGINX_URL" >/dev/null
wrk -t"$THREADS" -c"$CONNS" -d3s -H "$AUTH" "$SEG_URL" >/dev/null

log "full segment: $ROUNDS rounds x ${DURATION}s, wrk -t$THREADS -c$CONNS, segment $SEG_SIZE bytes"
echo "# tag name rps MB/s p50 p99 requests server_us/req server_usr server_sys wrk_us/req timeouts psi_before psi_after" >&2
for r in $(seq 1 "$ROUNDS"); do
	if ((r % 2)); then
		bench nginx "$NGINX_URL" "full$r"
		bench plaza "$SEG_URL" "full$r" -H "$AUTH"
	else
		bench plaza "$SEG_URL" "full$r" -H "$AUTH"
		bench nginx "$NGINX_URL" "full$r"
	fi
done
log "range $RANGE_HDR: $RANGE_ROUNDS round(s)"
curl -sf -H "$AUTH" -H "$RANGE_HDR" -o /dev/null -w 'plaza range: %{http_code} %{size_download} bytes\n' "$SEG_URL" >&2
curl -sf -H "$RANGE_HDR" -o /dev/null -w 'nginx range: %{http_code} %{size_download} bytes\n' "$NGINX_URL" >&2
for r in $(seq 1 "$RANGE_ROUNDS"); do
	bench nginx "$NGINX_URL" "range$r" -H "$RANGE_HDR"
	bench plaza "$SEG_URL" "range$r" -H "$AUTH" -H "$RANGE_HDR"
done

summary() {
	local kind=$1 label=$2
	local n p ratio paired nus pus nw pw est
	n=$(col "^$kind" nginx 3 | median)
	p=$(col "^$kind" plaza 3 | median)
	ratio=$(awk -v a="$p" -v b="$n" 'BEGIN { printf "%.2f", a / b }')
	# the ratio within each round (nginx and plaza ran back to back), median
	paired=$(awk -v t="^$kind" '$1 ~ t { r[$1, $2] = $3; tags[$1] = 1 }
		END { for (x in tags) if (r[x, "nginx"] > 0) printf "%.3f\n", r[x, "plaza"] / r[x, "nginx"] }' "$RESULTS" | median)
	nus=$(col "^$kind" nginx 8 | median)
	pus=$(col "^$kind" plaza 8 | median)
	nw=$(col "^$kind" nginx 11 | median)
	pw=$(col "^$kind" plaza 11 | median)
	# With server and client CPU-bound on the same cores, requests/s goes
	# as 1 / (server + client CPU per request): the ratio an idle machine
	# would show.
	est=$(awk -v a="$nus" -v b="$nw" -v c="$pus" -v d="$pw" 'BEGIN { if (b == "-" || d == "-") print "-"; else printf "%.2f", (a + b) / (c + d) }')
	printf '%s\n  requests/s  nginx %s  plaza %s  ratio of medians %s, median per-round ratio %s (goal 0.70)\n' "$label" "$n" "$p" "$ratio" "$paired"
	printf '  CPU us/request  server: nginx %s, plaza %s;  wrk: nginx %s, plaza %s;  CPU-bound ratio (nginx server+wrk)/(plaza server+wrk) %s\n' \
		"$nus" "$pus" "$nw" "$pw" "$est"
}

{
	echo
	echo "segment: 360p/segment_000.ts, $SEG_SIZE bytes; wrk -t$THREADS -c$CONNS -d${DURATION}s; $(nproc) CPUs; load average now: $(cut -d' ' -f1-3 /proc/loadavg); CPU pressure: $(head -1 /proc/pressure/cpu 2>/dev/null)"
	summary full "full GET (median of $ROUNDS)"
	summary range "Range 0-65535 (median of $RANGE_ROUNDS)"
} | tee "$OUT/summary.txt"

# syscalls per request (strace -c on the server processes during a short,
# light wrk run; strace slows the traced process, so this is not timed).
strace_count() {
	local name=$1 url=$2
	shift 2
	local f="$OUT/strace-$name.txt" args=() p
	for p in $(server_pids "$name" | tr , ' '); do args+=(-p "$p"); done
	strace -f -c -o "$f" "${args[@]}" 2>/dev/null &
	local spid=$!
	sleep 1
	local reqs
	reqs=$(wrk -t1 -c4 -d3s "$@" "$url" | awk '/requests in/ {print $1}')
	kill -INT "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	echo "$name: syscalls per request over $reqs requests"
	awk -v n="$reqs" '$1 ~ /^[0-9.]+$/ && $NF != "total" && n > 0 { printf "  %-16s %7.2f\n", $NF, $4 / n }' "$f" | sort -k2 -g -r | head -14
}
STRACE=${STRACE:-1}
if [[ $STRACE == 1 ]] && command -v strace >/dev/null; then
	log "syscalls per request (strace -c)"
	{
		echo
		strace_count nginx "$NGINX_URL"
		strace_count plaza "$SEG_URL" -H "$AUTH"
	} | tee "$OUT/syscalls.txt"
fi

if [[ $PROFILE != 1 ]]; then
	echo "results in $OUT"
	exit 0
fi

log "profile: plaza restarted as bench/segments/profserve with /debug/pprof"
kill "$PLAZA_PID"
wait "$PLAZA_PID" 2>/dev/null || true
PPROF_PORT=$(free_port)
PLAZA_WORKERS=off "$PROF_BIN" -pprof "127.0.0.1:$PPROF_PORT" >"$WORK/prof.out" 2>"$WORK/prof.out.err" &
PLAZA_PID=$!
PIDS+=("$PLAZA_PID")
PBASE=$(wait_listen "$WORK/prof.out" "$PLAZA_PID")
PSEG_URL="$PBASE/api/media/$ID/hls/360p/segment_000.ts/"
PPROF="http://127.0.0.1:$PPROF_PORT/debug/pprof"
curl -sf -H "$AUTH" -o /dev/null "$PSEG_URL"
wrk -t"$THREADS" -c"$CONNS" -d3s -H "$AUTH" "$PSEG_URL" >/dev/null
curl -sf -o "$OUT/allocs-before.pprof" "$PPROF/allocs"
PSECS=${PROFILE_SECONDS:-$((DURATION * 2))}
(sleep 2 && curl -sf -o "$OUT/cpu.pprof" "$PPROF/profile?seconds=$PSECS") &
CURL_PID=$!
DURATION=$((PSECS + 4)) bench plaza "$PSEG_URL" profile -H "$AUTH"
wait "$CURL_PID"
curl -sf -o "$OUT/allocs-after.pprof" "$PPROF/allocs"
PREQS=$(awk '$1=="profile" && $2=="plaza" {print $7}' "$RESULTS")

{
	echo
	echo "CPU profile ($PSECS s under wrk -c$CONNS): top by flat time"
	go tool pprof -top -nodecount=30 "$PROF_BIN" "$OUT/cpu.pprof" 2>/dev/null | sed -n '1,40p'
	echo
	echo "CPU profile: share of all samples whose stack contains the function (pprof -focus)"
	while IFS='|' read -r label re; do
		pct=$(go tool pprof -top -nodecount=100000 -nodefraction=0 -focus="$re" "$PROF_BIN" "$OUT/cpu.pprof" 2>/dev/null |
			awk '/^Showing nodes accounting for/ { sub(",", "", $6); print $6 }')
		printf '  %6s  %s\n' "${pct:-0%}" "$label"
	done <<'CATS'
serving a request at all (net/http conn.serve)|^net/http\.\(\*conn\)\.serve$
  reading and parsing the request|^net/http\.\(\*conn\)\.readRequest$
  middleware chain and handler (observe and inwards)|^plaza/internal/httpapi\..*\(\*server\)\.observe\.func[0-9]+$
    observe's deferred part (metrics, access log, client IP)|^plaza/internal/httpapi\..*\(\*server\)\.observe\.func[0-9]+\.1$
    metrics (prometheus)|^github\.com/prometheus/
    access log (slog, level disabled)|^log/slog\.
    routing (ServeMux pattern matching, done twice by dispatch)|^net/http\.\(\*ServeMux\)\.findHandler$
    authentication: JWT + user query|^plaza/internal/httpapi\.\(\*server\)\.authenticate$
      JWT parse and HMAC check|^plaza/internal/account\.tokenSigner\.parse$
      user query (UserByID)|^plaza/internal/account\.\(\*Store\)\.UserByID$
    media query (media.Service.Get)|^plaza/internal/media\.\(\*Service\)\.Get$
      SQLite engine (both queries)|^modernc\.org/sqlite
      of which statement preparation|^modernc\.org/sqlite\.\(\*conn\)\.prepareV2$
    blob open (os.Root walk, fstat)|^plaza/internal/blob\.\(\*Local\)\.Open$
    http.ServeContent|^net/http\.ServeContent$
      body copy through a 32 KiB buffer (read+write)|^io\.copyBuffer$
      sendfile|^internal/poll\.SendFile$
  finishing the response (flush)|^net/http\.\(\*response\)\.finishRequest$
garbage collector (background + assists)|^runtime\.(gcBgMarkWorker|gcAssistAlloc|bgsweep|bgscavenge)$
memory allocation (mallocgc)|^runtime\.mallocgc$
CATS
	echo
	echo "allocations during the profiled run ($PREQS requests): top by bytes"
	go tool pprof -sample_index=alloc_space -top -nodecount=15 -base "$OUT/allocs-before.pprof" "$PROF_BIN" "$OUT/allocs-after.pprof" 2>/dev/null | sed -n '1,22p'
	ab=$(go tool pprof -sample_index=alloc_space -top -nodecount=1 -base "$OUT/allocs-before.pprof" "$PROF_BIN" "$OUT/allocs-after.pprof" 2>/dev/null | awk '/^Showing nodes/ {print $(NF-1)}')
	ao=$(go tool pprof -sample_index=alloc_objects -top -nodecount=1 -base "$OUT/allocs-before.pprof" "$PROF_BIN" "$OUT/allocs-after.pprof" 2>/dev/null | awk '/^Showing nodes/ {print $(NF-1)}')
	echo "total allocated: $ab, $ao objects, over $PREQS requests"
} | tee "$OUT/profile.txt"

echo
echo "results in $OUT (summary.txt, results.txt, wrk-*.txt, syscalls.txt, cpu.pprof, profile.txt)"

#!/usr/bin/env bash
# Feed and social load benchmark (docs/performance.md, "Feeds and likes").
#
#   bench/feed.sh                                   # SQLite only
#   PLAZA_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/plaza_bench bench/feed.sh
#
# For each engine: seeds a fresh database (bench/cmd/seed) and computes what
# the server's periodic jobs keep (suggestions, trends: -warm-only; a fresh
# server would otherwise catch up during the measurement), prints the plans
# and raw timings of the hot queries (bench/cmd/explain), starts
# `plaza serve` on it, drives it with bench/cmd/load, stops it and checks
# that every counter is still exact. The PostgreSQL database named in the
# URL is dropped and recreated (its name must contain "bench").
#
# Knobs (environment): BENCH_USERS, BENCH_FOLLOWS, BENCH_POSTS, BENCH_LIKES,
# BENCH_COMMENTS (dataset; defaults 10000, 100, 50, 1000000, 200000),
# BENCH_CLIENTS (64), BENCH_DURATION (15s), BENCH_SCENARIOS
# (home,global,post,like,profile,create: create last, as its queued
# fan-out jobs would run during the scenarios after it), BENCH_DRAIN (20m:
# how long to wait for the jobs the load queued), BENCH_LOGINS (256), BENCH_PORT
# (18080), BENCH_ENGINES (sqlite,postgres), BENCH_OUT (results directory;
# default a new /tmp/plaza-bench.XXXXXX), BENCH_SEED=0 (do not seed: restore
# the copy of the database an earlier run seeded into the same BENCH_OUT and
# PostgreSQL URL), BENCH_FEEDS (rebuild or bulk),
# BENCH_BUILD=0 (run the binaries built by an earlier run), BENCH_MAX_OTHER
# (25: repeat a scenario, up to BENCH_RETRIES=5 times, when processes that are not part of
# the benchmark took more than 25% of a core during it; 0: never).
set -euo pipefail
cd "$(dirname "$0")/.."

USERS=${BENCH_USERS:-10000}
FOLLOWS=${BENCH_FOLLOWS:-100}
POSTS=${BENCH_POSTS:-50}
LIKES=${BENCH_LIKES:-1000000}
COMMENTS=${BENCH_COMMENTS:-200000}
CLIENTS=${BENCH_CLIENTS:-64}
DURATION=${BENCH_DURATION:-15s}
SCENARIOS=${BENCH_SCENARIOS:-home,global,post,like,profile,create}
LOGINS=${BENCH_LOGINS:-256}
PORT=${BENCH_PORT:-18080}
ENGINES=${BENCH_ENGINES:-sqlite,postgres}
FEEDS=${BENCH_FEEDS:-rebuild}
SEED=${BENCH_SEED:-1}
MAX_OTHER=${BENCH_MAX_OTHER:-25}
RETRIES=${BENCH_RETRIES:-5}
OUT=${BENCH_OUT:-$(mktemp -d /tmp/plaza-bench.XXXXXX)}
mkdir -p "$OUT/bin"

log() { printf '\n=== %s\n' "$*"; }

if [[ ${BENCH_BUILD:-1} == 1 ]]; then
	log "building into /tmp/plaza-bench and $OUT/bin"
	go build -o /tmp/plaza-bench ./cmd/plaza
	for c in seed load explain; do go build -o "$OUT/bin/$c" "./bench/cmd/$c"; done
else
	log "BENCH_BUILD=0: using the binaries already in /tmp/plaza-bench and $OUT/bin"
fi

{
	echo "date: $(date -u +%FT%TZ)"
	echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo none) (plus uncommitted changes: $(git status --porcelain 2>/dev/null | wc -l) files)"
	echo "cpus: $(nproc) × $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
	echo "memory: $(free -g | awk '/Mem:/{print $2}') GiB"
	echo "go: $(go version)"
	echo "kernel: $(uname -r)"
	echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt"

SERVER_PID=
# stop_server asks for a graceful stop; a server still running 45 s later
# (past its 30 s shutdown timeout) gets SIGQUIT, so that its goroutine dump
# lands in the server log, and is reported.
stop_server() {
	if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
		kill -TERM "$SERVER_PID"
		for _ in $(seq 225); do
			kill -0 "$SERVER_PID" 2>/dev/null || break
			sleep 0.2
		done
		if kill -0 "$SERVER_PID" 2>/dev/null; then
			echo "!!! the server did not stop within 45 s of SIGTERM: SIGQUIT (goroutine dump in the server log)" >&2
			kill -QUIT "$SERVER_PID" 2>/dev/null || true
			sleep 2
			kill -KILL "$SERVER_PID" 2>/dev/null || true
		fi
		wait "$SERVER_PID" 2>/dev/null || true
	fi
	SERVER_PID=
}
trap stop_server EXIT

# The seeded database is kept aside (an SQLite file copy, a PostgreSQL
# template database) so that BENCH_SEED=0 reruns the load on the same data.
save_seeded() {
	log "$1: keeping a copy of the seeded database"
	case $1 in
	sqlite) cp "$OUT/sqlite-data/plaza.db" "$OUT/sqlite-seeded.db" ;;
	postgres) psql "$admin" -v ON_ERROR_STOP=1 -q -c "DROP DATABASE IF EXISTS \"${dbname}_seeded\"" \
		-c "CREATE DATABASE \"${dbname}_seeded\" TEMPLATE \"$dbname\"" ;;
	esac
}
restore_seeded() {
	log "$1: BENCH_SEED=0: restoring the seeded database"
	case $1 in
	sqlite)
		rm -f "$OUT"/sqlite-data/plaza.db*
		cp "$OUT/sqlite-seeded.db" "$OUT/sqlite-data/plaza.db" ;;
	postgres) psql "$admin" -v ON_ERROR_STOP=1 -q -c "DROP DATABASE IF EXISTS \"$dbname\" WITH (FORCE)" \
		-c "CREATE DATABASE \"$dbname\" TEMPLATE \"${dbname}_seeded\"" ;;
	esac
}

bench_engine() {
	local name=$1 url=$2
	if [[ $SEED == 1 ]]; then
		log "$name: seeding ($USERS users × $FOLLOWS follows, $POSTS posts each, $LIKES likes, $COMMENTS comments)"
		/usr/bin/time -f 'seed: %e s wall, %U s user, %S s system, %M KiB max RSS' \
			"$OUT/bin/seed" -db "$url" -users "$USERS" -follows "$FOLLOWS" -posts "$POSTS" \
			-likes "$LIKES" -comments "$COMMENTS" -feeds "$FEEDS" 2>&1 | tee "$OUT/$name-seed.txt"
		"$OUT/bin/seed" -db "$url" -warm-only | tee -a "$OUT/$name-seed.txt"
		save_seeded "$name"
	else
		restore_seeded "$name"
		# Suggestions go stale after 6 hours: bring an old copy up to date.
		"$OUT/bin/seed" -db "$url" -warm-only
	fi

	log "$name: plans and raw query timings (no server running) -> $OUT/$name-explain.md"
	"$OUT/bin/explain" -db "$url" -users "$USERS" | tee "$OUT/$name-explain.md"

	log "$name: starting plaza serve on 127.0.0.1:$PORT"
	PLAZA_DATABASE_URL=$url PLAZA_DATA_DIR="$OUT/$name-data" PLAZA_ADDR=127.0.0.1:$PORT \
		PLAZA_RATE_LIMITS=off PLAZA_LOG_LEVEL=warn PLAZA_WORKERS=inline \
		PLAZA_SECRET_KEY=bench-secret-key-0123456789abcdefghijklmnop \
		/tmp/plaza-bench serve >"$OUT/$name-server.log" 2>&1 &
	SERVER_PID=$!
	for _ in $(seq 600); do
		curl -fsS -o /dev/null "http://127.0.0.1:$PORT/readyz" 2>/dev/null && break
		kill -0 "$SERVER_PID" 2>/dev/null || { cat "$OUT/$name-server.log"; return 1; }
		sleep 0.2
	done
	curl -fsS -o /dev/null "http://127.0.0.1:$PORT/readyz"

	log "$name: load ($CLIENTS clients, $DURATION per scenario; load average now $(cut -d' ' -f1-3 /proc/loadavg))"
	local rc=0
	"$OUT/bin/load" -url "http://127.0.0.1:$PORT" -c "$CLIENTS" -d "$DURATION" -scenario "$SCENARIOS" \
		-users "$USERS" -logins "$LOGINS" -server-pid "$SERVER_PID" -max-other "$MAX_OTHER" -retries "$RETRIES" -json \
		>"$OUT/$name-load.json" 2> >(tee "$OUT/$name-load.txt" >&2) || rc=$?
	sleep 0.5 # let the tee drain
	# Background work the load left queued (each created post's fan-out
	# and notifications): a rate that the workers cannot follow is not
	# sustained, so the drain time is part of the result.
	"$OUT/bin/seed" -db "$url" -wait-jobs "${BENCH_DRAIN:-20m}" | tee -a "$OUT/$name-load.txt"
	stop_server
	echo "server log: $(grep -c '"level":"ERROR"' "$OUT/$name-server.log") errors, $(grep -c '"level":"WARN"' "$OUT/$name-server.log") warnings (first lines below)"
	grep -E '"level":"(WARN|ERROR)"' "$OUT/$name-server.log" | head -5 | cut -c1-300 || true

	log "$name: counters after the run"
	"$OUT/bin/seed" -db "$url" -verify-only | tee -a "$OUT/$name-load.txt"
	return $rc
}

status=0
if [[ ,$ENGINES, == *,sqlite,* ]]; then
	mkdir -p "$OUT/sqlite-data"
	if [[ $SEED == 1 ]]; then rm -f "$OUT"/sqlite-data/plaza.db*; fi
	admin= dbname=
	bench_engine sqlite "sqlite://$OUT/sqlite-data/plaza.db" || status=1
fi
if [[ ,$ENGINES, == *,postgres,* && -n ${PLAZA_BENCH_POSTGRES_URL:-} ]]; then
	pg=$PLAZA_BENCH_POSTGRES_URL
	base=${pg%%\?*}
	dbname=${base##*/}
	admin=${base%/*}/postgres
	if [[ $dbname != *bench* ]]; then
		echo "PLAZA_BENCH_POSTGRES_URL must name a database whose name contains 'bench' (it is dropped and recreated)" >&2
		exit 2
	fi
	if [[ $SEED == 1 ]]; then
		log "postgres: recreating database $dbname (and ${dbname}_seeded, a copy kept for BENCH_SEED=0)"
		psql "$admin" -v ON_ERROR_STOP=1 -q -c "DROP DATABASE IF EXISTS \"$dbname\" WITH (FORCE)" -c "CREATE DATABASE \"$dbname\""
	fi
	mkdir -p "$OUT/postgres-data"
	bench_engine postgres "$pg" || status=1
elif [[ ,$ENGINES, == *,postgres,* ]]; then
	log "postgres: skipped (set PLAZA_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/plaza_bench)"
fi

log "results in $OUT"
ls -1 "$OUT"
exit $status

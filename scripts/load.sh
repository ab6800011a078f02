#!/usr/bin/env bash
# Load test of crm-server on 127.0.0.1, each scenario beside a bare axum +
# sqlx baseline running the same SQL against the same database
# (crm-http/examples/baseline.rs).
#
# Scenarios: GET one contact, list contacts by tag (first page of 50 out of
# 1,000 tagged among 10,000 contacts), POST a text message to one contact and
# to 1,000 contacts in turn (queued: 202; the baseline inserts the message in
# one statement, crm-server stores it with its event and outbox row and its
# in-process dispatcher sends it). Run on SQLite and, when
# CRM_TEST_DATABASE_URL is set, on a fresh PostgreSQL database. Records each
# server's CPU time per request, and crm-server's RSS idle (after seeding,
# before load) and loaded (the peak sampled during its runs).
#
#   bash scripts/load.sh                  # SQLite only
#   CRM_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres bash scripts/load.sh
#
# Env: LOAD_DURATION (s, default 10), LOAD_CONNECTIONS (default 32),
#      LOAD_THREADS (default 2), LOAD_CONTACTS (default 10000),
#      LOAD_OUT (results file, default ${TMPDIR:-/tmp}/crm-load-results.md),
#      LOAD_SCENARIOS (a bash regex: only the scenarios it matches, e.g. POST),
#      LOAD_SQLITE=0 (PostgreSQL only), LOAD_SERVE_ARGS (e.g. --no-workers:
#      crm-server without its in-process dispatcher),
#      LOAD_PROFILE_DIR (when set: `perf record -g` of the server during each
#      run, and pg_stat_activity samples of crm-server's runs on PostgreSQL,
#      written there; LOAD_PERF_ARGS replaces `-g`, e.g.
#      "--call-graph dwarf,16384"),
#      CARGO_TARGET_DIR. Needs wrk (apt-get install -y wrk), curl, python3,
#      and psql for PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${LOAD_DURATION:-10}"
CONNS="${LOAD_CONNECTIONS:-32}"
THREADS="${LOAD_THREADS:-2}"
CONTACTS="${LOAD_CONTACTS:-10000}"
IDS_COUNT=1000
IDS=""
OUT="${LOAD_OUT:-${TMPDIR:-/tmp}/crm-load-results.md}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${TMPDIR:-/tmp}/crm-load-target}"

die() { printf 'load.sh: %s\n' "$*" >&2; exit 1; }
for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || die "$tool is needed (wrk: apt-get install -y wrk)"
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/crm-load.XXXXXX")"
PIDS=()
PG_ADMIN_URL=""
PG_DB=""
cleanup() {
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  if [ -n "$PG_DB" ]; then
    psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

stop() { # stop PID: one process this script started
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

echo "== release build (crm-server with PostgreSQL support, and the baseline)"
cargo build --release -q -p crm-http --features postgres --bin crm-server --example baseline
SERVER="$CARGO_TARGET_DIR/release/crm-server"
BASELINE="$CARGO_TARGET_DIR/release/examples/baseline"

# ---- the data set: CONTACTS contacts, opted in; every 10th tagged `vip` ----------
python3 - "$CONTACTS" >"$WORK/contacts.csv" <<'EOF'
import sys
n = int(sys.argv[1])
print("name,phone,email,tags,opt_in")
for i in range(n):
    tags = "lead;vip" if i % 10 == 0 else "lead"
    print(f"Contact {i},+55119{i:08d},c{i}@example.com,{tags},yes")
EOF

cat >"$WORK/post.lua" <<'EOF'
-- POSTs LOAD_BODY; with LOAD_IDS (a file of contact ids, one a line), a text
-- message to each contact in turn instead, each thread starting elsewhere.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("LOAD_BODY")
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("offset", threads * 7919)
end
local ids = {}
local path = os.getenv("LOAD_IDS")
if path and path ~= "" then
  for line in io.lines(path) do ids[#ids + 1] = line end
end
local n = 0
function request()
  if #ids == 0 then return wrk.format() end
  n = n + 1
  local id = ids[((offset or 0) + n) % #ids + 1]
  return wrk.format(nil, nil, nil, '{"contact_id":"' .. id .. '","text":"Olá! load test"}')
end
EOF

rss_kb() { ps -o rss= -p "$1" | tr -d ' '; }

# wait_line FILE SED_EXPR PID: the first match of SED_EXPR in FILE, waiting for it.
wait_line() {
  local v=""
  for _ in $(seq 1 150); do
    v="$(sed -n "$2" "$1" | head -n1)"
    [ -n "$v" ] && { echo "$v"; return 0; }
    kill -0 "$3" 2>/dev/null || break
    sleep 0.2
  done
  cat "$1" >&2
  return 1
}

# to_ms "1.23ms" -> 1.23
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.2f", v * 1000 }
    else print v }'
}

# same_body WHAT CRM_URL BASELINE_URL KEY: both servers answer the same bytes.
same_body() {
  curl -fsS -H "Authorization: Bearer $4" "$2" >"$WORK/body-crm.json" || die "$1: crm-server failed"
  curl -fsS "$3" >"$WORK/body-baseline.json" || die "$1: baseline failed"
  if ! cmp -s "$WORK/body-crm.json" "$WORK/body-baseline.json"; then
    cmp "$WORK/body-crm.json" "$WORK/body-baseline.json" >&2 || true
    python3 -c 'import sys; a, b = (open(p).read() for p in sys.argv[1:]); i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
print("crm-server: ..." + a[max(0, i - 80):i + 80] + "\nbaseline:   ..." + b[max(0, i - 80):i + 80])' \
      "$WORK/body-crm.json" "$WORK/body-baseline.json" >&2
    die "$1: the two bodies differ"
  fi
}

# bench DB SCENARIO WHO URL [AUTH] [BODY]: one wrk run, one results row.
bench() {
  local db="$1" scenario="$2" who="$3" url="$4" auth="${5:-}" body="${6:-}" log
  [[ "$scenario" =~ ${LOAD_SCENARIOS:-.} ]] || return 0
  log="$WORK/wrk-$db-$scenario-$who.txt"
  local args=(-t "$THREADS" -c "$CONNS" -d "${DURATION}s" --latency --timeout 10s)
  [ -n "$auth" ] && args+=(-H "Authorization: Bearer $auth")
  [ -n "$body" ] && args+=(-s "$WORK/post.lua")
  local pid="$SERVER_PID"
  [ "$who" = baseline ] && pid="$BASELINE_PID"
  local ppid="" spid_sample=""
  if [ -n "${LOAD_PROFILE_DIR:-}" ]; then
    # perf samples crm-server's user and kernel stacks during the run;
    # pg_stat_activity is sampled for what its sessions wait on.
    local tag="${db}-${scenario// /_}-$who"
    tag="${tag//[()]/}"
    # shellcheck disable=SC2086 # LOAD_PERF_ARGS is a list of perf options
    perf record -q -F 499 ${LOAD_PERF_ARGS:--g} -p "$pid" -o "$LOAD_PROFILE_DIR/perf-$tag.data" -- sleep "$DURATION" \
      >/dev/null 2>&1 &
    ppid=$!
    PIDS+=("$ppid")
    if [ "$db" = postgres ] && [ "$who" = crm-server ]; then
      sample_pg "$LOAD_PROFILE_DIR/pg-$tag.txt" &
      spid_sample=$!
      PIDS+=("$spid_sample")
    fi
  fi
  local cpu0
  cpu0="$(cpu_ticks "$pid")"
  LOAD_BODY="$body" LOAD_IDS="${IDS:-}" wrk "${args[@]}" "$url" >"$log" 2>&1 || { cat "$log" >&2; die "wrk failed"; }
  local cpu1
  cpu1="$(cpu_ticks "$pid")"
  [ -n "$ppid" ] && wait "$ppid" 2>/dev/null
  [ -n "$spid_sample" ] && stop "$spid_sample"
  local rps p50 p99 errs
  rps="$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$log")"
  p50="$(to_ms "$(awk '$1 == "50%" {print $2}' "$log")")"
  p99="$(to_ms "$(awk '$1 == "99%" {print $2}' "$log")")"
  errs="$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$log")"
  errs="${errs:-0}"
  local sock
  sock="$(awk '/Socket errors:/ {print}' "$log")"
  [ -n "$sock" ] && errs="$errs; $sock"
  # The server process's CPU time (user + system) per request, in µs.
  local reqs cpu
  reqs="$(awk '/requests in/ {print $1}' "$log")"
  cpu="$(awk -v a="$cpu0" -v b="$cpu1" -v n="$reqs" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { if (n > 0) printf "%.0f", (b - a) / hz * 1e6 / n; else print "?" }')"
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$db" "$scenario" "$who" "$rps" "$p50" "$p99" "$cpu" "$errs" \
    | tee -a "$OUT"
}

# cpu_ticks PID: the process's user + system CPU time so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# sample_pg FILE: what crm-server's database sessions are doing, every 0.1 s
# until killed (state and wait event counts, one line per sample).
sample_pg() {
  while :; do
    psql -qAt "$PG_URL" -c "SELECT string_agg(w || '=' || n, ' ' ORDER BY w) FROM (SELECT \
      coalesce(state, '?') || ':' || coalesce(wait_event, 'cpu') AS w, count(*) AS n FROM pg_stat_activity \
      WHERE datname = current_database() AND application_name <> 'psql' GROUP BY 1) x" >>"$1" 2>/dev/null || true
    sleep 0.1
  done
}

# expect_status CODE WHO WHAT CURL_ARGS...: one request that must answer CODE.
expect_status() {
  local want="$1" who="$2" what="$3" got
  shift 3
  got="$(curl -sS -o "$WORK/last-body" -w '%{http_code}' "$@")" || die "$who $what: request failed"
  [ "$got" = "$want" ] || { cat "$WORK/last-body" >&2; die "$who $what answered $got, expected $want"; }
}

# sample_rss PID FILE: the peak RSS of PID, written to FILE, until killed.
sample_rss() {
  local max=0 r
  while kill -0 "$1" 2>/dev/null; do
    r="$(rss_kb "$1" 2>/dev/null || echo 0)"
    [ "${r:-0}" -gt "$max" ] && { max="$r"; echo "$max" >"$2"; }
    sleep 0.25
  done
}

run_db() { # run_db NAME DATABASE_URL
  local name="$1" url="$2" out="$WORK/$1"
  mkdir -p "$out"
  local env=(env -u REDIS_URL -u CRM_LISTEN DATABASE_URL="$url" RUST_LOG=warn
    CRM_RATE_LIMIT_PER_KEY_PER_MINUTE=1000000000 CRM_RATE_LIMIT_PER_IP_PER_MINUTE=1000000000
    CRM_SHUTDOWN_GRACE_SECS=2)

  echo "== $name: account, $CONTACTS contacts (crm-server account create, contacts import)"
  "${env[@]}" "$SERVER" account create --name load >"$out/account.txt"
  local account key
  account="$(sed -n 's/^account \([0-9a-f-]*\) .*/\1/p' "$out/account.txt")"
  key="$(sed -n 's/^owner API key (shown only now): \(crm_[A-Za-z0-9_-]*\)$/\1/p' "$out/account.txt")"
  [ -n "$account" ] && [ -n "$key" ] || { cat "$out/account.txt" >&2; die "no account or key"; }
  "${env[@]}" "$SERVER" contacts import "$WORK/contacts.csv" --account "$account" >"$out/import.txt" 2>/dev/null
  head -n1 "$out/import.txt"

  "${env[@]}" CRM_LISTEN=127.0.0.1:0 "$SERVER" serve ${LOAD_SERVE_ARGS:-} >"$out/server.out" 2>"$out/server.err" &
  local spid=$!
  PIDS+=("$spid")
  SERVER_PID=$spid
  PG_URL="$url"
  local addr
  addr="$(wait_line "$out/server.out" 's#^crm listening on http://\(127\.0\.0\.1:[0-9]*\)$#\1#p' "$spid")" \
    || die "crm-server did not start"
  BASELINE_DATABASE_URL="$url" BASELINE_ACCOUNT="$account" BASELINE_LISTEN=127.0.0.1:0 \
    "$BASELINE" >"$out/baseline.out" 2>"$out/baseline.err" &
  local bpid=$!
  PIDS+=("$bpid")
  BASELINE_PID=$bpid
  local baddr
  baddr="$(wait_line "$out/baseline.out" 's#^baseline listening on http://\(127\.0\.0\.1:[0-9]*\)$#\1#p' "$bpid")" \
    || { cat "$out/baseline.err" >&2; die "baseline did not start"; }

  local api="http://$addr/api/v1" contact
  contact="$(curl -fsS -H "Authorization: Bearer $key" "$api/contacts?tag=vip&limit=1" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')"
  # Both servers must answer the same contact before anything is measured.
  curl -fsS -o /dev/null -H "Authorization: Bearer $key" "$api/contacts/$contact" || die "crm-server GET failed"
  curl -fsS -o /dev/null "http://$baddr/contacts/$contact" || die "baseline GET failed"
  curl -fsS -o /dev/null "http://$baddr/contacts?tag=vip" || die "baseline tag list failed"
  # … with the same bytes: the two servers do the same work but for crm's.
  same_body "GET contact" "$api/contacts/$contact" "http://$baddr/contacts/$contact" "$key"
  same_body "list by tag" "$api/contacts?tag=vip&limit=50" "http://$baddr/contacts?tag=vip" "$key"
  # The first IDS_COUNT contacts' ids, for sends spread over many contacts.
  local cursor=""
  : >"$out/ids.txt"
  while [ "$(wc -l <"$out/ids.txt")" -lt "$IDS_COUNT" ]; do
    cursor="$(curl -fsS -H "Authorization: Bearer $key" "$api/contacts?limit=200${cursor:+&cursor=$cursor}" \
      | python3 -c 'import json, sys
page = json.load(sys.stdin)
with open(sys.argv[1], "a") as f:
    for c in page["items"]:
        f.write(c["id"] + "\n")
print(page.get("next_cursor") or "")' "$out/ids.txt")"
    [ -n "$cursor" ] || break
  done
  # The account's default channel: the recording kind (stores, does not
  # deliver), with the governor's per-recipient spacing off (every request
  # goes to one contact) so the in-process dispatcher sends each message.
  expect_status 201 crm-server "create channel" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d '{"kind":"recording","name":"load","pacing":{"per_second":10000,"pair_interval_secs":0}}' "$api/channels"
  local body="{\"contact_id\":\"$contact\",\"text\":\"Olá! load test\"}"
  # A queued send answers 202 Accepted, crm-server and baseline alike.
  expect_status 202 crm-server "POST /messages" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d "$body" "$api/messages"
  expect_status 202 baseline "POST /messages" -H 'Content-Type: application/json' -d "$body" "http://$baddr/messages"

  sleep 1
  local idle
  idle="$(rss_kb "$spid")"
  sample_rss "$spid" "$out/rss-peak" &
  local rpid=$!
  PIDS+=("$rpid")

  bench "$name" "GET contact" crm-server "$api/contacts/$contact" "$key"
  bench "$name" "GET contact" baseline "http://$baddr/contacts/$contact"
  bench "$name" "list by tag (50)" crm-server "$api/contacts?tag=vip&limit=50" "$key"
  bench "$name" "list by tag (50)" baseline "http://$baddr/contacts?tag=vip"
  bench "$name" "POST message (1 contact)" crm-server "$api/messages" "$key" "$body"
  bench "$name" "POST message (1 contact)" baseline "http://$baddr/messages" "" "$body"
  IDS="$out/ids.txt"
  bench "$name" "POST message ($IDS_COUNT contacts)" crm-server "$api/messages" "$key" "$body"
  bench "$name" "POST message ($IDS_COUNT contacts)" baseline "http://$baddr/messages" "" "$body"
  IDS=""

  local after peak
  after="$(rss_kb "$spid")"
  stop "$rpid"
  peak="$(cat "$out/rss-peak" 2>/dev/null || echo "$after")"
  echo "$name crm-server RSS: idle ${idle} KiB, loaded peak ${peak} KiB, after load ${after} KiB" \
    | tee -a "$WORK/rss.txt"
  stop "$spid"
  stop "$bpid"
  if [ -s "$out/server.err" ] && grep -qiE 'error|panick' "$out/server.err"; then
    echo "crm-server logged errors ($name):" >&2
    grep -iE 'error|panick' "$out/server.err" | head -n 5 >&2
  fi
}

{
  echo "# crm-server load test ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo
  echo "wrk -t $THREADS -c $CONNS -d ${DURATION}s --latency; $CONTACTS contacts; 127.0.0.1"
  echo
  echo "| database | scenario | server | requests/s | p50 ms | p99 ms | server CPU µs/req | non-2xx / errors |"
  echo "|---|---|---|---:|---:|---:|---:|---|"
} >"$OUT"

if [ "${LOAD_SQLITE:-1}" != 0 ]; then
  run_db sqlite "sqlite://$WORK/sqlite/crm.db?mode=rwc"
fi

if [ -n "${CRM_TEST_DATABASE_URL:-}" ]; then
  command -v psql >/dev/null || die "psql is needed for the PostgreSQL run"
  PG_ADMIN_URL="$CRM_TEST_DATABASE_URL"
  host="$(python3 -c 'import sys, urllib.parse as u; print(u.urlsplit(sys.argv[1]).hostname or "")' "$PG_ADMIN_URL")"
  case "$host" in 127.0.0.1 | localhost | ::1) ;; *) die "CRM_TEST_DATABASE_URL must point at 127.0.0.1" ;; esac
  PG_DB="crm_load_$$"
  psql -q -v ON_ERROR_STOP=1 "$PG_ADMIN_URL" -c "CREATE DATABASE $PG_DB" >/dev/null
  pg_url="$(python3 -c 'import sys, urllib.parse as u; s = u.urlsplit(sys.argv[1]); print(u.urlunsplit(s._replace(path="/" + sys.argv[2])))' \
    "$PG_ADMIN_URL" "$PG_DB")"
  run_db postgres "$pg_url"
else
  echo "CRM_TEST_DATABASE_URL is not set: PostgreSQL skipped" | tee -a "$OUT"
fi

{
  echo
  sed 's/^/- /' "$WORK/rss.txt"
  echo
  echo "machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM"
} >>"$OUT"
echo
cat "$OUT"

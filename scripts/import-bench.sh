#!/usr/bin/env bash
# Bulk import benchmark on PostgreSQL (127.0.0.1 only): generates N contacts
# as CSV (every 10th tagged `vip`, like scripts/load.sh), imports them into a
# fresh database with `crm-server contacts import` under /usr/bin/time
# (wall time, rows/s, peak RSS), then serves that database and times the
# first page of the tag list (`GET /api/v1/contacts?tag=vip&limit=50`, curl's
# time_total over IMPORT_PAGE_RUNS requests) and the store's tag-page query
# with EXPLAIN ANALYZE. Then, as the baseline, it bulk-loads the same rows into
# a second fresh database with the same schema (psql \copy into a temporary
# table + INSERT … SELECT) and prints both rates and their ratio. Both
# databases are dropped at the end.
#
#   CRM_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres bash scripts/import-bench.sh 1000000
#
# Env: IMPORT_JOBS (batches in flight, default: the CLI's), IMPORT_BATCH
#      (rows per batch, default: the CLI's), IMPORT_PAGE_RUNS (default 50),
#      CARGO_TARGET_DIR. Needs curl, python3, psql and /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."

N="${1:-100000}"
RUNS="${IMPORT_PAGE_RUNS:-50}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${TMPDIR:-/tmp}/crm-load-target}"
die() { printf 'import-bench.sh: %s\n' "$*" >&2; exit 1; }
[ -n "${CRM_TEST_DATABASE_URL:-}" ] || die "set CRM_TEST_DATABASE_URL"
for tool in curl python3 psql /usr/bin/time; do
  command -v "$tool" >/dev/null || die "$tool is needed"
done
host="$(python3 -c 'import sys, urllib.parse as u; print(u.urlsplit(sys.argv[1]).hostname or "")' "$CRM_TEST_DATABASE_URL")"
case "$host" in 127.0.0.1 | localhost | ::1) ;; *) die "CRM_TEST_DATABASE_URL must point at 127.0.0.1" ;; esac

WORK="$(mktemp -d "${TMPDIR:-/tmp}/crm-import.XXXXXX")"
DB="crm_import_$$"
SPID=""
cleanup() {
  if [ -n "$SPID" ] && kill -0 "$SPID" 2>/dev/null; then
    kill "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
  fi
  psql -q "$CRM_TEST_DATABASE_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  psql -q "$CRM_TEST_DATABASE_URL" -c "DROP DATABASE IF EXISTS ${DB}_bare WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== release build"
# The same build as scripts/load.sh (bin and example), so the two scripts share it.
cargo build --release -q -p crm-http --features postgres --bin crm-server --example baseline
SERVER="$CARGO_TARGET_DIR/release/crm-server"

python3 - "$N" >"$WORK/contacts.csv" <<'EOF'
import sys
n = int(sys.argv[1])
out = sys.stdout
out.write("name,phone,email,tags,opt_in\n")
for i in range(n):
    tags = "lead;vip" if i % 10 == 0 else "lead"
    out.write(f"Contact {i},+55119{i:08d},c{i}@example.com,{tags},yes\n")
EOF

psql -q -v ON_ERROR_STOP=1 "$CRM_TEST_DATABASE_URL" -c "CREATE DATABASE $DB" >/dev/null
url="$(python3 -c 'import sys, urllib.parse as u; s = u.urlsplit(sys.argv[1]); print(u.urlunsplit(s._replace(path="/" + sys.argv[2])))' \
  "$CRM_TEST_DATABASE_URL" "$DB")"
env=(env -u REDIS_URL -u CRM_LISTEN DATABASE_URL="$url" RUST_LOG=warn CRM_SHUTDOWN_GRACE_SECS=2
  CRM_RATE_LIMIT_PER_KEY_PER_MINUTE=1000000000)
"${env[@]}" "$SERVER" account create --name import >"$WORK/account.txt"
account="$(sed -n 's/^account \([0-9a-f-]*\) .*/\1/p' "$WORK/account.txt")"
key="$(sed -n 's/^owner API key (shown only now): \(crm_[A-Za-z0-9_-]*\)$/\1/p' "$WORK/account.txt")"
[ -n "$account" ] && [ -n "$key" ] || die "no account or key"

args=(contacts import "$WORK/contacts.csv" --account "$account")
[ -n "${IMPORT_JOBS:-}" ] && args+=(--jobs "$IMPORT_JOBS")
[ -n "${IMPORT_BATCH:-}" ] && args+=(--batch "$IMPORT_BATCH")
echo "== import of $N contacts: crm-server ${args[*]}"
"${env[@]}" /usr/bin/time -v "$SERVER" "${args[@]}" >"$WORK/import.out" 2>"$WORK/import.time"
head -n1 "$WORK/import.out"
wall="$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$WORK/import.time")"
secs="$(python3 -c 'import sys; p = [float(x) for x in sys.argv[1].split(":")]; print(sum(v * 60 ** i for i, v in enumerate(reversed(p))))' "$wall")"
rss="$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/import.time")"
user="$(sed -n 's/.*User time (seconds): //p' "$WORK/import.time")"
sys="$(sed -n 's/.*System time (seconds): //p' "$WORK/import.time")"
python3 -c 'import sys; n, s = int(sys.argv[1]), float(sys.argv[2]); print(f"import: {n} rows in {s:.2f} s = {n / s:,.0f} rows/s")' "$N" "$secs"
echo "import: peak RSS ${rss} KiB; CPU user ${user} s, system ${sys} s"

"${env[@]}" CRM_LISTEN=127.0.0.1:0 "$SERVER" serve --no-workers >"$WORK/server.out" 2>"$WORK/server.err" &
SPID=$!
addr=""
for _ in $(seq 1 150); do
  addr="$(sed -n 's#^crm listening on http://\(127\.0\.0\.1:[0-9]*\)$#\1#p' "$WORK/server.out" | head -n1)"
  [ -n "$addr" ] && break
  kill -0 "$SPID" 2>/dev/null || break
  sleep 0.2
done
[ -n "$addr" ] || { cat "$WORK/server.err" >&2; die "crm-server did not start"; }
page="http://$addr/api/v1/contacts?tag=vip&limit=50"
curl -fsS -o /dev/null -H "Authorization: Bearer $key" "$page" || die "tag page failed"
for _ in $(seq 1 "$RUNS"); do
  curl -fsS -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $key" "$page"
done >"$WORK/page.txt"
python3 - "$WORK/page.txt" "$N" <<'EOF'
import sys
t = sorted(float(x) * 1000 for x in open(sys.argv[1]))
q = lambda p: t[min(len(t) - 1, int(p * len(t)))]
print(f"tag page (50 of {int(sys.argv[2]) // 10} tagged, {sys.argv[2]} contacts), curl time_total over {len(t)} requests: "
      f"median {q(0.5):.2f} ms, p90 {q(0.9):.2f} ms, max {t[-1]:.2f} ms")
EOF
psql -qAt "$url" -c "EXPLAIN (ANALYZE, BUFFERS) SELECT c.* FROM contact_tags t JOIN contacts c ON c.id = t.contact_id \
  WHERE t.account_id = '$account' AND t.tag = 'vip' AND c.account_id = '$account' \
  AND t.contact_id > '00000000-0000-0000-0000-000000000000' ORDER BY t.contact_id LIMIT 51" \
  | grep -E 'Execution Time|Planning Time|Index' | sed 's/^/explain: /'

# ---- the baseline: the same rows bulk-loaded by PostgreSQL itself -----------------
# Into a second fresh database with the same schema (crm-server migrate): psql
# \copy of the rows (ids, lowercase names and tag arrays precomputed, as text)
# into a temporary table, then INSERT … SELECT into contacts (ON CONFLICT DO
# NOTHING) and contact_tags, in one transaction. No validation, no events, no
# outbox: the floor a contact import cannot go below on this machine.
BDB="${DB}_bare"
psql -q -v ON_ERROR_STOP=1 "$CRM_TEST_DATABASE_URL" -c "CREATE DATABASE $BDB" >/dev/null
burl="$(python3 -c 'import sys, urllib.parse as u; s = u.urlsplit(sys.argv[1]); print(u.urlunsplit(s._replace(path="/" + sys.argv[2])))' \
  "$CRM_TEST_DATABASE_URL" "$BDB")"
env -u REDIS_URL DATABASE_URL="$burl" RUST_LOG=warn "$SERVER" migrate >/dev/null
python3 - "$N" "$account" >"$WORK/bare.tsv" <<'PYEOF'
import sys, uuid
n, account = int(sys.argv[1]), sys.argv[2]
w = sys.stdout.write
t = "2026-11-30 00:00:00+00"
for i in range(n):
    tags = "{lead,vip}" if i % 10 == 0 else "{lead}"
    cid = uuid.UUID(int=(0x0190A000_0000_7000_8000_000000000000 | i))
    w(f"{cid}\t{account}\tContact {i}\tcontact {i}\t+55119{i:08d}\tc{i}@example.com\t\\N\t{tags}\t{{}}\t0\t"
      f"new\tsubscribed\t{t}\tcsv\t\\N\t\\N\t{t}\t{t}\t0\n")
PYEOF
cat >"$WORK/bare.sql" <<SQLEOF
BEGIN;
CREATE TEMP TABLE stage (LIKE contacts) ON COMMIT DROP;
\\copy stage FROM '$WORK/bare.tsv'
INSERT INTO contacts SELECT * FROM stage ON CONFLICT DO NOTHING;
INSERT INTO contact_tags SELECT account_id, id, unnest(tags) FROM stage;
COMMIT;
SQLEOF
echo "== baseline: psql \\copy + INSERT … SELECT of the same $N rows into a fresh database"
bstart="$(date +%s.%N)"
psql -q -v ON_ERROR_STOP=1 "$burl" -f "$WORK/bare.sql" >/dev/null
bend="$(date +%s.%N)"
bcount="$(psql -qAt "$burl" -c 'SELECT count(*) FROM contacts')"
[ "$bcount" = "$N" ] || die "baseline stored $bcount of $N rows"
python3 -c 'import sys; n, a, b, s = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]); bs = b - a
print(f"baseline: {n} rows in {bs:.2f} s = {n / bs:,.0f} rows/s")
print(f"ratio (crm-server import / baseline, rows/s): {bs / s:.2f}")' "$N" "$bstart" "$bend" "$secs"

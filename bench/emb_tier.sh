#!/usr/bin/env bash
# emb_tier — a 50M-row int8 item table served by `moerec serve` from RocksDB behind the cache vs a 5M-row table in memory
#
# Through the real server: bench_emb_tier make writes two versions of one
# model "tier" (same dense weights): store/tier/1 whose item table has
# --rows rows with "storage": "store" (--encoding, default int8) and
# memory/tier/1 with a --mem-rows fp32 table in memory. Each is served in
# turn by `moerec serve` (same config: a data_dir, cache_bytes = --cache-mb
# (default a tenth of the table's encoded bytes), store_mmap_reads false,
# store_block_cache_bytes --block-cache-mb (32), cache_admission --admission
# (always)); the store server's first
# load bulk-loads the table (SST ingestion streamed from the safetensors
# file: ingest_s = start to "listening", which includes it). The C client
# (bench_emb_tier client) sends Score RPCs over loopback, 500 candidates
# with Zipf(1.1) item ids; against the store it warms up first (5,000-candidate
# requests until the cache is full and the table's hit rate stops rising;
# reported), then --requests timed calls; the same timed stream (same seed)
# then goes to the in-memory server. RSS is the store server's, read from
# /proc after its timed calls. puts_s: --puts row-by-row emb_store_put calls
# into an int8 table, in process (no server), for scale.
# Usage: bench/run emb_tier [--rows N] [--mem-rows N] [--dim D] [--cache-mb MB]
#        [--block-cache-mb MB] [--candidates C] [--requests N] [--warm-max N]
#        [--warm-seconds S] [--puts N] [--encoding int8|fp16|fp32] [--dir DIR]
#        [--admission always|seen_twice] [--warm-after-full N]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/build.sh"
bench_build bench_emb_tier moerec
rows=50000000 mem_rows=5000000 dim=64 cache_mb= block_mb=32 C=500 requests=400
warm_max=20000 warm_s=600 puts=1000000 enc=int8 base=${TMPDIR:-/tmp} admission=always after_full=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows=$2 ;; --mem-rows) mem_rows=$2 ;; --dim) dim=$2 ;; --cache-mb) cache_mb=$2 ;;
    --block-cache-mb) block_mb=$2 ;; --candidates) C=$2 ;; --requests) requests=$2 ;;
    --warm-max) warm_max=$2 ;; --warm-seconds) warm_s=$2 ;; --puts) puts=$2 ;;
    --encoding) enc=$2 ;; --dir) base=$2 ;; --admission) admission=$2 ;; --warm-after-full) after_full=$2 ;;
    *) echo "emb_tier: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
bin="$MOEREC_BUILD/bench/bench_emb_tier"
moerec="$MOEREC_BUILD/tools/moerec"
dir=$(mktemp -d "$base/moerec-emb-tier-XXXXXX")
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
case "$enc" in int8) pay=$((4 + dim)) ;; fp16) pay=$((2 * dim)) ;; *) pay=$((4 * dim)) ;; esac
row_bytes=$((12 + pay + 4 + 8)) # header + payload + checksum + key
disk_mb=$(awk -v r="$rows" -v b="$row_bytes" 'BEGIN{printf "%.0f", r*b/1048576}')
[ -n "$cache_mb" ] || cache_mb=$(awk -v d="$disk_mb" 'BEGIN{c = d / 10; printf "%.0f", c < 1 ? 1 : c}')
cache_bytes=$((cache_mb * 1048576))
t0=$(date +%s.%N)
dense=$("$bin" make --out "$dir" --rows "$rows" --mem-rows "$mem_rows" --dim "$dim" --encoding "$enc")
echo "emb_tier: model files written in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.0f", b-a}') s" >&2

serve() { # serve NAME: start moerec serve on NAME's versions, set pid, target, murl, listen_s
  cat > "$dir/$1.json" <<JSON
{"model_dir": "$dir/$1", "data_dir": "$dir/db-$1", "item_dim": 16, "cache_bytes": $cache_bytes,
 "store_mmap_reads": false, "store_block_cache_bytes": $((block_mb * 1048576)),
 "cache_admission": "$admission", "metrics_port": 0, "log_level": "info", "max_candidates": 5000}
JSON
  local s0; s0=$(date +%s.%N)
  "$moerec" serve --config "$dir/$1.json" --port 0 > "$dir/$1.out" 2> "$dir/$1.log" &
  pid=$!
  while ! grep -q '^metrics on' "$dir/$1.out" 2>/dev/null; do
    kill -0 $pid 2>/dev/null || { cat "$dir/$1.log" >&2; exit 1; }
    sleep 0.2
  done
  listen_s=$(awk -v a="$s0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  target=$(sed -n 's/^listening on //p' "$dir/$1.out")
  murl=$(sed -n 's/^metrics on //p' "$dir/$1.out" | sed 's#/metrics$##')
}
stop() { kill $pid; wait $pid 2>/dev/null || true; pid=; }

serve store
ingest_s=$listen_s
grep -E "bulk-loaded" "$dir/store.log" >&2 || true
store=$("$bin" client --target "$target" --pid "$pid" --metrics "$murl" --table mv.tier.1.item \
  --cache-bytes "$cache_bytes" --rows "$rows" --candidates "$C" --requests "$requests" \
  --warm-max "$warm_max" --warm-seconds "$warm_s" --warm-after-full "$after_full")
stop
serve memory
memory=$("$bin" client --target "$target" --pid "$pid" --rows "$rows" --candidates "$C" \
  --requests "$requests")
stop
puts_s=$("$bin" puts --dir "$dir/puts" --n "$puts" --dim "$dim")
/usr/bin/python3 - "$store" "$memory" <<PY
import json, sys
s, m = json.loads(sys.argv[1]), json.loads(sys.argv[2])
budget = $cache_mb + $block_mb + $dense / 1048576 + 500
out = {"bench": "emb_tier", "through": "moerec serve, Score over loopback", "rows": $rows,
       "mem_rows": $mem_rows, "dim": $dim, "encoding": "$enc", "candidates": $C,
       "requests": s["requests"], "disk_mb": $disk_mb, "cache_mb": $cache_mb, "cache_admission": "$admission",
       "block_cache_mb": $block_mb, "dense_mb": round($dense / 1048576, 1),
       "store_p50_us": s["p50_us"], "store_p99_us": s["p99_us"],
       "memory_p50_us": m["p50_us"], "memory_p99_us": m["p99_us"],
       "p99_ratio_store_vs_memory": round(s["p99_us"] / m["p99_us"], 3),
       "hit_rate": s["hit_rate"], "warm_requests": s["warm_requests"], "warm_full_at": s["warm_full_at"], "warm_after_full": $after_full,
       "warm_candidates": s["warm_candidates"], "warm_s": s["warm_s"],
       "warm_last_window_hit_rate": s["warm_last_window_hit_rate"], "cache_full": s["cache_full"],
       "cache_mb_used": s["cache_mb_used"], "rss_mb": s["rss_mb"], "rss_anon_mb": s["rss_anon_mb"],
       "rss_file_mb": s["rss_file_mb"], "memory_rss_mb": m["rss_mb"],
       "rss_budget_mb": round(budget), "ingest_s": $ingest_s,
       "ingest_rows_per_s": round($rows / $ingest_s), "puts": $puts, "puts_s": $puts_s,
       "puts_rows_per_s": round($puts / $puts_s)}
print(json.dumps(out, separators=(",", ":")))
PY

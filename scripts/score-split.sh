#!/usr/bin/env bash
# score-split.sh — `moerec score` over one input file split across machines.
#
#   scripts/score-split.sh --model DIR --data FILE --out FILE \
#       --worker local --worker "ssh -o BatchMode=yes host2" [options] [-- score args]
#
# Splits FILE (CSV/TSV with a header line, one record per line) into parts
# of whole --batch multiples, keeping the header in every part; runs
# `moerec score --data - --out -` on each part through a worker's command
# prefix (parts go to the workers round-robin, the workers run in
# parallel, each scores its parts one after the other), the part streamed
# on stdin and the scores read back on stdout; then concatenates the
# outputs in input order (one header) into --out, written to a temporary
# beside it and renamed when every part succeeded. Parts are whole
# multiples of --batch, so every scorer batch holds the same rows as in a
# single `moerec score --batch N` over the whole file and the output is
# byte-identical to it.
#
# Options:
#   --model DIR        model version directory, the same path on every worker
#   --data FILE        input file (here)
#   --out FILE         output CSV (here)
#   --worker PREFIX    a worker: "local" runs moerec here; any other value is a
#                      command prefix given the score command as one shell
#                      string (e.g. "ssh host", "sh -c"); repeat per worker
#   --moerec PATH      the moerec binary on the workers (default: moerec)
#   --batch N          rows per scorer batch, passed to moerec score (4096)
#   --parts N          number of parts (default: one per worker)
#   --work DIR         where parts are written (default: a temporary folder
#                      beside --out, removed at the end)
#   -- ARGS            passed to every `moerec score` (e.g. --keep, --threads)
# Input records must not span lines (no line breaks inside quoted cells).
# Prints a JSON summary line last. Exit: 0 ok, 1 a part failed (its stderr
# is shown), 2 usage.
set -euo pipefail

usage() { sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
die() { echo "score-split.sh: $*" >&2; exit 2; }

model="" data="" out="" moerec="moerec" batch=4096 parts=0 work=""
workers=()
score_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model="${2:?}"; shift ;;
    --data) data="${2:?}"; shift ;;
    --out) out="${2:?}"; shift ;;
    --worker) workers+=("${2?}"); shift ;;
    --moerec) moerec="${2:?}"; shift ;;
    --batch) batch="${2:?}"; shift ;;
    --parts) parts="${2:?}"; shift ;;
    --work) work="${2:?}"; shift ;;
    --) shift; score_args=("$@"); break ;;
    -h|--help) usage 0 ;;
    *) die "unknown option '$1' (try --help)" ;;
  esac
  shift
done
[ -n "$model" ] && [ -n "$data" ] && [ -n "$out" ] || die "--model, --data and --out are required"
[ "${#workers[@]}" -gt 0 ] || die "give at least one --worker"
[ -r "$data" ] || die "--data '$data' cannot be read"
[[ "$batch" =~ ^[1-9][0-9]*$ ]] || die "--batch '$batch' is not a positive integer"
[[ "$parts" =~ ^[0-9]+$ ]] || die "--parts '$parts' is not an integer"
[ "$parts" -gt 0 ] || parts=${#workers[@]}

t0=$(date +%s.%N)
own_work=0
if [ -z "$work" ]; then
  work=$(mktemp -d "$out.parts.XXXXXX")
  own_work=1
fi
cleanup() { [ "$own_work" = 1 ] && rm -rf "$work"; rm -f "$out.tmp.$$"; }
trap cleanup EXIT

# rows per part: the rows over the parts, rounded up to a whole batch
rows=$(awk 'END { print (NR > 0 ? NR - 1 : 0) }' "$data")
per=$(( (rows + parts - 1) / parts ))
per=$(( (per + batch - 1) / batch * batch ))
[ "$per" -gt 0 ] || per=$batch
awk -v per="$per" -v dir="$work" '
  NR == 1 { head = $0; next }
  (NR - 2) % per == 0 { if (f) close(f); f = sprintf("%s/part-%06d.in", dir, n++); print head > f }
  { print > f }
  END { if (NR == 1) { f = sprintf("%s/part-%06d.in", dir, 0); print head > f } }' "$data"
mapfile -t inputs < <(ls "$work"/part-*.in 2>/dev/null)
[ "${#inputs[@]}" -gt 0 ] || die "--data '$data' is empty (no header line)"

cmd=("$moerec" score --model "$model" --data - --out - --batch "$batch" --quiet "${score_args[@]}")
run_part() {   # worker prefix, part input
  local prefix="$1" in="$2" base="${2%.in}"
  if [ "$prefix" = local ]; then
    "${cmd[@]}" < "$in" > "$base.out" 2> "$base.err"
  else
    # shellcheck disable=SC2086  # the prefix is split into words on purpose
    $prefix "$(printf '%q ' "${cmd[@]}")" < "$in" > "$base.out" 2> "$base.err"
  fi
}
pids=()
for w in "${!workers[@]}"; do
  (
    for ((p = w; p < ${#inputs[@]}; p += ${#workers[@]})); do
      if run_part "${workers[$w]}" "${inputs[$p]}"; then touch "${inputs[$p]%.in}.ok"; fi
    done
  ) &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || true; done

failed=0
for in in "${inputs[@]}"; do
  base="${in%.in}"
  if [ ! -e "$base.ok" ]; then
    echo "score-split.sh: part $(basename "$base") failed:" >&2
    cat "$base.err" >&2
    failed=1
  fi
done
[ "$failed" = 0 ] || exit 1
{
  cat "${inputs[0]%.in}.out"
  for in in "${inputs[@]:1}"; do tail -n +2 "${in%.in}.out"; done
} > "$out.tmp.$$"
mv -f "$out.tmp.$$" "$out"
t1=$(date +%s.%N)
printf '{"rows": %d, "parts": %d, "rows_per_part": %d, "workers": %d, "seconds": %s}\n' \
  "$rows" "${#inputs[@]}" "$per" "${#workers[@]}" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"

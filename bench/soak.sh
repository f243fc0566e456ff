#!/usr/bin/env bash
# soak — mixed traffic at a fixed rate for N minutes: errors by status, p99 per minute, RSS and fds
#
# Starts `moerec serve` (model, retrievers, store; the world of
# tests/integration/reliability_world.py) and drives Recommend, Score,
# Retrieve, AppendEvents and UpsertItems at --rate calls/s from --workers
# client threads, with an Admin Reload once a minute (bench/soak.py).
# rss_growth compares the mean RSS of the last minute with that of the
# minute after a warm-up: at least --warmup-minutes (1), until the bounded
# caches are full (the block cache, 1 MiB here, at 90% of its bound; the
# memtable budget, 8 MiB here, flushed once), at most --warmup-max-minutes
# (4); rss_growth_from_start is from the first call. Samples every 10 s:
# RSS split into anonymous, SST file pages (mmap reads) and other file
# pages (/proc/PID/smaps); descriptors by kind (sockets, RocksDB SST
# files, other RocksDB files, other, deleted-but-open) and the SST files
# in the data dir; RocksDB memtables, block cache, table readers, SST
# bytes, malloc held/in use (from /metrics).
# Usage: bench/run soak [--minutes 10] [--rate 200] [--workers 8]
#        [--warmup-minutes 1] [--warmup-max-minutes 4]
#        [--config '{"store_memtable_bytes": ...}']
# JSON last: "minutes","calls","errors","rss_growth","fd_start","fd_end","p99_ms_by_minute"
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
. "$here/lib/build.sh"
bench_build moerec
build=$MOEREC_BUILD
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
exec /usr/bin/python3 "$here/soak.py" --bin "$build/tools/moerec" --root "$root" "$@"

#!/usr/bin/env bash
# test.sh — set up everything and run all of moerec's tests.
#
#   scripts/test.sh              install what is missing, build (build/), run ctest
#   scripts/test.sh --sanitize   the same with AddressSanitizer + UBSan (build-asan/)
#   scripts/test.sh --tsan       the threaded tests under ThreadSanitizer (build-tsan/)
#   scripts/test.sh --release    Release (-O3, -Werror like every build) (build-rel/)
#   every build compiles all targets, bench_* included, so a benchmark that
#   does not build fails the run
#   extra arguments after -- go to ctest, e.g. scripts/test.sh -- -R hashing
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
TSAN_TESTS='^(test_common_threadpool|test_index_cache|test_index_store_concurrent|test_index_retr_faiss|test_index_router_retrieve|test_moe_dnn_exec|test_moe_scorer|test_server_stats_window'
# callback (remote) experts started and finished around the pool's searches;
# the remote expert client beside a fake server thread
TSAN_TESTS+='|test_index_retr_callback|test_server_remote_expert'
# online counting-feature appends of several threads on one item (count_mu)
TSAN_TESTS+='|test_server_counts'
# the server's integration tests: the TSan-built `moerec serve` under
# concurrent calls, reloads, Watch streams, drain, TLS (python-driven ones
# run the instrumented server behind an uninstrumented python client)
TSAN_TESTS+='|test_server_grpc|test_server_python|test_score_rpc|test_store_rpc|test_recommend'
TSAN_TESTS+='|test_auth_metrics|test_drain|test_tls'
# the update log's consumer thread and waits; model_poll_s reloads under traffic
TSAN_TESTS+='|test_server_replog_nats|test_model_poll'
# store-backed model tables: Reload under load, drops on request threads
TSAN_TESTS+='|test_store_tables)$'
build="$root/build"
cmake_args=()
ctest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --sanitize) build="$root/build-asan"; cmake_args+=(-DMOEREC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug) ;;
    --tsan) build="$root/build-tsan"; cmake_args+=(-DMOEREC_TSAN=ON -DCMAKE_BUILD_TYPE=Debug)
            # the tests with real concurrency: thread pool, store cache and
            # readers-vs-writer, FAISS experts searched while written, the
            # router's parallel experts, and the real server
            ctest_args+=(-R "$TSAN_TESTS") ;;
    --release) build="$root/build-rel"; cmake_args+=(-DCMAKE_BUILD_TYPE=Release) ;;
    --) shift; ctest_args+=("$@"); break ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
"$root/scripts/install-deps.sh" --tests
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S "$root" -B "$build" "${cmake_args[@]}" >/dev/null
if ! cmake --build "$build" -j"$jobs" > "$build/build.log" 2>&1; then
  grep -E -A3 "error|Error" "$build/build.log" | head -60 >&2
  echo "test.sh: build failed; full log in $build/build.log" >&2
  exit 1
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# suppressions: only races inside uninstrumented gRPC, abseil and OpenSSL,
# each with its reason in the file
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$root/scripts/tsan.supp}
ctest --test-dir "$build" -j"$jobs" --output-on-failure "${ctest_args[@]}"

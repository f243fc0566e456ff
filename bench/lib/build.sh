# bench/lib/build.sh — sourced by every bench/*.sh driver: build what it runs.
#
#   . "$here/lib/build.sh"
#   bench_build bench_NAME [moerec ...]   # configure (Release) if needed, build
#
# Sets MOEREC_ROOT and MOEREC_BUILD (default build-bench/, as bench/run) when
# unset, so a driver run directly on a fresh checkout works too. On a build
# failure it prints the first errors and the log's path and exits 1.
: "${MOEREC_ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${MOEREC_BUILD:=$MOEREC_ROOT/build-bench}"
export MOEREC_ROOT MOEREC_BUILD

bench_build() {
  if [ ! -f "$MOEREC_BUILD/CMakeCache.txt" ]; then
    cmake -S "$MOEREC_ROOT" -B "$MOEREC_BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  local log="$MOEREC_BUILD/bench-build-$1.log"
  if ! cmake --build "$MOEREC_BUILD" -j"$(nproc)" --target "$@" >"$log" 2>&1; then
    grep -E -A3 "error|Error" "$log" | head -40 >&2
    echo "bench: build of $* failed; log in $log" >&2
    exit 1
  fi
}

#!/usr/bin/env bash
# fuzz — every libFuzzer target (fuzz/) for a longer time; executions and crashes per target
#
# Builds build-fuzz/ with clang (scripts/fuzz.sh) and runs each target N
# seconds, J at a time, from the committed seeds plus the working corpus
# kept in build-fuzz/corpus/ between runs (so repeated runs add up).
# Usage: bench/run fuzz [--seconds 600] [--jobs 2] [--only 'a b'] [--fork K]
# JSON last: {"bench":"fuzz","targets":{NAME:{"execs":..,"crashes":..}}}
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
args=("$@")
case " ${args[*]} " in *" --seconds "*) ;; *) args+=(--seconds 600) ;; esac
exec "$root/scripts/fuzz.sh" "${args[@]}"

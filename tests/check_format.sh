#!/usr/bin/env bash
# check_format.sh — every C source and header of moerec (proto/'s
# generated code aside) is formatted as .clang-format says, so a change
# that is not formatted fails the suite instead of drifting the style.
# Fix with `clang-format -i FILE` (or `git clang-format`).
# Usage: check_format.sh SOURCE_DIR
set -u
cd "$1" || exit 2
cf=$(command -v clang-format || command -v clang-format-14) || {
  echo "FAIL: clang-format not found (scripts/install-deps.sh installs it)" >&2
  exit 1
}
files=$(find common hashing moe index server tools tests bench fuzz \
  -name '*.[ch]' -not -path '*/build*' | sort)
[ -n "$files" ] || { echo "FAIL: no sources found under $1" >&2; exit 1; }
# shellcheck disable=SC2086
if ! out=$("$cf" --dry-run --Werror $files 2>&1); then
  echo "$out" | grep -E '^[^ ]+:[0-9]+:[0-9]+: error' | cut -d: -f1 | sort -u |
    sed 's/^/FAIL: not formatted: /' >&2
  exit 1
fi
echo "$(echo "$files" | wc -l) files formatted as .clang-format says"

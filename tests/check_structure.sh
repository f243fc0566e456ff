#!/usr/bin/env bash
# check_structure.sh — the layout rules of design.md and issue 14 that a
# compiler does not check, over the source tree (not the build):
#   1. no source globs in moerec's CMake files (file(GLOB...),
#      aux_source_directory): a new file must be listed to build;
#   2. tests are registered by explicit list: no if(EXISTS ...) in tests/,
#      and every tests/**/test_*.{c,sh,py} is named in its folder's
#      CMakeLists.txt (as test_X.ext, or X in a foreach list);
#   3. an internal header (*_int.h) is included only inside its own folder
#      or that folder's tests (tests/<folder>/);
#   4. includes point one way (design.md's folder table): common/ includes
#      no other moerec folder, hashing/ only common/, moe/ only common/ and
#      hashing/, index/store/ and index/retrieval/ only common/ and
#      hashing/ (not each other), server/ not tools/; nothing outside
#      tools/ includes tools/ (its tests aside);
#   5. every source folder has a README.md;
#   6. every bench/NAME.c is a bench_NAME target of bench/CMakeLists.txt
#      (so every build, CI's included, compiles it) and every bench/*.sh
#      driver builds what it runs through bench/lib/build.sh (fuzz.sh
#      through scripts/fuzz.sh, its clang build).
# Usage: check_structure.sh SOURCE_DIR
set -u
cd "$1" || exit 2
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# 1. scripts/faiss_c builds the FAISS C API from Debian's faiss source
#    package, whose file list is upstream's, not moerec's: exempt.
while IFS= read -r f; do
  grep -n -i -E 'file *\( *GLOB|aux_source_directory' "$f" | while IFS= read -r l; do
    echo "FAIL: $f:$l: a source glob (list the files)" >&2
    echo x
  done
done < <(find . -path ./build\* -prune -o -path ./scripts/faiss_c -prune -o \
              \( -name CMakeLists.txt -o -name '*.cmake' \) -print) | grep -q x && fails=$((fails + 1))

# 2. explicit test lists
if grep -rn -i -E 'if *\( *(NOT +)?EXISTS' --include=CMakeLists.txt tests; then
  fail "tests/: a test behind if(EXISTS ...) drops out silently when renamed"
fi
while IFS= read -r t; do
  d=$(dirname "$t") b=$(basename "$t") stem=${b#test_}
  stem=${stem%.*}
  grep -q -E "(^|[^A-Za-z0-9_])(${b//./\\.}|test_${stem}|${stem})([^A-Za-z0-9_]|$)" "$d/CMakeLists.txt" \
    || fail "$t is not registered in $d/CMakeLists.txt"
done < <(find tests -name 'test_*.c' -o -name 'test_*.sh' -o -name 'test_*.py' | sort)

# 3. internal headers
while IFS= read -r h; do
  h=${h#./} d=$(dirname "$h")
  grep -rl --include='*.c' --include='*.h' "#include \"$h\"" . | sed 's|^\./||' | while IFS= read -r f; do
    case "$f" in "$d"/* | tests/"$d"/*) ;; *) echo "FAIL: $f includes $h, internal to $d/" >&2; echo x ;; esac
  done
done < <(find . -path ./build\* -prune -o -name '*_int.h' -print) | grep -q x && fails=$((fails + 1))

# 4. the include arrows
check_arrow() { # folder, extended regex of forbidden include prefixes
  local hits
  hits=$(grep -rn -E "#include \"($2)/" --include='*.c' --include='*.h' "$1" 2>/dev/null)
  [ -z "$hits" ] || fail "$1 includes what it may not use:"$'\n'"$hits"
}
check_arrow common 'hashing|moe|index|server|tools|proto'
check_arrow hashing 'moe|index|server|tools|proto'
check_arrow moe 'index|server|tools|proto'
check_arrow index/store 'moe|index/retrieval|server|tools'
check_arrow index/retrieval 'moe|index/store|server|tools'
check_arrow server 'tools'
for d in common hashing moe index server bench fuzz; do
  hits=$(grep -rn -E '#include "(tools/)?(cli|command|index_features|version)\.h"' --include='*.c' --include='*.h' "$d" 2>/dev/null)
  [ -z "$hits" ] || fail "$d includes tools/:"$'\n'"$hits"
done

# 5. READMEs
for d in common hashing moe index index/store index/retrieval server tools tests bench proto docs; do
  [ -f "$d/README.md" ] || fail "$d has no README.md"
done

# 6. benchmarks build what they run
for f in bench/*.c; do
  n=$(basename "$f" .c)
  grep -q -E "(^|[ (])$n([ )]|$)" bench/CMakeLists.txt || fail "$f is not a target in bench/CMakeLists.txt"
done
for f in bench/*.sh; do
  case "$f" in bench/fuzz.sh) grep -q 'scripts/fuzz.sh' "$f" || fail "$f does not build its targets" ;;
  *) grep -q -E '^\. "\$here/lib/build.sh"' "$f" && grep -q -E '^bench_build ' "$f" \
       || fail "$f does not build what it runs (. lib/build.sh; bench_build TARGET...)" ;;
  esac
done

[ $fails -eq 0 ] && echo "check_structure: all checks passed"
exit $fails

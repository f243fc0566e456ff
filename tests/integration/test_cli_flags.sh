#!/bin/sh
# test_cli_flags.sh — every `moerec` subcommand: --help exits 0 with a usage
# line and an example; a bad number (--epochs x, --batch 0, ...) or an
# unknown flag exits 2 with a message naming the flag, never a silent 0.
# Usage: test_cli_flags.sh PATH/TO/moerec
set -u
moerec=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

for cmd in train score index serve synth demo-data; do
  "$moerec" $cmd --help > "$dir/out" 2>&1 || fail "$cmd --help exit $?"
  grep -q "usage: moerec $cmd" "$dir/out" || fail "$cmd --help has no usage line"
done
for cmd in train score; do
  "$moerec" $cmd --help | grep -q "^Example" || fail "$cmd --help has no example"
done

# expect CMD... -- MESSAGE: exit 2 and MESSAGE on stderr
expect() {
  msg=$1; shift
  "$moerec" "$@" > /dev/null 2> "$dir/err"
  rc=$?
  [ $rc -eq 2 ] || fail "$* exited $rc, not 2"
  grep -qF -- "$msg" "$dir/err" || fail "$*: no '$msg' in: $(cat "$dir/err")"
}
expect "--epochs: 'x' is not an integer" train --model-json m --data d --out o --epochs x
expect "--epochs: '0' is not an integer in [1," train --model-json m --data d --out o --epochs 0
expect "--lr: '1e' is not a number" train --model-json m --data d --out o --lr 1e
expect "--seed: '-1' is not an integer >= 0" train --model-json m --data d --out o --seed -1
expect "--sdim-params TAU: 'q'" train --model-json m --data d --out o --sdim-params 48,q,1,1,1
expect "unknown option '--bogus'" train --bogus
expect "--epochs needs a value" train --epochs
expect "--batch: 'x' is not an integer" score --model m --data d --batch x
expect "--threads: '-1' is not an integer in [0, 256]" score --model m --data d --threads -1
expect "unknown option '--nope'" score --nope
expect "--data needs a value" score --model m --data
expect "--port: 'x' is not an integer in [0, 65535]" serve --port x
expect "--queues: '0' is not an integer in [1, 256]" serve --queues 0
# every index subcommand accepts --quiet (docs/index-tool.md): past the flag
# parser, a missing required flag is what stops it
for sub in retrievers graphhash tables features embeddings; do
  "$moerec" index $sub --quiet > /dev/null 2> "$dir/err"
  if grep -q "unknown option '--quiet'" "$dir/err"; then fail "index $sub refuses --quiet"; fi
done
expect "--pilots: 'x' is not an integer" index retrievers --pilots x
expect "--seed: '-3' is not an integer >= 0" index graphhash --seed -3 --interactions a --out b
expect "--folds: 'x' is not an integer in [2, 64]" index features --log l --out o --task a:b --folds x
expect "--prior-strength: '-1' is not a number" index features --log l --out o --task a:b --prior-strength -1
expect "--dim: '0' is not an integer in [1, 1024]" index embeddings --log l --items-out o --dim 0
expect "--lr: 'fast' is not a number" index embeddings --log l --items-out o --lr fast
expect "--users: 'abc' is not an integer" demo-data --out "$dir/d" --users abc
expect "--users: '1.5' is not an integer" synth --out "$dir/s" --users 1.5
# every index target and synth parse with getopt_long: range, unknown
# flags, a flag without its value, stray arguments
expect "--max-rows: 'x' is not an integer in [1," index tables --model-json m --data d --out o --max-rows x
expect "--resolution: '-1' is not a number" index tables --model-json m --data d --out o --resolution -1
expect "--top-p: '0' is not a number in (0, 1]" index retrievers --items i --out o --top-p 0
expect "--max-experts: '65' is not an integer in [1, 64]" index retrievers --items i --out o --max-experts 65
expect "--resolution: 'big' is not a number" index graphhash --interactions a --out b --resolution big
expect "--threads: '1;5' is not an integer" index embeddings --log l --items-out o --threads '1;5'
expect "--interests: '17' is not an integer in [2, 16]" synth --out "$dir/s" --interests 17
expect "--seed: 'x' is not an integer >= 0" synth --out "$dir/s" --seed x
for t in retrievers graphhash tables features embeddings; do
  expect "unknown option '--bogus'" index $t --bogus 1
  expect "unexpected argument 'stray'" index $t stray
done
expect "unknown option '--bogus'" synth --bogus
expect "--users needs a value" synth --users
expect "--pilots needs a value" index retrievers --items i --out o --pilots
[ $fails -eq 0 ] && echo "test_cli_flags: all checks passed"
exit $fails

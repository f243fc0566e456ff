# bench/lib/demo_serve.sh — sourced by bench/*.sh drivers after lib/build.sh:
# serve the demo world on 127.0.0.1 (needs $build and $dir).
#
# The demo world served: demo-data (extra args passed on) into $dir, train
# EPOCHS, index retrievers (genre experts + popularity), `moerec serve` on
# 127.0.0.1 (model, retrievers, store). Sets $pid and $target; the caller
# owns $dir and kills $pid.
#   demo_serve EPOCHS [DEMO-DATA ARGS...]
demo_serve() {
  local epochs=$1 moerec="$build/tools/moerec"
  shift
  "$moerec" demo-data --out "$dir" "$@" 2>/dev/null
  "$moerec" train --model-json "$dir/model.json" --data "$dir/interactions.csv" \
    --out "$dir/models/demo" --epochs "$epochs" --quiet > /dev/null 2>&1
  "$moerec" index retrievers --items "$dir/item_vectors.csv" --expert-column genre \
    --events "$dir/events.csv" --popularity --pilots 2 --quiet \
    --out "$dir/models/demo/1/retrievers" > /dev/null 2>&1
  "$moerec" serve --port 0 --log-level warn --model-dir "$dir/models" --data-dir "$dir/db" \
    --item-dim 16 > "$dir/port" &
  pid=$!
  for _ in $(seq 100); do grep -q listening "$dir/port" 2>/dev/null && break; sleep 0.1; done
  target=$(sed -n 's/^listening on //p' "$dir/port")
}

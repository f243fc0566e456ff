# ann — fashion-mnist recall@10 and QPS: moerec's FAISS retriever vs raw FAISS on the same index vs hnswlib
#
# Data: Debian's dataset-fashion-mnist (60k base, 10k queries, 784-d, L2);
# peer: python3-hnswlib (M=32, efConstruction=40 like FAISS's HNSW32). Both
# bench-only packages are installed here when missing. Ground truth is exact
# search (bench_ann). Every search runs on one thread; the last line is one
# JSON object with QPS and overheads at matched recall >= 0.95.
# Usage: bench/run ann [--nq N] [--efs 16,32,64]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/build.sh"
data=/usr/share/datasets/fashion-mnist
need=()
[ -e "$data/train-images-idx3-ubyte.gz" ] || need+=(dataset-fashion-mnist)
/usr/bin/python3 -c 'import hnswlib, numpy' 2>/dev/null || need+=(python3-hnswlib python3-numpy)
if [ ${#need[@]} -gt 0 ]; then
  echo "ann: installing ${need[*]}" >&2
  if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq "${need[@]}" >/dev/null
  else sudo apt-get install -y -qq "${need[@]}" >/dev/null; fi
fi
bench_build bench_ann
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gunzip -c "$data/train-images-idx3-ubyte.gz" > "$tmp/base.idx"
gunzip -c "$data/t10k-images-idx3-ubyte.gz" > "$tmp/query.idx"
"$MOEREC_BUILD/bench/bench_ann" --base "$tmp/base.idx" --queries "$tmp/query.idx" \
  --gt-out "$tmp/gt.bin" "$@" > "$tmp/faiss.json"
OMP_NUM_THREADS=1 /usr/bin/python3 - "$tmp" <<'PY'
import json, sys, time
import numpy as np
import hnswlib
tmp = sys.argv[1]
def idx(path):
    raw = np.fromfile(path, dtype=np.uint8)
    n, r, c = (int.from_bytes(raw[i:i + 4].tobytes(), "big") for i in (4, 8, 12))
    return raw[16:].reshape(n, r * c).astype(np.float32)
xb, xq = idx(tmp + "/base.idx"), idx(tmp + "/query.idx")
m = json.loads(open(tmp + "/faiss.json").read().strip().splitlines()[-1])
nq, k = m["n_query"], m["k"]
xq = xq[:nq]
gt = np.fromfile(tmp + "/gt.bin", dtype=np.int64).reshape(nq, k)
t0 = time.time()
p = hnswlib.Index(space="l2", dim=xb.shape[1])
p.init_index(max_elements=xb.shape[0], M=32, ef_construction=40, random_seed=100)
p.set_num_threads(2)
p.add_items(xb, np.arange(xb.shape[0]))
build_s = time.time() - t0
print(f"ann: hnswlib build {build_s:.1f} s", file=sys.stderr)
p.set_num_threads(1)
pts = []
for ef in [pt["ef"] for pt in m["points"]]:
    p.set_ef(max(ef, k))
    t0 = time.time()
    for i in range(nq):   # one query per call, like the serving path
        lab, _ = p.knn_query(xq[i:i + 1], k=k)
        if i == 0: labs = np.empty((nq, k), dtype=np.int64)
        labs[i] = lab[0]
    qps = nq / (time.time() - t0)
    t0 = time.time()
    p.knn_query(xq, k=k)
    qps_b = nq / (time.time() - t0)
    rec = float(np.mean([len(set(labs[i]) & set(gt[i])) / k for i in range(nq)]))
    pts.append({"ef": ef, "recall": round(rec, 4), "qps": round(qps, 1), "qps_batch": round(qps_b, 1)})
    print(f"ann: hnswlib ef {ef:3d} recall {rec:.4f} qps single {qps:.0f} batch {qps_b:.0f}", file=sys.stderr)
h = next((pt for pt in pts if pt["recall"] >= 0.95), None)
mm = m["matched"]
out = {"bench": "ann", "n_base": m["n_base"], "n_query": nq, "dim": m["dim"], "k": k,
       "threads_search": 1, "moerec_faiss": m["points"], "hnswlib": pts,
       "matched_recall": 0.95,
       "moerec_at_matched": mm, "hnswlib_at_matched": h}
if mm:
    out["overhead_vs_faiss_single"] = mm["overhead_single"]
    out["overhead_vs_faiss_batch"] = mm["overhead_batch"]
    out["target_overhead_met"] = mm["overhead_single"] <= 0.10 and mm["overhead_batch"] <= 0.10
if mm and h:
    out["qps_ratio_moerec_vs_hnswlib"] = round(mm["qps_moerec"] / h["qps"], 4)
print(json.dumps(out, separators=(",", ":")))
PY

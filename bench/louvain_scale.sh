# louvain_scale — GraphHash Louvain time, peak memory and modularity at 1M/10M edges; MovieLens vs networkx
#
# Runs bench_louvain_scale (bench/louvain_scale.c) on synthetic bipartite
# graphs of 1M and 10M edges (time, process peak RSS, modularity), then on
# MovieLens next to the peer: python3-networkx's Louvain on the same graph
# treated as unipartite. Both partitions are scored with both measures:
# Barber's bipartite Q (ours, via louvain_modularity) and Newman's Q
# (networkx.community.modularity). Last stdout line: one JSON object.
# Usage: bench/run louvain_scale [--skip-10m]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/build.sh"
bench_build bench_louvain_scale
bin=$MOEREC_BUILD/bench/bench_louvain_scale
. "$here/lib/movielens_data.sh"
movielens_csv
/usr/bin/python3 -c 'import networkx' 2>/dev/null || apt-get install -y python3-networkx >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

s1=$("$bin" --synthetic 1000000 --seed 1)
echo "$s1"
if [ "${1:-}" = "--skip-10m" ]; then s10=null; else s10=$("$bin" --synthetic 10000000 --seed 1); echo "$s10"; fi

"$bin" --movielens "$MOVIELENS" --write-partition "$tmp/ours.txt" >/dev/null
/usr/bin/python3 - "$MOVIELENS" "$tmp/ours.txt" "$tmp/peer.txt" "$tmp/peer.json" <<'PY'
import csv, json, sys, time
import networkx as nx
path, ours_path, peer_path, out = sys.argv[1:5]
G = nx.Graph()
with open(path) as f:
    for row in csv.DictReader(f):
        u, i = "u" + row["userId"], "i" + row["movieId"]
        if G.has_edge(u, i):
            G[u][i]["weight"] += 1.0
        else:
            G.add_edge(u, i, weight=1.0)
t0 = time.time()
peer = nx.community.louvain_communities(G, weight="weight", resolution=1.0, seed=1)
secs = time.time() - t0
with open(peer_path, "w") as f:
    for c, nodes in enumerate(peer):
        for n in nodes:
            f.write(f"{n} {c}\n")
ours = {}
with open(ours_path) as f:
    for line in f:
        n, c = line.split()
        ours.setdefault(int(c), set()).add(n)
json.dump({"peer_newman_q": nx.community.modularity(G, peer, weight="weight"),
           "ours_newman_q": nx.community.modularity(G, list(ours.values()), weight="weight"),
           "peer_seconds": secs, "peer_clusters": len(peer)}, open(out, "w"))
PY
ml=$("$bin" --movielens "$MOVIELENS" --eval-partition "$tmp/peer.txt")
echo "$ml"
/usr/bin/python3 - "$s1" "$s10" "$ml" "$tmp/peer.json" <<'PY'
import json, sys
s1, s10, ml = (json.loads(x) for x in sys.argv[1:4])
peer = json.load(open(sys.argv[4]))
print(json.dumps({
    "bench": "louvain_scale",
    "synthetic_1m": {k: s1[k] for k in ("edges", "louvain_s", "build_s", "peak_rss_mb", "modularity", "clusters")},
    "synthetic_10m": None if s10 is None else {k: s10[k] for k in ("edges", "louvain_s", "build_s", "peak_rss_mb", "modularity", "clusters")},
    "movielens": {
        "ours_barber_q": ml["barber_q"], "peer_barber_q": ml["peer_barber_q"],
        "ratio_barber_q": round(ml["barber_q"] / ml["peer_barber_q"], 4),
        "ours_newman_q": round(peer["ours_newman_q"], 4), "peer_newman_q": round(peer["peer_newman_q"], 4),
        "ratio_newman_q": round(peer["ours_newman_q"] / peer["peer_newman_q"], 4),
        "ours_clusters": ml["clusters"], "peer_clusters": peer["peer_clusters"],
        "ours_seconds": ml["seconds"], "peer_seconds": round(peer["peer_seconds"], 3),
    },
}))
PY

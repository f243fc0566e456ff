#!/usr/bin/python3
"""serve_torch.py — the Python peer of bench/serve_peer.sh: moerec.v1.Recommender/Score
for a moerec MMoE model directory (the moe_speed shape), in grpcio + PyTorch.

    serve_torch.py serve MODEL_DIR [--precision fp32|bf16] [--workers N]
        listen on 127.0.0.1 (free port), print "listening on 127.0.0.1:PORT"
    serve_torch.py check MODEL_DIR --moerec HOST:PORT [--peer HOST:PORT] [--precision P]
        send 4 random requests (50 candidates; shared, overridden, missing
        and two-valued features) to moerec's Score and to the
        peer server at --peer (in process without it); exit 1 unless every
        task value and score agrees (fp32: 1e-4, bf16: 3e-2 per task)

It reads model.json and weights.safetensors by hand (docs/model-format.md),
hashes a categorical value as moerec does (hashing/idhash.c: id =
XXH3_64(field name, 0x1f, value; seed = table seed), row = XXH3_64(id as 8
little-endian bytes; seed) mod rows, python3-xxhash), normalises numerics
with the stored mean/std/fill, and runs the forward in torch: eval, no_grad,
torch.set_num_threads(1) (OPENBLAS_NUM_THREADS=1, OMP_NUM_THREADS=1 set
before torch loads). bf16 casts the expert and tower MLPs to bfloat16 (their
inputs too, outputs back to fp32) and keeps the gates and the mixing fp32,
as moerec's bf16 does. Stubs are generated from proto/ with grpc_tools into
a temporary directory at start. Only MMoE, one level, ReLU, dense gates,
hash tables (what the benchmark serves); anything else is refused at load.
"""
import argparse
import json
import os
import sys
import tempfile

os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import xxhash  # noqa: E402
from concurrent import futures  # noqa: E402

torch.set_num_threads(1)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_f32 import read_safetensors  # noqa: E402


def load_stubs(out):
    from grpc_tools import protoc
    proto = os.path.join(ROOT, "proto")
    if protoc.main(["protoc", "-I" + proto, "--python_out=" + out, "--grpc_python_out=" + out,
                    os.path.join(proto, "moerec.proto")]):
        raise RuntimeError("protoc failed on moerec.proto")
    sys.path.insert(0, out)


class Model:
    def __init__(self, d, precision):
        cfg = json.load(open(os.path.join(d, "model.json")))
        a = cfg["arch"]
        if a["type"] != "mmoe" or a.get("levels", 1) != 1 or a.get("activation", "relu") != "relu" \
                or a.get("gate", {}).get("type", "dense") != "dense" or a.get("task_experts", 0) \
                or a.get("expert_norm") or a.get("feature_gate_rank", 0) or cfg["features"].get("extra_dim", 0):
            raise ValueError("serve_torch: only a one-level dense ReLU MMoE (the moe_speed shape)")
        W = read_safetensors(os.path.join(d, "weights.safetensors"))
        tables = {t["name"]: t for t in cfg["tables"]}
        self.cat = {}  # name -> (index, table name, rows, seed, mean combiner)
        self.emb, self.cat_mean = [], []
        for i, c in enumerate(cfg["features"]["categorical"]):
            t = tables[c.get("table", c["name"])]
            if t.get("hash", "hash") != "hash":
                raise ValueError("serve_torch: table %s: only hash tables" % t["name"])
            self.cat[c["name"]] = (i, int(t["rows"]), int(t["seed"]))
            self.emb.append(W["emb." + t["name"]])
            self.cat_mean.append(c.get("combiner", "sum") == "mean")
        self.num = {}
        for i, c in enumerate(cfg["features"]["numeric"]):
            mean, std = float(c.get("mean", 0)), float(c.get("std", 1))
            self.num[c["name"]] = (i, mean, std)
        self.num_fill = np.array([(float(c.get("fill", c.get("mean", 0))) - float(c.get("mean", 0)))
                                  / float(c.get("std", 1)) for c in cfg["features"]["numeric"]], dtype=np.float32)
        self.tasks = [t["name"] for t in cfg["tasks"]]
        self.binary = [t.get("kind", "binary") == "binary" for t in cfg["tasks"]]
        self.weight = [float(t.get("weight", 1)) for t in cfg["tasks"]]
        self.dims = [e.shape[1] for e in self.emb]
        E, T = a.get("experts", 8), len(self.tasks)
        in_dim = sum(self.dims) + len(self.num)

        def mlp(prefix, dims, act_last):
            layers = []
            for i in range(len(dims) - 1):
                lin = torch.nn.Linear(dims[i], dims[i + 1])
                lin.weight.data.copy_(W["%s.fc%d.w" % (prefix, i)])
                lin.bias.data.copy_(W["%s.fc%d.b" % (prefix, i)])
                layers.append(lin)
                if i < len(dims) - 2 or act_last:
                    layers.append(torch.nn.ReLU())
            return torch.nn.Sequential(*layers).eval()

        eh, th = a.get("expert_hidden", [16]), a.get("tower_hidden", [8])
        self.experts = [mlp("l0.e%d" % i, [in_dim] + eh, True) for i in range(E)]
        self.gates = [W["l0.gate%d.w" % k] for k in range(T)]
        self.towers = [mlp("tower%d" % k, [eh[-1]] + th + [1], False) for k in range(T)]
        self.low = torch.bfloat16 if precision == "bf16" else None
        if self.low is not None:
            for m in self.experts + self.towers:
                m.to(self.low)
        self.precision = precision
        self.version = "%s/%s" % (os.path.basename(os.path.dirname(os.path.abspath(d))),
                                  os.path.basename(os.path.abspath(d)))

    def row(self, name, value):
        _, rows, seed = self.cat[name]
        h = xxhash.xxh3_64_intdigest(name.encode() + b"\x1f" + value.encode(), seed)
        return xxhash.xxh3_64_intdigest(h.to_bytes(8, "little"), seed) % rows

    def forward(self, x):
        with torch.no_grad():
            xl = x.to(self.low) if self.low is not None else x
            e = torch.stack([ex(xl).float() for ex in self.experts], dim=1)  # (B, E, D)
            outs = []
            for k, g in enumerate(self.gates):
                p = torch.softmax(x @ g.t(), dim=1).unsqueeze(2)
                mix = (p * e).sum(dim=1)
                outs.append(self.towers[k](mix.to(self.low) if self.low is not None else mix).float())
            z = torch.cat(outs, dim=1)
            for k, b in enumerate(self.binary):
                if b:
                    z[:, k] = torch.sigmoid(z[:, k])
            return z, z @ torch.tensor(self.weight)


class BadRequest(Exception):
    pass


def score(model, r):
    """(task outputs (n, T), scores (n,)) for a ScoreRequest, or BadRequest."""
    if not r.user_id:
        raise BadRequest("user_id is required")
    n = len(r.candidates)
    if n == 0 or n > 5000:
        raise BadRequest("candidates: 1..5000 required")
    nf = len(model.emb)
    # Rows per candidate and field: one row in `single` (-1: not set, the
    # shared value applies), other counts in `multi`; built in numpy, then
    # one gather per field, so per-value Python work is the hashing alone.
    single = np.full((n, nf), -1, dtype=np.int64)
    multi = {}
    shared = [None] * nf
    num = np.tile(model.num_fill, (n, 1))

    def apply(f, target, i):
        for c in f.categorical:
            if c.name not in model.cat:
                raise BadRequest("%s: unknown categorical feature '%s'" % (target, c.name))
            k = model.cat[c.name][0]
            v = [model.row(c.name, s) for s in c.values]
            if i is None:
                shared[k] = v
            elif len(v) == 1:
                single[i, k] = v[0]
            else:
                single[i, k] = -2
                multi[(i, k)] = v
        for c in f.numeric:
            if c.name not in model.num:
                raise BadRequest("%s: unknown numeric feature '%s'" % (target, c.name))
            k, mean, std = model.num[c.name]
            if i is None:
                num[:, k] = (c.value - mean) / std
            else:
                num[i, k] = (c.value - mean) / std

    apply(r.user_features, "user_features", None)
    apply(r.context_features, "context_features", None)
    for i, c in enumerate(r.candidates):
        if not c.item_id:
            raise BadRequest("candidates[%d].item_id is required" % i)
        apply(c.features, "candidates", i)

    def bag(tab, v, mean):
        if not v:
            return torch.zeros(tab.shape[1])
        b = tab[v].sum(0)
        return b / len(v) if mean else b

    parts = []
    for k in range(nf):
        tab, mean, col = model.emb[k], model.cat_mean[k], single[:, k]
        sb = bag(tab, shared[k], mean)
        if (col == -1).all():
            parts.append(sb.expand(n, -1))
            continue
        b = tab[torch.from_numpy(np.maximum(col, 0))]
        unset = col == -1
        if unset.any():
            b[torch.from_numpy(unset)] = sb
        for i in np.nonzero(col == -2)[0]:
            b[i] = bag(tab, multi[(int(i), k)], mean)
        parts.append(b)
    num = torch.from_numpy(num)
    x = torch.cat(parts + [num], dim=1)
    return model.forward(x)


def make_servicer(model, pb, pb_grpc):
    class Servicer(pb_grpc.RecommenderServicer):
        def Score(self, request, context):
            try:
                tasks, sc = score(model, request)
            except BadRequest as e:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            tl, sl = tasks.tolist(), sc.tolist()
            items = [pb.ScoredItem(item_id=c.item_id, score=sl[i],
                                   tasks=[pb.TaskScore(task=t, value=tl[i][k]) for k, t in enumerate(model.tasks)])
                     for i, c in enumerate(request.candidates)]
            return pb.ScoreResponse(request_id=request.request_id, items=items, model_version=model.version)
    return Servicer()


def random_request(pb, rng, n):
    def feats(cats, nums):
        return pb.Features(categorical=[pb.CategoricalFeature(name="c%d" % k, values=["v%d" % rng.integers(100000)])
                                        for k in cats],
                           numeric=[pb.NumericFeature(name="n%d" % k, value=float(rng.standard_normal()))
                                    for k in nums])
    return pb.ScoreRequest(user_id="u%d" % rng.integers(100000), user_features=feats(range(10), range(16)),
                           candidates=[pb.Candidate(item_id="i%d" % i, features=feats(range(10, 20), range(16, 32)))
                                       for i in range(n)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["serve", "check"])
    ap.add_argument("model_dir")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--moerec")
    ap.add_argument("--peer")
    ap.add_argument("--candidates", type=int, default=50)
    args = ap.parse_args()
    model = Model(args.model_dir, args.precision)
    with tempfile.TemporaryDirectory() as tmp:
        load_stubs(tmp)
        import moerec_pb2 as pb
        import moerec_pb2_grpc as pb_grpc
        if args.mode == "check":
            stub = pb_grpc.RecommenderStub(grpc.insecure_channel(args.moerec))
            peer = pb_grpc.RecommenderStub(grpc.insecure_channel(args.peer)) if args.peer else None
            rng = np.random.default_rng(5)
            tol = 1e-4 if args.precision == "fp32" else 3e-2
            worst = 0.0
            for _ in range(4):
                req = random_request(pb, rng, args.candidates)
                # every path of the feature assembly: a user value that the
                # candidates override (c19) and one that candidate 1 takes
                # (it drops c19), two values in one bag, a missing numeric
                req.user_features.categorical.add(name="c19", values=["shared"])
                req.candidates[0].features.categorical[0].values.append("second")
                c1 = req.candidates[1].features
                del c1.categorical[9]
                del c1.numeric[0]
                got = stub.Score(req, timeout=30)
                if peer:
                    mine = peer.Score(req, timeout=30)
                    sc = np.array([it.score for it in mine.items])
                    tasks = np.array([[t.value for t in it.tasks] for it in mine.items])
                else:
                    tasks, sc = (a.numpy() for a in score(model, req))
                ref_s = np.array([it.score for it in got.items])
                ref_t = np.array([[t.value for t in it.tasks] for it in got.items])
                worst = max(worst, float(np.abs(ref_s - sc).max()) / len(model.tasks),
                            float(np.abs(ref_t - tasks).max()))
            ok = worst <= tol
            info = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=30)
            print("serve_torch check (%s): max |task diff| vs moerec Score %.2e (tolerance %.0e) %s"
                  % (args.precision, worst, tol, "ok" if ok else "FAILED"), file=sys.stderr)
            print(json.dumps({"precision": args.precision, "moerec_precision": info.precision,
                              "moerec_precision_note": info.precision_note, "max_abs_diff": worst, "ok": ok}))
            sys.exit(0 if ok else 1)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers))
        pb_grpc.add_RecommenderServicer_to_server(make_servicer(model, pb, pb_grpc), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        print("listening on 127.0.0.1:%d" % port, flush=True)
        server.wait_for_termination()


if __name__ == "__main__":
    main()

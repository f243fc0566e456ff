#!/usr/bin/python3
"""parity.py — independent numpy forward of a moerec model directory.

Reads DIR/model.json and DIR/weights.safetensors (parsed here by hand from
the format's definition: 8-byte little-endian header length, JSON header,
little-endian F32 tensors), DIR/x.f32 (B, in_dim) and DIR/out.f32 (T, B)
tower outputs computed by moerec, recomputes the forward in float64 from
docs/model-format.md and exits 1 unless every output matches within
--rtol relative (scale max(|ref|, 1)). Used by test_parity.c.
"""
import json
import struct
import sys

import numpy as np


def read_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    hdr = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, e in hdr.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", name
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[b:end], dtype="<f4").astype(np.float64).reshape(e["shape"])
    return out


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def route(p, kind, k, top_p):
    """Kept mask per row of probabilities p (B, L)."""
    B, L = p.shape
    if kind == "dense":
        return np.ones_like(p, dtype=bool)
    kept = np.zeros_like(p, dtype=bool)
    for b in range(B):
        order = sorted(range(L), key=lambda i: (-p[b, i], i))
        if kind == "topk":
            nk = min(k, L)
        else:
            cum, nk = 0.0, L
            for j, i in enumerate(order):
                cum += p[b, i]
                if cum > top_p:
                    nk = j + 1
                    break
        for i in order[:nk]:
            kept[b, i] = True
    return kept


class Net:
    def __init__(self, cfg, W):
        self.cfg, self.W = cfg, W
        a = cfg["arch"]
        self.a = a
        self.T = len(cfg["tasks"])
        kind = a["type"]
        self.gate = a["gate"]
        ms, mt, nl, slots0 = a["experts"], a["task_experts"], 1, self.T
        if kind == "shared_bottom":
            slots0, mt, ms = 1, 0, 1
        elif kind == "omoe":
            slots0, mt = 1, 0
        elif kind == "mmoe":
            mt = 0
        elif kind == "ple":
            nl = a["levels"]
        elif kind == "home":
            nl = 2
            slots0 = max(a["task_groups"]) + 1
        self.levels = []
        for j in range(nl):
            slots = slots0 if j == 0 else self.T
            parent = [a["task_groups"][s] if (kind == "home" and j == 1) else s for s in range(slots)]
            self.levels.append(dict(slots=slots, parent=parent, mt=mt, ms=ms,
                                    sgate=(j < nl - 1 and ms > 0)))

    def mlp(self, prefix, x, act_last, act, norm):
        W = self.W
        if prefix + ".fg.a" in W:
            t = (x @ W[prefix + ".fg.a"].T) @ W[prefix + ".fg.b"].T
            x = x * 2.0 * sigmoid(t)
        l = 0
        while prefix + ".fc%d.w" % l in W:
            l += 1
        for i in range(l):
            z = x @ W[prefix + ".fc%d.w" % i].T + W[prefix + ".fc%d.b" % i]
            if norm:
                m = z.mean(axis=1, keepdims=True)
                v = ((z - m) ** 2).mean(axis=1, keepdims=True)
                z = W[prefix + ".norm%d.g" % i] * (z - m) / np.sqrt(v + 1e-5) + W[prefix + ".norm%d.b" % i]
            if i < l - 1 or act_last:
                z = z * sigmoid(z) if act == "swish" else np.maximum(z, 0)
            x = z
        return x

    def mix(self, name, x, choice, E):
        g = self.gate
        n_always = min(g["always_on"], len(choice))
        routed = choice[n_always:]
        L = len(routed) + g["null_experts"]
        if L == 1 and g["null_experts"] == 0:
            L, n_always, routed = 0, len(choice), []
        out = sum(E[c] for c in choice[:n_always]) if n_always else 0.0
        if L:
            logits = x @ self.W[name].T
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            kept = route(p, g["type"], g["k"], g["p"])
            for i, c in enumerate(routed):  # null experts (i >= len(routed)) add 0
                out = out + (p[:, i] * kept[:, i])[:, None] * E[c]
        return out

    def forward(self, x):
        a = self.a
        ins, sin = None, x
        for j, lv in enumerate(self.levels):
            slot_in = [x] * lv["slots"] if j == 0 else [ins[p] for p in lv["parent"]]
            nt = lv["slots"] * lv["mt"]
            E = []
            for i in range(nt + lv["ms"]):
                xi = slot_in[i // lv["mt"]] if i < nt else sin
                E.append(self.mlp("l%d.e%d" % (j, i), xi, True, a["activation"], a["expert_norm"]))
            shared = list(range(nt, nt + lv["ms"]))
            outs = []
            for s in range(lv["slots"]):
                choice = shared + [s * lv["mt"] + i for i in range(lv["mt"])]
                o = self.mix("l%d.gate%d.w" % (j, s), slot_in[s], choice, E)
                if "l%d.selfgate%d.w" % (j, s) in self.W:
                    sg = sigmoid(slot_in[s] @ self.W["l%d.selfgate%d.w" % (j, s)].T + self.W["l%d.selfgate%d.b" % (j, s)])
                    o = o + sg * slot_in[s]
                outs.append(o)
            if lv["sgate"]:
                sin = self.mix("l%d.sgate.w" % j, sin, shared + list(range(nt)), E)
            ins = outs
        res = []
        for k in range(self.T):
            slot = 0 if len(ins) == 1 else k
            res.append(self.mlp("tower%d" % k, ins[slot], False, "relu", False)[:, 0])
        return np.stack(res)


def main():
    d = sys.argv[1]
    rtol = float(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--rtol" else 1e-5
    cfg = json.load(open(d + "/model.json"))
    W = read_safetensors(d + "/weights.safetensors")
    in_dim = sum(t["dim"] for f in cfg["features"]["categorical"] for t in cfg["tables"] if t["name"] == f["table"])
    in_dim += len(cfg["features"]["numeric"]) + cfg["features"]["extra_dim"]
    x = np.fromfile(d + "/x.f32", dtype="<f4").astype(np.float64).reshape(-1, in_dim)
    got = np.fromfile(d + "/out.f32", dtype="<f4").astype(np.float64).reshape(len(cfg["tasks"]), -1)
    ref = Net(cfg, W).forward(x)
    err = np.abs(got - ref) / np.maximum(np.abs(ref), 1.0)
    print("parity %s: %d outputs, max rel err %.3g (rtol %g)" % (cfg["arch"]["type"], ref.size, err.max(), rtol))
    sys.exit(0 if err.max() <= rtol else 1)


if __name__ == "__main__":
    main()

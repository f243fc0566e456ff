#!/usr/bin/python3
"""PyTorch peer of bench/moe_speed: the same MMoE (weights read from the
model directory's weights.safetensors), one thread, eval + no_grad for
inference, Adam + BCE for training. Checks it computes the same outputs as
moerec on DIR/x.f32 before timing. Prints one JSON line."""
import copy
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))
from safetensors_f32 import read_safetensors  # noqa: E402

torch.set_num_threads(1)
REPS = 5
d = sys.argv[1]
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0


cfg = json.load(open(d + "/model.json"))
W = read_safetensors(d + "/weights.safetensors")
a = cfg["arch"]
T, E = len(cfg["tasks"]), a["experts"]
in_dim = 16 * len(cfg["features"]["categorical"]) + len(cfg["features"]["numeric"])


def mlp(prefix, dims, act_last):
    layers = []
    for i in range(len(dims) - 1):
        lin = nn.Linear(dims[i], dims[i + 1])
        lin.weight.data.copy_(W["%s.fc%d.w" % (prefix, i)])
        lin.bias.data.copy_(W["%s.fc%d.b" % (prefix, i)])
        layers.append(lin)
        if i < len(dims) - 2 or act_last:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MMoE(nn.Module):
    def __init__(self):
        super().__init__()
        self.experts = nn.ModuleList([mlp("l0.e%d" % i, [in_dim] + a["expert_hidden"], True) for i in range(E)])
        self.gates = nn.ModuleList()
        for k in range(T):
            g = nn.Linear(in_dim, E, bias=False)
            g.weight.data.copy_(W["l0.gate%d.w" % k])
            self.gates.append(g)
        self.towers = nn.ModuleList([mlp("tower%d" % k, [a["expert_hidden"][-1]] + a["tower_hidden"] + [1], False)
                                     for k in range(T)])

    def forward(self, x):
        e = torch.stack([ex(x) for ex in self.experts], dim=1)  # (B, E, D)
        outs = []
        for k in range(T):
            g = torch.softmax(self.gates[k](x), dim=1).unsqueeze(2)  # (B, E, 1)
            outs.append(self.towers[k]((g * e).sum(dim=1)))
        return torch.cat(outs, dim=1)  # (B, T) logits


def infer_rate(net, xb):
    """Best of REPS windows (as the C side) of candidates/s scoring xb."""
    torch.sigmoid(net(xb))
    best = 0.0
    for rep in range(REPS):
        it, t0 = 0, time.perf_counter()
        while True:
            torch.sigmoid(net(xb))
            it += 1
            el = time.perf_counter() - t0
            if el >= seconds / REPS:
                break
        best = max(best, xb.shape[0] * it / el)
    return best


model = MMoE()
model.eval()
x = torch.from_numpy(np.fromfile(d + "/x.f32", dtype="<f4").reshape(-1, in_dim))
ref = np.fromfile(d + "/out.f32", dtype="<f4").reshape(-1, T)
with torch.no_grad():
    got = torch.sigmoid(model(x)).numpy()
maxdiff = float(np.abs(got - ref).max())
print("torch vs moerec max |diff| %.2e" % maxdiff, file=sys.stderr)

cps = {}
with torch.no_grad():
    for B in (1, 100, 500, 1000):
        cps[str(B)] = infer_rate(model, torch.randn(B, in_dim))
        print("torch inference batch %4d: %10.0f candidates/s" % (B, cps[str(B)]), file=sys.stderr)

# bf16: the same module cast to bfloat16 (weights and activations; PyTorch
# runs bf16 Linear on oneDNN), batch 500, the peer of moerec's "bf16".
mb = copy.deepcopy(model).to(torch.bfloat16)
with torch.no_grad():
    got_b = torch.sigmoid(mb(x.to(torch.bfloat16)).float()).numpy()
    maxdiff_bf16 = float(np.abs(got_b - ref).max())
    cps_bf16 = infer_rate(mb, torch.randn(500, in_dim).to(torch.bfloat16))
print("torch bf16 inference batch 500: %10.0f candidates/s (max |diff| vs moerec fp32 %.2e)" % (cps_bf16, maxdiff_bf16),
      file=sys.stderr)
del mb

model.train()
opt = torch.optim.Adam(model.parameters(), lr=1e-4)
lossf = nn.BCEWithLogitsLoss()
xb, yb = torch.randn(256, in_dim), torch.randint(0, 2, (256, T)).float()
tsps = 0.0
for rep in range(REPS):
    steps, t0 = 0, time.perf_counter()
    while True:
        opt.zero_grad()
        loss = lossf(model(xb), yb) * T  # sum of per-task means, as moerec's loss
        loss.backward()
        opt.step()
        steps += 1
        el = time.perf_counter() - t0
        if el >= 2 * seconds / REPS:
            break
    tsps = max(tsps, 256 * steps / el)
print("torch training batch 256: %.0f samples/s" % tsps, file=sys.stderr)


class Full(nn.Module):
    """The whole model: 20 sum-EmbeddingBags (sparse gradients) + 32 numeric -> MMoE."""

    def __init__(self, net):
        super().__init__()
        self.bags = nn.ModuleList([nn.EmbeddingBag(10000, 16, mode="sum", sparse=True) for _ in range(20)])
        self.net = net

    def forward(self, ids, num):
        return self.net(torch.cat([b(ids[:, f:f + 1]) for f, b in enumerate(self.bags)] + [num], dim=1))


full = Full(model)
full.train()
opt_s = torch.optim.SparseAdam(list(full.bags.parameters()), lr=1e-4)
opt_d = torch.optim.Adam(list(full.net.parameters()), lr=1e-4)
ids, num = torch.randint(0, 10000, (256, 20)), torch.randn(256, 32)
full_sps = 0.0
for rep in range(REPS):
    steps, t0 = 0, time.perf_counter()
    while True:
        opt_s.zero_grad()
        opt_d.zero_grad()
        loss = lossf(full(ids, num), yb) * T
        loss.backward()
        opt_s.step()
        opt_d.step()
        steps += 1
        el = time.perf_counter() - t0
        if el >= 2 * seconds / REPS:
            break
    full_sps = max(full_sps, 256 * steps / el)
print("torch training with embeddings (SparseAdam) batch 256: %.0f samples/s" % full_sps, file=sys.stderr)
print(json.dumps({"impl": "torch", "version": torch.__version__, "max_abs_diff_vs_moerec": maxdiff,
                  "cands_per_s": {k: round(v) for k, v in cps.items()}, "train_samples_per_s": round(tsps),
                  "train_full_samples_per_s": round(full_sps), "bf16_cands_per_s_500": round(cps_bf16),
                  "bf16_max_abs_diff_vs_moerec": maxdiff_bf16}))

"""The moerec ranker as a torch.nn.Module: shared-bottom, OMoE, MMoE,
CGC, PLE and HoME, with dense / top-k / top-p gates, always-on shared
experts and null experts, HoME's row norm, feature gates and self-gates,
embedding bags over moerec's hashed and mapped tables, and the extra input block
(SDIM's long-interest vector, features.extra_dim). The forward pass is
docs/model-format.md's, operation for operation (moe/net_pass.c,
moe/gate.c); parameter names are the safetensors tensor names, so
`tensors()` / `load_tensors()` round-trip a version directory.

    m = MoERanker(model_json_dict)             # fresh, randomly initialised
    x = m.encode([{"user_id": "u1", "item_id": "i9", "price": 3.5}])
    out = m(x)                                  # (B, T) task outputs
    score = m.final_score(out)                  # (B,)
"""
import math

import numpy as np
import torch
from torch import nn

from .config import Layout, f32, resolve
from .hashing import value_rows
from . import records as _records
from .mapping import load_mappings


def _key(name):
    return name.replace(".", "__")


class Batch:
    """Encoded rows: per categorical field the looked-up rows (B, R) with a
    weight per row (0 for padding; 1/count for the mean combiner), numeric
    inputs already normalised (B, n_num), and the extra block (B, extra)."""

    def __init__(self, rows, weights, numeric, extra):
        self.rows, self.weights, self.numeric, self.extra = rows, weights, numeric, extra

    def __len__(self):
        return self.numeric.shape[0]


class MoERanker(nn.Module):
    def __init__(self, model_json, seed=0, mappings=None):
        """mappings: where the mapped tables' (frequency, graph,
        double_graph, lsh) mapping files are, a directory (a version
        directory, `moerec index tables --out DIR`) or {table: Mapping or
        path}; needed when model.json has such a table (mapping.py)."""
        super().__init__()
        self.cfg = resolve(model_json)
        self.lay = Layout(self.cfg)
        self.mappings = load_mappings(self.cfg["tables"], mappings)
        self.params = nn.ParameterDict()
        self._shapes = {}
        g = torch.Generator().manual_seed(seed)
        for t in self.cfg["tables"]:
            self._reg("emb." + t["name"], (t["rows"], t["dim"]), g, 0.05)
        a = self.cfg["arch"]
        for j, lv in enumerate(self.lay.levels):
            for i in range(lv["n_experts"]):
                self._reg_mlp("l%d.e%d" % (j, i), lv["in_dim"], a["expert_hidden"], g,
                              norm=a["expert_norm"], fg=a["feature_gate_rank"])
            for s, gs in enumerate(lv["gates"]):
                if gs["n_logits"]:
                    self._reg("l%d.gate%d.w" % (j, s), (gs["n_logits"], lv["in_dim"]), g,
                              1 / math.sqrt(lv["in_dim"]))
            if lv["sgate"] and lv["sgate_spec"]["n_logits"]:
                self._reg("l%d.sgate.w" % j, (lv["sgate_spec"]["n_logits"], lv["in_dim"]), g,
                          1 / math.sqrt(lv["in_dim"]))
            if lv["self_gate"]:
                for s in range(lv["slots"]):
                    self._reg("l%d.selfgate%d.w" % (j, s), (self.lay.out_dim, lv["in_dim"]), g,
                              1 / math.sqrt(lv["in_dim"]))
                    self._reg("l%d.selfgate%d.b" % (j, s), (self.lay.out_dim,), g, 0.0)
        for k in range(self.lay.T):
            self._reg_mlp("tower%d" % k, self.lay.out_dim, a["tower_hidden"] + [1], g)

    # ------------------------------------------------------------ parameters

    def _reg(self, name, shape, gen, std, fill=None):
        if fill is not None:
            t = torch.full(shape, float(fill))
        elif std == 0.0:
            t = torch.zeros(shape)
        else:
            t = torch.randn(shape, generator=gen) * std
        self.params[_key(name)] = nn.Parameter(t)
        self._shapes[name] = tuple(shape)

    def _reg_mlp(self, prefix, d_in, dims, gen, norm=False, fg=0):
        if fg > 0:
            self._reg(prefix + ".fg.a", (fg, d_in), gen, 1 / math.sqrt(d_in))
            self._reg(prefix + ".fg.b", (d_in, fg), gen, 0.01)
        prev = d_in
        for i, d in enumerate(dims):
            self._reg(prefix + ".fc%d.w" % i, (d, prev), gen, math.sqrt(2.0 / prev))
            self._reg(prefix + ".fc%d.b" % i, (d,), gen, 0.0)
            if norm:
                self._reg(prefix + ".norm%d.g" % i, (d,), gen, 0.0, fill=1.0)
                self._reg(prefix + ".norm%d.b" % i, (d,), gen, 0.0)
            prev = d

    def p(self, name):
        return self.params[_key(name)]

    def has(self, name):
        return name in self._shapes

    def tensors(self):
        """{safetensors name: float32 numpy array}."""
        return {n: self.p(n).detach().cpu().numpy().astype(np.float32) for n in self._shapes}

    def load_tensors(self, tensors):
        """Copy {name: array} in; every tensor the architecture needs must be
        there with its exact shape, and nothing else (as moe_model_load)."""
        extra = sorted(set(tensors) - set(self._shapes))
        if extra:
            raise ValueError("weights: tensor %s is not part of this architecture" % extra[0])
        with torch.no_grad():
            for n, shape in self._shapes.items():
                if n not in tensors:
                    raise ValueError("weights: tensor %s is missing" % n)
                a = np.asarray(tensors[n], dtype=np.float32)
                if tuple(a.shape) != shape:
                    raise ValueError("weights: tensor %s has shape %s, expected %s"
                                     % (n, list(a.shape), list(shape)))
                if not np.isfinite(a).all():
                    raise ValueError("weights: tensor %s holds a non-finite value" % n)
                self.p(n).copy_(torch.from_numpy(a.copy()))

    # --------------------------------------------------------------- inputs

    def encode(self, rows):
        """Rows -> Batch. A row is a dict: a categorical feature is a str or
        a list of str (no values: a zero bag), a numeric one a number
        (missing: its fill), "extra" a list of extra_dim floats (missing:
        zeros). A feature the model does not know is an error."""
        lay, B = self.lay, len(rows)
        known = {c["name"] for c in lay.cat} | {n["name"] for n in lay.num} | {"extra"}
        per_field = []
        for c in lay.cat:
            ids = []
            for r in rows:
                v = r.get(c["name"])
                vals = [] if v is None else [v] if isinstance(v, str) else list(v)
                mp = self.mappings.get(c["tbl"]["name"])
                rr = [x for val in vals for x in value_rows(c["tbl"], c["name"], val, mp)]
                ids.append(rr)
            R = max(1, max(len(x) for x in ids))
            idx = np.zeros((B, R), dtype=np.int64)
            w = np.zeros((B, R), dtype=np.float32)
            for b, rr in enumerate(ids):
                idx[b, :len(rr)] = rr
                if rr:
                    w[b, :len(rr)] = (1.0 / len(rr)) if c["combiner"] == "mean" and len(rr) > 1 \
                        else 1.0
            per_field.append((torch.from_numpy(idx), torch.from_numpy(w)))
        num = np.zeros((B, len(lay.num)), dtype=np.float32)
        extra = np.zeros((B, lay.extra_dim), dtype=np.float32)
        for b, r in enumerate(rows):
            for k in r:
                if k not in known:
                    raise ValueError("row %d: feature '%s' is not in the model's schema" % (b, k))
            for i, n in enumerate(lay.num):
                v = r.get(n["name"])
                v = n["fill"] if v is None else float(v)
                num[b, i] = (np.float32(v) - np.float32(n["mean"])) / np.float32(n["std"])
            if lay.extra_dim:
                e = r.get("extra")
                if e is not None:
                    if len(e) != lay.extra_dim:
                        raise ValueError("row %d: extra has %d floats, the model takes %d"
                                         % (b, len(e), lay.extra_dim))
                    extra[b] = e
        rows_t = [p[0] for p in per_field]
        w_t = [p[1] for p in per_field]
        return Batch(rows_t, w_t, torch.from_numpy(num), torch.from_numpy(extra))

    def inputs(self, batch):
        """Batch -> the network input x (B, in_dim), differentiable in the
        embedding tables. A mean bag divides by the rows looked up."""
        parts = []
        for c, idx, w in zip(self.lay.cat, batch.rows, batch.weights):
            emb = self.p("emb." + c["tbl"]["name"])
            bag = (emb[idx] * w.unsqueeze(-1)).sum(1)
            parts.append(bag)
        parts.append(batch.numeric)
        parts.append(batch.extra)
        return torch.cat(parts, dim=1)

    # -------------------------------------------------------------- forward

    def _mlp(self, prefix, x, act_last, act, norm):
        if self.has(prefix + ".fg.a"):
            t = (x @ self.p(prefix + ".fg.a").T) @ self.p(prefix + ".fg.b").T
            x = x * 2.0 * torch.sigmoid(t)
        n = 0
        while self.has(prefix + ".fc%d.w" % n):
            n += 1
        for i in range(n):
            z = x @ self.p(prefix + ".fc%d.w" % i).T + self.p(prefix + ".fc%d.b" % i)
            if norm:
                m = z.mean(dim=1, keepdim=True)
                v = ((z - m) ** 2).mean(dim=1, keepdim=True)
                z = self.p(prefix + ".norm%d.g" % i) * (z - m) / torch.sqrt(v + 1e-5) \
                    + self.p(prefix + ".norm%d.b" % i)
            if i < n - 1 or act_last:
                z = z * torch.sigmoid(z) if act == "swish" else torch.relu(z)
            x = z
        return x

    @staticmethod
    def _kept(p, spec):
        """Kept mask (B, L) of router probabilities p (moe_gate_route_row)."""
        if spec["type"] == "dense":
            return torch.ones_like(p, dtype=torch.bool)
        L = p.shape[1]
        order = torch.sort(p, dim=1, descending=True, stable=True).indices
        if spec["type"] == "topk":
            nk = torch.full((p.shape[0],), min(spec["k"], L), dtype=torch.long)
        else:
            cum = torch.cumsum(torch.gather(p, 1, order).double(), dim=1)
            over = cum > spec["p"]
            first = torch.where(over.any(1), over.float().argmax(1), torch.full_like(over[:, 0],
                                L - 1, dtype=torch.long))
            nk = first + 1
        rank = torch.arange(L).unsqueeze(0).expand_as(p)
        keep_sorted = rank < nk.unsqueeze(1)
        kept = torch.zeros_like(keep_sorted)
        kept.scatter_(1, order, keep_sorted)
        return kept

    def _mix(self, name, x, spec, E):
        """Gate output: always-on experts plus kept routed P_i E_i (not
        renormalised; null experts add nothing). Also returns the per-row
        weight of each choice, for utilisation."""
        out = 0.0
        for c in spec["choice"][:spec["n_always"]]:
            out = out + E[c]
        if not spec["n_logits"]:
            return out, None
        logits = x @ self.p(name).T
        p = torch.softmax(logits, dim=1)
        kept = self._kept(p.detach(), spec)
        self.last_router.append((name[:-2], p, kept))
        w = p * kept
        for i, c in enumerate(spec["choice"][spec["n_always"]:]):
            out = out + w[:, i:i + 1] * E[c]
        return out, w

    def logits(self, x):
        """The network on input x (B, in_dim): task logits (B, T)."""
        a, lay = self.cfg["arch"], self.lay
        ins, sin = None, x
        self.last_gates, self.last_router = [], []
        for j, lv in enumerate(lay.levels):
            slot_in = [x] * lv["slots"] if j == 0 else [ins[q] for q in lv["parent"]]
            nt = lv["slots"] * lv["mt"]
            E = [self._mlp("l%d.e%d" % (j, i), slot_in[i // lv["mt"]] if i < nt else sin, True,
                           a["activation"], a["expert_norm"]) for i in range(lv["n_experts"])]
            outs = []
            for s, spec in enumerate(lv["gates"]):
                o, w = self._mix("l%d.gate%d.w" % (j, s), slot_in[s], spec, E)
                self.last_gates.append(("l%d.gate%d" % (j, s), w))
                if lv["self_gate"]:
                    o = o + torch.sigmoid(slot_in[s] @ self.p("l%d.selfgate%d.w" % (j, s)).T
                                          + self.p("l%d.selfgate%d.b" % (j, s))) * slot_in[s]
                outs.append(o)
            if lv["sgate"]:
                sin, w = self._mix("l%d.sgate.w" % j, sin, lv["sgate_spec"], E)
                self.last_gates.append(("l%d.sgate" % j, w))
            ins = outs
        return torch.cat([self._mlp("tower%d" % k, ins[lay.tower_slot[k]], False, "relu", False)
                          for k in range(lay.T)], dim=1)

    def outputs(self, z):
        """Task outputs from logits: sigmoid for binary tasks, raw for regression."""
        cols = [torch.sigmoid(z[:, k]) if t["kind"] == "binary" else z[:, k]
                for k, t in enumerate(self.cfg["tasks"])]
        return torch.stack(cols, dim=1)

    def forward(self, batch):
        """Batch (from encode) or input matrix x -> task outputs (B, T)."""
        x = batch if torch.is_tensor(batch) else self.inputs(batch)
        return self.outputs(self.logits(x))

    def final_score(self, out):
        """sum_k weight_k * output_k, the served final score."""
        w = torch.tensor([t["weight"] for t in self.cfg["tasks"]], dtype=out.dtype)
        return (out * w).sum(1)

    def labels(self, records, na=_records.NA):
        """Label cells -> (labels, mask) tensors (B, T) by each task's rule
        (`label` column, `threshold`, `positive`; records.py), as `moerec
        train` reads them: records are dicts {column: cell}."""
        y, mask = _records.labels(self.cfg["tasks"], records, na)
        return torch.from_numpy(y), torch.from_numpy(mask)

    def encode_records(self, records, na=_records.NA):
        """encode() of data-file records {column: cell}, read as moerec reads
        them (each feature's `column` and `separator`; records.py)."""
        return self.encode(_records.feature_rows(self.cfg, records, na))

    def aux_loss(self):
        """The gates' auxiliary losses of the last forward pass, as moe/gate.c
        computes them: per gate with router logits (B, L), load balancing
        `L * sum_i frac_i * mean_b P_bi` (frac_i: the share of the kept
        slots that went to logit i, a constant) and the mean row entropy of
        P; returns lbl_coef * sum(lbl) + entropy_coef * sum(entropy)."""
        a = self.cfg["arch"]
        lbl = ent = 0.0
        for _, p, kept in self.last_router:
            k = kept.to(p.dtype)
            frac = k.sum(0) / k.sum()
            lbl = lbl + p.shape[1] * (frac * p.mean(0)).sum()
            plogp = torch.where(p > 0, p * torch.log(torch.clamp(p, min=1e-45)),
                                torch.zeros_like(p))
            ent = ent - plogp.sum(1).mean()
        return a["lbl_coef"] * lbl + a["entropy_coef"] * ent

    def loss(self, batch, labels, mask=None, epoch=0):
        """Training loss as moerec's (moe/loss.c): per task the mean BCE on
        the logit (binary) or MSE (regression) over the rows whose mask is
        1 (mask None: every row; a task with no labelled row adds 0),
        weighted by loss_weight * loss_decay^epoch, plus the gates'
        auxiliary losses (aux_loss: lbl_coef, entropy_coef). labels, mask:
        (B, T) floats (labels() makes both from label cells)."""
        z = self.logits(self.inputs(batch))
        total = 0.0
        for k, t in enumerate(self.cfg["tasks"]):
            mk = torch.ones_like(z[:, k]) if mask is None else mask[:, k].to(z.dtype)
            cnt = mk.sum()
            if float(cnt) == 0:
                continue
            if t["kind"] == "binary":
                lk = nn.functional.binary_cross_entropy_with_logits(z[:, k], labels[:, k],
                                                                    reduction="none")
            else:
                lk = (z[:, k] - labels[:, k]) ** 2
            w = f32(t["loss_weight"]) * f32(t.get("loss_decay", 1.0)) ** epoch
            total = total + w * (lk * mk).sum() / cnt
        return total + self.aux_loss()

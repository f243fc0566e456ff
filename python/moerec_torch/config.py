"""model.json with every default filled in, as moerec's loader fills them
(moe/model_json.c, moe_arch_defaults in moe/net_build.c), and the derived
layout: input offsets per feature and the network's levels, slots and
gates (docs/model-format.md, "Tensor names" and "The forward pass").

resolve(cfg) returns a new dict in the form moerec writes into a version
directory, which moerec reads back unchanged.
"""
import copy

from .hashing import default_seed2

KINDS = ("hash", "double", "frequency", "graph", "double_graph", "lsh")
MAPPED = ("frequency", "graph", "double_graph", "lsh")

ARCHS = ("shared_bottom", "omoe", "mmoe", "cgc", "ple", "home")
GATES = ("dense", "topk", "topp")
PRECISIONS = ("fp32", "bf16", "int8", "openblas_fp32")
_KEYS = {
    "": {"format", "format_version", "name", "tables", "features", "tasks", "arch", "train",
         "precision"},
    "table": {"name", "rows", "dim", "hash", "seed", "seed2", "storage", "encoding", "ttl_seconds",
              "mapping", "pair", "vectors", "resolution", "balance", "hubs"},
    "features": {"categorical", "numeric", "extra_dim"},
    "cat": {"name", "column", "table", "combiner", "separator"},
    "num": {"name", "column", "mean", "std", "fill"},
    "task": {"name", "kind", "label", "threshold", "weight", "loss_weight", "loss_decay"},
    "arch": {"type", "experts", "task_experts", "levels", "expert_hidden", "tower_hidden",
             "activation", "expert_norm", "feature_gate_rank", "self_gate", "task_groups", "gate",
             "lbl_coef", "entropy_coef"},
    "gate": {"type", "k", "p", "null_experts", "always_on"},
}


def _check(obj, kind, where):
    for k in obj:
        if k not in _KEYS[kind]:
            raise ValueError("model.json: %s%s%s: unknown field" % (where, "." if where else "", k))


def _i64(x):
    """A u64 seed as the signed JSON integer moerec writes."""
    return x - (1 << 64) if x >= 1 << 63 else x


def resolve(cfg):
    cfg = copy.deepcopy(cfg)
    _check(cfg, "", "")
    if cfg.get("format", "moerec.model") != "moerec.model":
        raise ValueError('model.json: format must be "moerec.model"')
    out = {"format": "moerec.model", "format_version": 1, "name": cfg.get("name", "model")}
    tables = []
    for i, t in enumerate(cfg.get("tables") or []):
        _check(t, "table", "tables[%d]" % i)
        h = t.get("hash", "hash")
        if h not in KINDS:
            raise ValueError("model.json: tables[%d].hash: unknown hashing kind '%s' (expected %s)"
                             % (i, h, ", ".join(KINDS)))
        seed = t.get("seed", i + 1) % (1 << 64)
        seed2 = t.get("seed2", default_seed2(seed)) % (1 << 64)
        tables.append({"name": t["name"], "rows": int(t["rows"]), "dim": int(t.get("dim", 16)),
                       "hash": h, "seed": seed, "seed2": seed2})
        tables[-1].update(_mapped_opts(t, i, h))
        # where the server keeps the rows (docs/model-format.md, "Tables
        # served from the store"); training and export are the same either way
        storage = t.get("storage", "memory")
        if storage not in ("memory", "store"):
            raise ValueError('model.json: tables[%d].storage must be "memory" or "store"' % i)
        if storage == "memory" and ("encoding" in t or "ttl_seconds" in t):
            raise ValueError('model.json: tables[%d]: encoding and ttl_seconds need "storage": "store"' % i)
        if storage == "store":
            enc = t.get("encoding", "fp32")
            if enc not in ("fp32", "fp16", "int8"):
                raise ValueError('model.json: tables[%d].encoding must be "fp32", "fp16" or "int8"' % i)
            tables[-1].update({"storage": "store", "encoding": enc})
            ttl = t.get("ttl_seconds", 0)
            if not isinstance(ttl, int) or isinstance(ttl, bool) or not 0 <= ttl <= 1 << 40:
                raise ValueError("model.json: tables[%d].ttl_seconds must be an integer in [0, 2^40]" % i)
            if ttl:
                tables[-1]["ttl_seconds"] = ttl
    out["tables"] = tables
    names = {t["name"]: t for t in tables}
    for i, t in enumerate(tables):
        if "pair" in t and (t["pair"] not in names or t["pair"] == t["name"]):
            raise ValueError("model.json: tables[%d].pair '%s' must name another table"
                             % (i, t["pair"]))
        if "mapping" in t and any(u.get("mapping") == t["mapping"] for u in tables[:i]):
            raise ValueError("model.json: tables[%d].mapping '%s' is used twice" % (i, t["mapping"]))
    f = cfg.get("features") or {}
    _check(f, "features", "features")
    cats, nums = [], []
    for i, c in enumerate(f.get("categorical") or []):
        _check(c, "cat", "features.categorical[%d]" % i)
        tb = c.get("table", c["name"])
        if tb not in names:
            raise ValueError("model.json: features.categorical[%d].table '%s' is not in tables"
                             % (i, tb))
        cats.append({"name": c["name"], "column": c.get("column", c["name"]), "table": tb,
                     "combiner": c.get("combiner", "sum"), "separator": c.get("separator", "")})
    for i, c in enumerate(f.get("numeric") or []):
        _check(c, "num", "features.numeric[%d]" % i)
        mean = float(c.get("mean", 0.0))
        nums.append({"name": c["name"], "column": c.get("column", c["name"]), "mean": mean,
                     "std": float(c.get("std", 1.0)), "fill": float(c.get("fill", mean))})
    out["features"] = {"categorical": cats, "numeric": nums, "extra_dim": int(f.get("extra_dim", 0))}
    tasks = []
    for i, t in enumerate(cfg["tasks"]):
        _check(t, "task", "tasks[%d]" % i)
        o = {"name": t["name"], "kind": t.get("kind", "binary"), "label": t.get("label", t["name"]),
             "weight": float(t.get("weight", 1.0)), "loss_weight": float(t.get("loss_weight", 1.0))}
        if "threshold" in t:
            o["threshold"] = float(t["threshold"])
        if t.get("loss_decay", 1.0) != 1.0:
            o["loss_decay"] = float(t["loss_decay"])
        tasks.append(o)
    out["tasks"] = tasks
    a = cfg["arch"]
    _check(a, "arch", "arch")
    kind = a["type"]
    if kind not in ARCHS:
        raise ValueError("model.json: arch.type '%s' (%s)" % (kind, ", ".join(ARCHS)))
    g = a.get("gate") or {}
    _check(g, "gate", "arch.gate")
    if g.get("type", "dense") not in GATES:
        raise ValueError("model.json: arch.gate.type '%s' (dense, topk, topp)" % g["type"])
    three = kind in ("cgc", "ple", "home")
    arch = {
        "type": kind,
        "experts": int(a.get("experts", 1 if kind == "shared_bottom" else 2 if three else 8)),
        "task_experts": int(a.get("task_experts", 2 if three else 0)),
        "levels": int(a.get("levels", 2 if kind in ("ple", "home") else 1)),
        "expert_hidden": list(a.get("expert_hidden", [113 if kind == "shared_bottom" else 16])),
        "tower_hidden": list(a.get("tower_hidden", [8])),
        "activation": a.get("activation", "swish" if kind == "home" else "relu"),
        "expert_norm": bool(a.get("expert_norm", kind == "home")),
        "feature_gate_rank": int(a.get("feature_gate_rank", 0)),
        "self_gate": bool(a.get("self_gate", False)),
        "gate": {"type": g.get("type", "dense"), "k": int(g.get("k", 2)), "p": float(g.get("p", 0.4)),
                 "null_experts": int(g.get("null_experts", 0)),
                 "always_on": int(g.get("always_on", 0))},
        "lbl_coef": float(a.get("lbl_coef", 0.0)), "entropy_coef": float(a.get("entropy_coef", 0.0)),
    }
    if kind == "home":
        arch["task_groups"] = list(a.get("task_groups", [0] * len(tasks)))
        if len(arch["task_groups"]) != len(tasks):
            raise ValueError("model.json: arch.task_groups must list a group per task")
    out["arch"] = arch
    if "train" in cfg:
        out["train"] = cfg["train"]
    # moerec's inference precision (docs/model-format.md); PyTorch computes
    # in fp32, which matches moerec's fp32 and openblas_fp32 within 1e-5
    prec = cfg.get("precision", "fp32")
    if prec not in PRECISIONS:
        raise ValueError('model.json: precision must be "fp32", "bf16", "int8" or "openblas_fp32"')
    out["precision"] = prec
    return out


def _mapped_opts(t, i, h):
    """mapping, pair, vectors, resolution, balance, hubs of table t (kind h) as
    moe/model_json.c checks and writes them."""
    where = "model.json: tables[%d]" % i
    out = {}
    if h not in MAPPED:
        if any(k in t for k in ("mapping", "pair", "vectors")):
            raise ValueError("%s: mapping, pair and vectors belong to the frequency, graph, "
                             "double_graph and lsh kinds, not '%s'" % (where, h))
    else:
        m = t.get("mapping", t["name"] + ".map")
        if (not isinstance(m, str) or not m or "/" in m or m in (".", "..", "model.json",
                                                                  "weights.safetensors")
                or len(m.encode()) >= 64):
            raise ValueError("%s.mapping '%s' must be a plain file name in the version directory"
                             % (where, m))
        out["mapping"] = m
        for k in ("pair", "vectors"):
            if t.get(k):
                out[k] = str(t[k])
    if h in ("graph", "double_graph") and "pair" not in out:
        raise ValueError("%s.pair is required for '%s' (the table of the other side of the "
                         "user x item graph)" % (where, h))
    if h == "lsh" and ("pair" in out) == ("vectors" in out):
        raise ValueError("%s: an lsh table needs exactly one of vectors (SimHash of content "
                         "vectors) and pair (MinHash of the id's neighbours)" % where)
    graph = h in ("graph", "double_graph")
    if not graph and any(k in t for k in ("resolution", "balance", "hubs")):
        raise ValueError("%s: resolution, balance and hubs belong to the graph and double_graph "
                         "kinds" % where)
    if "resolution" in t:
        r = t["resolution"]
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r <= 1e6:
            raise ValueError("%s.resolution must be in (0, 1e6]" % where)
        out["resolution"] = float(r)
    b = t.get("balance", "none")
    if b not in ("none", "degree"):
        raise ValueError('%s.balance \'%s\' must be "none" or "degree"' % (where, b))
    if b == "degree":
        out["balance"] = "degree"
    hubs = t.get("hubs", 0)
    if isinstance(hubs, bool) or not isinstance(hubs, int) or not 0 <= hubs <= int(t["rows"]) - 1:
        raise ValueError("%s.hubs must be an integer in [0, %d]" % (where, int(t["rows"]) - 1))
    if hubs:
        out["hubs"] = hubs
    return out


def to_json_dict(cfg):
    """cfg as written into the version directory (seeds as signed int64)."""
    out = copy.deepcopy(cfg)
    for t in out["tables"]:
        t["seed"], t["seed2"] = _i64(t["seed"]), _i64(t["seed2"])
    return out


class Layout:
    """The derived structure: feature offsets and levels (net_build.c layout)."""

    def __init__(self, cfg):
        tables = {t["name"]: t for t in cfg["tables"]}
        off = 0
        self.cat = []
        for c in cfg["features"]["categorical"]:
            t = tables[c["table"]]
            self.cat.append(dict(c, offset=off, dim=t["dim"], tbl=t))
            off += t["dim"]
        self.num = []
        for n in cfg["features"]["numeric"]:
            self.num.append(dict(n, offset=off))
            off += 1
        self.extra_dim = cfg["features"]["extra_dim"]
        self.extra_offset = off
        self.in_dim = off + self.extra_dim
        a = cfg["arch"]
        kind, T = a["type"], len(cfg["tasks"])
        self.T = T
        nl, slots0, mt, ms = 1, T, a["task_experts"], a["experts"]
        groups = a.get("task_groups") or [0] * T
        if kind == "shared_bottom":
            slots0, mt, ms = 1, 0, 1
        elif kind == "omoe":
            slots0, mt = 1, 0
        elif kind == "mmoe":
            mt = 0
        elif kind == "ple":
            nl = a["levels"]
        elif kind == "home":
            nl, slots0 = 2, max(groups) + 1
        if mt + ms < 1:
            raise ValueError("arch: no experts (shared_experts + task_experts = 0)")
        out_dim = a["expert_hidden"][-1]
        self.out_dim = out_dim
        self.levels = []
        for j in range(nl):
            slots = slots0 if j == 0 else T
            lv = {"slots": slots, "mt": mt, "ms": ms,
                  "parent": [groups[s] if kind == "home" and j == 1 else s for s in range(slots)],
                  "in_dim": self.in_dim if j == 0 else out_dim,
                  "sgate": j < nl - 1 and ms > 0}
            lv["self_gate"] = a["self_gate"] and j > 0 and lv["in_dim"] == out_dim
            if j > 0 and ms > 0 and not self.levels[j - 1]["sgate"]:
                raise ValueError("arch: level %d shared experts need a shared gate below" % j)
            lv["n_experts"] = slots * mt + ms
            shared = list(range(slots * mt, slots * mt + ms))
            lv["gates"] = [self._gate(a["gate"], shared + [s * mt + i for i in range(mt)])
                           for s in range(slots)]
            lv["sgate_spec"] = (self._gate(a["gate"], shared + list(range(slots * mt)))
                                if lv["sgate"] else None)
            self.levels.append(lv)
        self.tower_slot = [0 if self.levels[-1]["slots"] == 1 else k for k in range(T)]

    @staticmethod
    def _gate(g, choice):
        """gate_setup: always-on, routed and null counts of one gate."""
        n_always = min(g["always_on"], len(choice))
        n_routed = len(choice) - n_always
        n_logits = n_routed + g["null_experts"]
        if n_logits == 1 and g["null_experts"] == 0:
            n_logits = 0
        if n_logits == 0:
            n_always, n_routed = len(choice), 0
        return {"choice": choice, "n_always": n_always, "n_routed": n_routed,
                "n_logits": n_logits, "type": g["type"], "k": g["k"], "p": g["p"]}

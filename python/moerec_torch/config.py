"""model.json with every default filled in, as moerec's loader fills them
(moe/model_json.c, moe_arch_defaults in moe/net_build.c), and the derived
layout: input offsets per feature and the network's levels, slots and
gates (docs/model-format.md, "Tensor names" and "The forward pass").

resolve(cfg) returns a new dict in the form moerec writes into a version
directory, which moerec reads back unchanged.
"""
import copy
import struct

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
    "features": {"categorical", "numeric", "extra_dim", "history_actions"},
    "cat": {"name", "column", "table", "combiner", "separator"},
    "num": {"name", "column", "mean", "std", "fill"},
    "task": {"name", "kind", "label", "threshold", "positive", "weight", "loss_weight",
             "loss_decay"},
    "arch": {"type", "experts", "task_experts", "levels", "expert_hidden", "tower_hidden",
             "activation", "expert_norm", "feature_gate_rank", "self_gate", "task_groups", "gate",
             "lbl_coef", "entropy_coef"},
    "gate": {"type", "k", "p", "null_experts", "always_on"},
}


def _check(obj, kind, where):
    if not isinstance(obj, dict):
        raise ValueError("model.json: %s must be an object" % (where or "the document"))
    for k in obj:
        if k not in _KEYS[kind]:
            raise ValueError("model.json: %s%s%s: unknown field" % (where, "." if where else "", k))


def _i64(x):
    """A u64 seed as the signed JSON integer moerec writes."""
    return x - (1 << 64) if x >= 1 << 63 else x


# the getters of moe/model_json.c: a JSON integer, number, bool or string of
# the C side's type and range, else an error naming the field
FLT_MAX = 3.4028234663852886e38
NAME_MAX = 64  # MOE_NAME_MAX: names, columns, labels, positive values (bytes, with the NUL)
MAX_TASKS, MAX_LAYERS, MAX_LEVELS, MAX_EXPERTS, MAX_FIELDS, MAX_TABLES = 16, 6, 4, 64, 256, 64
MAX_HIST_ACTIONS = 16  # MOE_MAX_HIST_ACTIONS: features.history_actions


def _field(where, key):
    return "model.json: %s%s%s" % (where, "." if where else "", key)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _int(o, key, where, default, lo, hi):
    if key not in o:
        return default
    v = o[key]
    if not _is_int(v) or not lo <= v <= hi:
        raise ValueError("%s must be an integer in [%d, %d]" % (_field(where, key), lo, hi))
    return v


def _num(o, key, where, default):
    if key not in o:
        return default
    v = o[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError("%s must be a number" % _field(where, key))
    if not abs(v) <= FLT_MAX:  # every number is kept as a float
        raise ValueError("%s = %g is outside the float range" % (_field(where, key), v))
    return float(v)


def _bool(o, key, where, default):
    if key not in o:
        return default
    if not isinstance(o[key], bool):
        raise ValueError("%s must be true or false" % _field(where, key))
    return o[key]


def _history_actions(f, extra_dim):
    """features.history_actions as moe/model_json.c reads it: 1..16 distinct
    names of 1..64 bytes; the SDIM block [long d | short d | actions] makes
    extra_dim 2 d + n for some d >= 1. [] when absent."""
    if "history_actions" not in f:
        return []
    a = f["history_actions"]
    if not isinstance(a, list) or not 1 <= len(a) <= MAX_HIST_ACTIONS:
        raise ValueError("model.json: features.history_actions must be a list of 1..%d action "
                         "names" % MAX_HIST_ACTIONS)
    out = []
    for i, v in enumerate(a):
        if not isinstance(v, str) or not 1 <= len(v.encode()) <= 64:
            raise ValueError("model.json: features.history_actions[%d] must be a string of "
                             "1..64 bytes" % i)
        if v in out:
            raise ValueError("model.json: features.history_actions: '%s' is listed twice" % v)
        out.append(v)
    rest = extra_dim - len(out)
    if rest < 2 or rest % 2:
        raise ValueError("model.json: features.history_actions adds %d floats to the SDIM block "
                         "[long d | short d | actions]: extra_dim %d must be 2 d + %d for some "
                         "d >= 1" % (len(out), extra_dim, len(out)))
    return out


def _str(o, key, where, default, n=NAME_MAX):
    """default None: required."""
    if key not in o:
        if default is None:
            raise ValueError("%s is required" % _field(where, key))
        return default
    v = o[key]
    if not isinstance(v, str) or len(v.encode()) >= n:
        raise ValueError("%s must be a string of < %d bytes" % (_field(where, key), n))
    return v


def _dims(o, key, where, default):
    if key not in o:
        return list(default)
    v = o[key]
    if not isinstance(v, list) or len(v) >= MAX_LAYERS:
        raise ValueError("%s must be a list of < %d widths" % (_field(where, key), MAX_LAYERS))
    for i, d in enumerate(v):
        if not _is_int(d) or not 1 <= d <= 65536:
            raise ValueError("%s[%d] must be a width in [1, 65536]" % (_field(where, key), i))
    return list(v)


def _list(o, key, where, most):
    if key not in o:
        return []
    v = o[key]
    if not isinstance(v, list) or len(v) > most:
        raise ValueError("%s must be a list of at most %d" % (_field(where, key), most))
    return v


def f32(x):
    """x rounded to float32, as moerec keeps every model.json number."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def resolve(cfg):
    cfg = copy.deepcopy(cfg)
    _check(cfg, "", "")
    if "format" in cfg and cfg["format"] != "moerec.model":
        raise ValueError('model.json: format must be "moerec.model"')
    fv = cfg.get("format_version", 1)
    if not _is_int(fv) or fv != 1:
        raise ValueError("model.json: format_version %s not supported (this build reads 1)"
                         % (fv if _is_int(fv) else -1))
    out = {"format": "moerec.model", "format_version": 1, "name": _str(cfg, "name", "", "model")}
    tables = []
    for i, t in enumerate(_list(cfg, "tables", "", MAX_TABLES)):
        where = "tables[%d]" % i
        _check(t, "table", where)
        name = _str(t, "name", where, None)
        if any(u["name"] == name for u in tables):
            raise ValueError("model.json: %s.name '%s' is used twice" % (where, name))
        rows = t.get("rows")
        if not _is_int(rows) or not 2 <= rows <= 1 << 31:
            raise ValueError("model.json: %s.rows must be an integer in [2, 2^31]" % where)
        h = _str(t, "hash", where, "hash", 16)
        if h not in KINDS:
            raise ValueError("model.json: tables[%d].hash: unknown hashing kind '%s' (expected %s)"
                             % (i, h, ", ".join(KINDS)))
        for k in ("seed", "seed2"):
            if k in t and (not _is_int(t[k]) or not -(1 << 63) <= t[k] < 1 << 64):
                raise ValueError("model.json: %s.seed must be an integer" % where)
        seed = t.get("seed", i + 1) % (1 << 64)
        seed2 = t.get("seed2", default_seed2(seed)) % (1 << 64)
        tables.append({"name": name, "rows": rows, "dim": _int(t, "dim", where, 16, 1, 4096),
                       "hash": h, "seed": seed, "seed2": seed2})
        tables[-1].update(_mapped_opts(t, i, h))
        # where the server keeps the rows (docs/model-format.md, "Tables
        # served from the store"); training and export are the same either way
        storage = _str(t, "storage", where, "memory", 16)
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
            if not _is_int(ttl) or not 0 <= ttl <= 1 << 40:
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
    f = cfg.get("features", {})
    _check(f, "features", "features")
    cats, nums = [], []
    for i, c in enumerate(_list(f, "categorical", "features", MAX_FIELDS)):
        where = "features.categorical[%d]" % i
        _check(c, "cat", where)
        name = _str(c, "name", where, None)
        tb = _str(c, "table", where, name)
        if tb not in names:
            raise ValueError("model.json: %s.table '%s' is not in tables" % (where, tb))
        comb = _str(c, "combiner", where, "sum", 16)
        if comb not in ("sum", "mean"):
            raise ValueError("model.json: %s.combiner '%s' (sum, mean)" % (where, comb))
        sep = _str(c, "separator", where, "", 4)
        if len(sep.encode()) > 1:
            raise ValueError("model.json: %s.separator must be one character" % where)
        cats.append({"name": name, "column": _str(c, "column", where, name), "table": tb,
                     "combiner": comb, "separator": sep})
    for i, c in enumerate(_list(f, "numeric", "features", MAX_FIELDS)):
        where = "features.numeric[%d]" % i
        _check(c, "num", where)
        name = _str(c, "name", where, None)
        mean = _num(c, "mean", where, 0.0)
        std = _num(c, "std", where, 1.0)
        if not std > 0:
            raise ValueError("model.json: %s.std must be > 0" % where)
        nums.append({"name": name, "column": _str(c, "column", where, name), "mean": mean,
                     "std": std, "fill": _num(c, "fill", where, mean)})
    seen = set()
    for c in cats + nums:
        if c["name"] in seen:
            raise ValueError("model.json: feature name '%s' is used twice" % c["name"])
        seen.add(c["name"])
    out["features"] = {"categorical": cats, "numeric": nums,
                       "extra_dim": _int(f, "extra_dim", "features", 0, 0, 1 << 16)}
    acts = _history_actions(f, out["features"]["extra_dim"])
    if acts:
        out["features"]["history_actions"] = acts
    out["tasks"] = _tasks(cfg.get("tasks"))
    if sum(names[c["table"]]["dim"] for c in cats) + len(nums) + out["features"]["extra_dim"] < 1:
        raise ValueError("model.json: features give an empty input (no fields, extra_dim 0)")
    out["arch"] = _arch(cfg.get("arch"), len(out["tasks"]))
    # moerec's inference precision (docs/model-format.md); PyTorch computes
    # in fp32, which matches moerec's fp32 and openblas_fp32 within 1e-5
    prec = cfg.get("precision", "fp32")
    if prec not in PRECISIONS:
        raise ValueError('model.json: precision must be "fp32", "bf16", "int8" or "openblas_fp32"')
    out["precision"] = prec
    if "train" in cfg:
        if not isinstance(cfg["train"], dict):
            raise ValueError("model.json: train must be an object")
        out["train"] = cfg["train"]
    return out


def _tasks(ts):
    """tasks[] as moe/model_json.c parse_tasks checks them. A task's label
    rule (threshold or positive) is labels.py's."""
    if not isinstance(ts, list) or not 1 <= len(ts) <= MAX_TASKS:
        raise ValueError("model.json: tasks must be a list of 1..%d tasks" % MAX_TASKS)
    tasks = []
    for i, t in enumerate(ts):
        where = "tasks[%d]" % i
        _check(t, "task", where)
        name = _str(t, "name", where, None)
        if any(u["name"] == name for u in tasks):
            raise ValueError("model.json: %s.name '%s' is used twice" % (where, name))
        kind = _str(t, "kind", where, "binary", 16)
        if kind not in ("binary", "regression"):
            raise ValueError("model.json: %s.kind '%s' (binary, regression)" % (where, kind))
        o = {"name": name, "kind": kind, "label": _str(t, "label", where, name),
             "weight": _num(t, "weight", where, 1.0),
             "loss_weight": _num(t, "loss_weight", where, 1.0)}
        if "threshold" in t:
            o["threshold"] = _num(t, "threshold", where, 0.0)
        if "positive" in t:
            pos = _str(t, "positive", where, "")
            if "threshold" in t or kind != "binary" or not pos:
                raise ValueError("model.json: %s.positive needs a binary task without threshold "
                                 "and a non-empty value" % where)
            o["positive"] = pos
        decay = _num(t, "loss_decay", where, 1.0)
        if not 0 <= decay <= 1:
            raise ValueError("model.json: %s.loss_decay must be in [0, 1]" % where)
        if f32(decay) != 1.0:
            o["loss_decay"] = decay
        tasks.append(o)
    return tasks


def _arch(a, T):
    """arch as moe/model_json.c parse_arch and moe/net_build.c check_arch
    check it (the layout's own checks are Layout's)."""
    if not isinstance(a, dict):
        raise ValueError("model.json: arch is required (an object)")
    _check(a, "arch", "arch")
    kind = _str(a, "type", "arch", None, 32)
    if kind not in ARCHS:
        raise ValueError("model.json: arch.type '%s' (%s)" % (kind, ", ".join(ARCHS)))
    g = a.get("gate", {})
    _check(g, "gate", "arch.gate")
    gt = _str(g, "type", "arch.gate", "dense", 16)
    if gt not in GATES:
        raise ValueError("model.json: arch.gate.type '%s' (dense, topk, topp)" % gt)
    three = kind in ("cgc", "ple", "home")
    act = _str(a, "activation", "arch", "swish" if kind == "home" else "relu", 16)
    if act not in ("relu", "swish"):
        raise ValueError("model.json: arch.activation '%s' (relu, swish)" % act)
    arch = {
        "type": kind,
        "experts": _int(a, "experts", "arch", 1 if kind == "shared_bottom" else 2 if three else 8,
                        0, MAX_EXPERTS),
        "task_experts": _int(a, "task_experts", "arch", 2 if three else 0, 0, MAX_EXPERTS),
        "levels": _int(a, "levels", "arch", 2 if kind in ("ple", "home") else 1, 1, MAX_LEVELS),
        "expert_hidden": _dims(a, "expert_hidden", "arch",
                               [113 if kind == "shared_bottom" else 16]),
        "tower_hidden": _dims(a, "tower_hidden", "arch", [8]),
        "activation": act,
        "expert_norm": _bool(a, "expert_norm", "arch", kind == "home"),
        "feature_gate_rank": _int(a, "feature_gate_rank", "arch", 0, 0, 4096),
        "self_gate": _bool(a, "self_gate", "arch", False),
        "gate": {"type": gt, "k": _int(g, "k", "arch.gate", 2, 1, 64),
                 "p": _num(g, "p", "arch.gate", 0.4),
                 "null_experts": _int(g, "null_experts", "arch.gate", 0, 0, 64),
                 "always_on": _int(g, "always_on", "arch.gate", 0, 0, 64)},
        "lbl_coef": _num(a, "lbl_coef", "arch", 0.0),
        "entropy_coef": _num(a, "entropy_coef", "arch", 0.0),
    }
    if not arch["expert_hidden"]:
        raise ValueError("model.json: arch.expert_hidden: 1..%d layers" % MAX_LAYERS)
    if gt == "topp" and not 0 < f32(arch["gate"]["p"]) <= 1:
        raise ValueError("model.json: arch.gate.p must be in (0, 1]")
    groups = [0] * T
    if "task_groups" in a:
        tg = a["task_groups"]
        if not isinstance(tg, list) or len(tg) != T:
            raise ValueError("model.json: arch.task_groups must list a group per task")
        for k, v in enumerate(tg):
            if not _is_int(v) or not 0 <= v < T:
                raise ValueError("model.json: arch.task_groups[%d] must be an integer in [0, %d]"
                                 % (k, T - 1))
        groups = list(tg)
    if kind == "shared_bottom":  # one MLP: an expert or gate setting would be ignored silently
        dg = {"type": "dense", "k": 2, "p": f32(0.4), "null_experts": 0, "always_on": 0}
        gate = dict(arch["gate"], p=f32(arch["gate"]["p"]))
        bad = ("experts" if arch["experts"] != 1 else "task_experts" if arch["task_experts"]
               else "levels" if arch["levels"] != 1 else "gate" if gate != dg
               else "task_groups" if "task_groups" in a
               else "lbl_coef" if f32(arch["lbl_coef"]) else "entropy_coef"
               if f32(arch["entropy_coef"]) else None)
        if bad:
            raise ValueError("model.json: arch.%s does not apply to shared_bottom (one shared MLP, "
                             "no experts or gates); use omoe, mmoe, cgc, ple or home" % bad)
    if kind == "home":  # other kinds check task_groups and drop them, as moerec does
        arch["task_groups"] = groups
    return arch


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
        # the default "<name>.map", cut to 63 bytes as moerec's buffer cuts it
        m = t.get("mapping", (t["name"] + ".map").encode()[:NAME_MAX - 1].decode("utf-8", "ignore"))
        if (not isinstance(m, str) or not m or "/" in m or m in (".", "..", "model.json",
                                                                  "weights.safetensors")
                or len(m.encode()) >= 64):
            raise ValueError("%s.mapping '%s' must be a plain file name in the version directory"
                             % (where, m))
        out["mapping"] = m
        for k, n in (("pair", NAME_MAX), ("vectors", 256)):
            if _str(t, k, "tables[%d]" % i, "", n):
                out[k] = t[k]
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
            if lv["n_experts"] > 64:
                raise ValueError("arch: level %d has %d experts (max 64)" % (j, lv["n_experts"]))
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
        if not 1 <= len(choice) <= 64:
            raise ValueError("arch: a gate mixes %d experts (1..64)" % len(choice))
        n_always = min(g["always_on"], len(choice))
        n_routed = len(choice) - n_always
        n_logits = n_routed + g["null_experts"]
        if n_logits > 64:
            raise ValueError("arch.gate: %d router logits (max 64)" % n_logits)
        if g["type"] == "topk" and g["k"] > n_logits:
            raise ValueError("arch.gate.k is %d but a gate chooses among %d experts (%d routed "
                             "+ %d null)" % (g["k"], n_logits, n_routed, g["null_experts"]))
        if n_logits == 1 and g["null_experts"] == 0:
            n_logits = 0
        if n_logits == 0:
            n_always, n_routed = len(choice), 0
        return {"choice": choice, "n_always": n_always, "n_routed": n_routed,
                "n_logits": n_logits, "type": g["type"], "k": g["k"], "p": f32(g["p"])}

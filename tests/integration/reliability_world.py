"""Shared by the reliability tests and benchmarks (crash rounds, disk full,
soak): a small world in a directory — a trained model with a retriever
set of one FAISS expert per group and NO fallback (so a user without
stored events or item vectors gets FAILED_PRECONDITION, which makes lost
writes visible) — a server started on 127.0.0.1 with a random port, and
the read-back checks of acknowledged writes through the API:

- events of user u on items I: Retrieve(user_id=u) must succeed and equal
  Retrieve(user_id=u, query_vector=mean of I's vectors) (same items, same
  scores): every event is there, and only those.
- item x with vector v: after one event of a fresh user on x,
  Retrieve(user_id) must equal Retrieve(user_id, query_vector=v).
"""
import json
import os
import random
import signal
import struct
import subprocess
import time

D, GROUPS, PER_GROUP = 8, 3, 20
BASE_ITEMS = GROUPS * PER_GROUP

MODEL_JSON = {
    "format": "moerec.model", "format_version": 1, "name": "rel",
    "tables": [{"name": "user", "rows": 64, "dim": 4}, {"name": "item", "rows": 256, "dim": 4}],
    "features": {"categorical": [{"name": "user_id", "table": "user"},
                                 {"name": "item_id", "table": "item"}]},
    "tasks": [{"name": "click", "weight": 1.0}],
    "arch": {"type": "mmoe", "experts": 2, "expert_hidden": [4], "tower_hidden": [2]},
}


def f32(x):
    """x rounded to float32, as the server stores it."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def unit(v):
    n = sum(x * x for x in v) ** 0.5
    return [f32(x / n) for x in v]


def mean_query(vecs):
    """The server's query for a user: the mean (in double) of the item
    vectors, rounded to float32 (server/handlers_recommend.c user_query)."""
    return [f32(sum(v[j] for v in vecs) / len(vecs)) for j in range(D)]


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def build(bin_path, d, seed=11):
    """Model + retrievers under d/models; returns the base item vectors
    {id: vector} (ids 1..BASE_ITEMS)."""
    rng = random.Random(seed)
    vec = {}
    rows = ["item_id,group," + ",".join("e%d" % j for j in range(D))]
    for g in range(GROUPS):
        for i in range(PER_GROUP):
            iid = 1 + g * PER_GROUP + i
            base = [0.0] * D
            base[2 * g], base[2 * g + 1] = 1.0, 0.5
            vec[iid] = unit([b + rng.gauss(0, 0.3) for b in base])
            rows.append("%d,%d,%s" % (iid, g, ",".join(repr(x) for x in vec[iid])))
    write(os.path.join(d, "items.csv"), "\n".join(rows) + "\n")
    os.makedirs(os.path.join(d, "models", "rel"), exist_ok=True)
    write(os.path.join(d, "model.json"), json.dumps(MODEL_JSON))
    train = ["user_id,item_id,click"] + ["%d,%d,%d" % (u, i, (u + i) % 2)
                                         for u in range(10) for i in range(1, 20)]
    write(os.path.join(d, "train.csv"), "\n".join(train) + "\n")
    subprocess.run([bin_path, "train", "--model-json", os.path.join(d, "model.json"), "--data",
                    os.path.join(d, "train.csv"), "--out", os.path.join(d, "models", "rel"),
                    "--epochs", "1", "--quiet"], check=True, capture_output=True)
    subprocess.run([bin_path, "index", "retrievers", "--items", os.path.join(d, "items.csv"),
                    "--expert-column", "group", "--pilots", "2", "--top-p", "0.9", "--out",
                    os.path.join(d, "models", "rel", "1", "retrievers"), "--quiet"],
                   check=True, capture_output=True)
    return vec


class Server:
    """`moerec serve` on 127.0.0.1:0 over d/models and data_dir."""

    def __init__(self, bin_path, d, data_dir, extra=None, log="warn"):
        cfg = {"model_dir": os.path.join(d, "models"), "data_dir": data_dir, "item_dim": D,
               "query_events": 64, "log_level": log}
        cfg.update(extra or {})
        self.cfg_path = os.path.join(d, "moerec.json")
        write(self.cfg_path, json.dumps(cfg))
        self.stderr = open(os.path.join(d, "server.log"), "a")
        wrap = os.environ.get("MOEREC_SERVER_WRAP", "").split()  # e.g. a debugger
        self.proc = subprocess.Popen(wrap + [bin_path, "serve", "--port", "0", "--config",
                                             self.cfg_path],
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        line = self.proc.stdout.readline().strip()
        while wrap and line and not line.startswith("listening on "):
            line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("server did not start: %r (see %s)" % (line, self.stderr.name))
        self.target = line[len("listening on "):]

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc.stdout.close()
        self.stderr.close()

    def stop(self, timeout=60):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=timeout)
        self.proc.stdout.close()
        self.stderr.close()
        return rc


class Checker:
    """Read-back of acknowledged writes through Retrieve (see the module
    docstring). Each check returns None when the write is there, else a
    reason."""

    def __init__(self, grpc, pb, stub, base_vec):
        self.grpc, self.pb, self.rec, self.base = grpc, pb, stub, base_vec
        self.n_check_users = 0

    def _same(self, user, q):
        pb = self.pb
        try:
            a = self.rec.Retrieve(pb.RetrieveRequest(user_id=user, k=5), timeout=20)
        except self.grpc.RpcError as e:
            return "Retrieve(user %s): %s %s" % (user, e.code(), e.details())
        b = self.rec.Retrieve(pb.RetrieveRequest(user_id=user, query_vector=q, k=5), timeout=20)
        sa = [(x.item_id, round(x.retrieval_score, 4)) for x in a.items]
        sb = [(x.item_id, round(x.retrieval_score, 4)) for x in b.items]
        if not sa or sa != sb:
            return "user %s: stored query gives %s, the acknowledged events give %s" % (user, sa, sb)
        return None

    def events(self, user, items):
        return self._same(user, mean_query([self.base[i] for i in items]))

    def item(self, item_id, vec):
        self.n_check_users += 1
        user = "chk-%s-%d" % (item_id, self.n_check_users)
        pb = self.pb
        self.rec.AppendEvents(pb.AppendEventsRequest(
            events=[pb.Event(user_id=user, item_id=item_id, timestamp_ms=1)]), timeout=20)
        return self._same(user, vec)


def random_unit(rng):
    return unit([rng.gauss(0, 1) for _ in range(D)])


def wait_port_free(proc, seconds=5):
    t = time.time() + seconds
    while proc.poll() is None and time.time() < t:
        time.sleep(0.01)


def load_base(stub, pb, base):
    """The base items' vectors into the store (the query space)."""
    req = pb.UpsertItemsRequest()
    for iid, v in base.items():
        req.items.add(item_id=str(iid), embedding=v)
    return stub.UpsertItems(req, timeout=20).upserted

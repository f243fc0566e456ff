"""A small served world for the python tests that need no generated stubs:
a model trained by `moerec train` for one epoch, a retriever set built by
`moerec index retrievers` beside it (one FAISS expert per group, pilots, a
popularity fallback), and `moerec serve` started on 127.0.0.1 with free
ports. Used by the client package, quickstart, status page and Grafana
tests."""
import json
import math
import os
import random
import signal
import subprocess

D, GROUPS, PER_GROUP = 8, 4, 30

MODEL_JSON = {
    "format": "moerec.model", "format_version": 1, "name": "rec",
    "tables": [{"name": "user", "rows": 64, "dim": 4}, {"name": "item", "rows": 256, "dim": 4}],
    "features": {"categorical": [{"name": "user_id", "table": "user"},
                                 {"name": "item_id", "table": "item"}]},
    "tasks": [{"name": "click", "weight": 1.0}],
    "arch": {"type": "mmoe", "experts": 2, "expert_hidden": [4], "tower_hidden": [2]},
}


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _unit(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def build(bin_path, d, model_json=None):
    """Write the world into d; returns ({item id: (group, vector)}, the
    index tool's JSON summary)."""
    rng = random.Random(5)
    items = {}
    rows = ["item_id,group," + ",".join("e%d" % j for j in range(D))]
    for g in range(GROUPS):
        for i in range(PER_GROUP):
            iid = 1 + g * PER_GROUP + i
            base = [0.0] * D
            base[2 * g], base[2 * g + 1] = 1.0, 0.5
            v = _unit([b + rng.gauss(0, 0.15) for b in base])
            items[iid] = (g, v)
            rows.append("%d,%d,%s" % (iid, g, ",".join("%.6f" % x for x in v)))
    _write(os.path.join(d, "items.csv"), "\n".join(rows) + "\n")
    ev = ["user_id,item_id,ts_ms"] + ["%d,%d,%d" % (u, 1 + (u * 7 + t) % (GROUPS * PER_GROUP), t)
                                      for u in range(50) for t in range(5)]
    _write(os.path.join(d, "events.csv"), "\n".join(ev) + "\n")
    mj = dict(model_json or MODEL_JSON)
    os.makedirs(os.path.join(d, "models", mj["name"]), exist_ok=True)
    _write(os.path.join(d, "model.json"), json.dumps(mj))
    train = ["user_id,item_id,click"] + ["%d,%d,%d" % (u, i, (u + i) % 2)
                                         for u in range(20) for i in range(1, 40)]
    _write(os.path.join(d, "train.csv"), "\n".join(train) + "\n")
    subprocess.run([bin_path, "train", "--model-json", os.path.join(d, "model.json"),
                    "--data", os.path.join(d, "train.csv"), "--out",
                    os.path.join(d, "models", mj["name"]), "--epochs", "1", "--quiet"],
                   check=True, capture_output=True)
    out = subprocess.run([bin_path, "index", "retrievers", "--items", os.path.join(d, "items.csv"),
                    "--expert-column", "group", "--pilots", "2", "--events",
                    os.path.join(d, "events.csv"), "--popularity", "--top-p", "0.5",
                    "--out", os.path.join(d, "models", mj["name"], "1", "retrievers"), "--quiet"],
                   check=True, capture_output=True, text=True).stdout
    return items, json.loads(out.strip().splitlines()[-1])


class Server:
    """`moerec serve` on 127.0.0.1:0 (and a metrics port), stopped with
    SIGTERM by stop(), which checks it exits 0."""

    def __init__(self, bin_path, d, extra_config=None, tag="srv"):
        cfg = {"model_dir": os.path.join(d, "models"), "data_dir": os.path.join(d, "db-" + tag),
               "item_dim": D, "query_events": 5, "max_k": 50, "log_level": "warn"}
        cfg.update(extra_config or {})
        path = os.path.join(d, "moerec-%s.json" % tag)
        _write(path, json.dumps(cfg))
        self.proc = subprocess.Popen([bin_path, "serve", "--port", "0", "--drain-grace", "0", "--metrics-port", "0",
                                      "--config", path], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError("server did not start: %r" % line)
        self.target = line[len("listening on "):]
        mline = self.proc.stdout.readline().strip()  # metrics on http://127.0.0.1:PORT/metrics
        self.metrics_port = int(mline.rsplit(":", 1)[1].split("/")[0])

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        self.proc.stdout.close()
        if rc != 0:
            raise RuntimeError("server exited %d" % rc)


def main(module_globals, *extra_args):
    """The tests' main: parses --bin (plus --proto-dir and --scripts-dir,
    accepted for mr_pyclient_test, and extra_args: (flag, default) pairs)
    into module_globals["ARGS"], runs the module's unittest cases and
    prints the 'N passed, N failed' line ctest logs show."""
    import argparse
    import sys
    import unittest
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--proto-dir")
    ap.add_argument("--scripts-dir")
    for flag, default in extra_args:
        ap.add_argument(flag, default=default)
    args, rest = ap.parse_known_args()
    module_globals["ARGS"] = args
    prog = unittest.main(module=module_globals["__name__"], argv=[sys.argv[0]] + rest,
                         exit=False, verbosity=2)
    n, bad = prog.result.testsRun, len(prog.result.failures) + len(prog.result.errors)
    print("%d passed, %d failed" % (n - bad, bad))
    sys.exit(0 if bad == 0 and n > 0 else 1)


_PORTS_GIVEN = set()


def free_port():
    """A port nothing listens on (bound then released), never one this
    process was given before: the kernel may hand a just-released port out
    again, and two of a cluster's nodes on one port fail only sometimes."""
    import socket
    for _ in range(100):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _PORTS_GIVEN:
            _PORTS_GIVEN.add(port)
            return port
    raise RuntimeError("no fresh free port")

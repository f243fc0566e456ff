"""A 3-node NATS JetStream cluster on free loopback ports for the replica
tests and bench/replicas (Debian's nats-server, started and stopped here),
and `moerec serve` replicas fed by it."""
import json
import os
import shutil
import socket
import subprocess
import time
import unittest

from moerec_world import free_port


def skip_unless_nats():
    """unittest.SkipTest when nats-server is not installed."""
    if not shutil.which("nats-server"):
        raise unittest.SkipTest("nats-server not installed (scripts/install-deps.sh --tests)")


def wait_port(port, timeout=20):
    until = time.time() + timeout
    while time.time() < until:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on %d" % port)


class NatsCluster:
    """n JetStream nodes clustered over routes; .servers is the
    log_servers string of them all."""

    def __init__(self, d, n=3, name="moerec-test"):
        self.ports = [free_port() for _ in range(n)]
        cports = [free_port() for _ in range(n)]
        self.procs = []
        for i in range(n):
            routes = ",".join("nats://127.0.0.1:%d" % cports[j] for j in range(n) if j != i)
            self.procs.append(subprocess.Popen(
                ["nats-server", "-a", "127.0.0.1", "-p", str(self.ports[i]), "-n", "n%d" % i, "-js",
                 "-sd", os.path.join(d, "nats%d" % i), "--cluster_name", name,
                 "--cluster", "nats://127.0.0.1:%d" % cports[i], "--routes", routes],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for p in self.ports:
            wait_port(p)
        self.servers = ",".join("nats://127.0.0.1:%d" % p for p in self.ports)

    def kill(self, i):
        self.procs[i].kill()
        self.procs[i].wait()

    def stop(self):
        for p in self.procs:
            p.kill()
            p.wait()


def start_replica(binary, d, i, servers, data_dir=None, extra=None, args=()):
    """`moerec serve` as replica i (consumer r<i>, data in d/data<i>);
    returns (process, address) once it listens. extra: more config keys."""
    cfg = {"data_dir": data_dir or os.path.join(d, "data%d" % i), "item_dim": 4, "log_level": "warn",
           "log_servers": servers, "log_consumer": "r%d" % i, "log_replicas": 3,
           "log_timeout_ms": 20000}
    cfg.update(extra or {})
    path = os.path.join(d, "moerec%d.json" % i)
    with open(path, "w") as f:
        json.dump(cfg, f)
    p = subprocess.Popen([binary, "serve", "--port", "0", "--drain-grace", "0", "--config", path]
                         + list(args), stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    if not line.startswith("listening on "):
        p.kill()
        p.wait()
        raise RuntimeError("replica %d did not start: %r" % (i, line))
    return p, line[len("listening on "):]

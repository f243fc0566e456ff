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


def healthz(port):
    """The HTTP status of a node's /healthz (monitoring port), 0 when it
    does not answer. 200 once JetStream is up and, clustered, the node is
    current with the meta leader (nats-server 2.9)."""
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


class NatsCluster:
    """n JetStream nodes clustered over routes; .servers is the
    log_servers string of them all. Ready when every node's /healthz says
    so (the routes are up and a JetStream meta leader is elected), not just
    when its client port accepts: a replica started before that could not
    create or bind its stream within its log timeout on a loaded machine.
    A node that exits at start (a port taken between free_port and its
    bind, by another test on the machine) is retried on new ports."""

    def __init__(self, d, n=3, name="moerec-test", timeout=60, tries=3):
        for attempt in range(tries):
            try:
                self._start(d, n, name, timeout, attempt)
                return
            except RuntimeError:
                self.stop()
                if attempt == tries - 1:
                    raise

    def _start(self, d, n, name, timeout, attempt):
        self.ports = [free_port() for _ in range(n)]
        cports = [free_port() for _ in range(n)]
        mports = [free_port() for _ in range(n)]
        self.procs = []
        for i in range(n):
            routes = ",".join("nats://127.0.0.1:%d" % cports[j] for j in range(n) if j != i)
            sd = os.path.join(d, "nats%d" % i) + ("" if attempt == 0 else "-%d" % attempt)
            self.procs.append(subprocess.Popen(
                ["nats-server", "-a", "127.0.0.1", "-p", str(self.ports[i]), "-n", "n%d" % i, "-js",
                 "-m", str(mports[i]), "-sd", sd, "--cluster_name", name,
                 "--cluster", "nats://127.0.0.1:%d" % cports[i], "--routes", routes],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        until = time.time() + timeout
        for i, m in enumerate(mports):
            while healthz(m) != 200:
                if self.procs[i].poll() is not None:
                    raise RuntimeError("nats node %d exited (rc %s) at start"
                                       % (i, self.procs[i].returncode))
                if time.time() > until:
                    raise RuntimeError("nats node %d not healthy after %d s" % (i, timeout))
                time.sleep(0.1)
        for p in self.ports:
            wait_port(p)
        self.servers = ",".join("nats://127.0.0.1:%d" % p for p in self.ports)

    def kill(self, i):
        self.procs[i].kill()
        self.procs[i].wait()

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
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

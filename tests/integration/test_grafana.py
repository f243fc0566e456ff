"""docs/grafana/moerec.json against a real server: every metric a panel
queries is in /metrics, every metric family of /metrics is on a panel or
listed as deliberately absent in docs/grafana/README.md (the shared-tier
and update-log families, exported only with a Redis Cluster tier or NATS
log, are checked against the README's lists of them instead), every query
parses (promtool check rules), and every query returns series from a real
Prometheus (Debian's prometheus) scraping the server every second while
traffic runs.

Run: VENV/bin/python test_grafana.py --bin PATH/TO/moerec"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moerec_world  # noqa: E402

from moerec_client import Client, MoerecError  # noqa: E402

ARGS = None
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
METRIC = re.compile(r"\b(moerec_[a-z0-9_]+)\b")


def dashboard():
    with open(os.path.join(ROOT, "docs", "grafana", "moerec.json")) as f:
        return json.load(f)


def queries(d):
    return [(p["title"], t["expr"]) for p in d["panels"] for t in p["targets"]]


def concrete(expr, window="10s"):
    """A panel query with Grafana's variables replaced."""
    return expr.replace("$__rate_interval", window).replace('job=~"$job"', 'job=~".*"')


def readme_list(section):
    """Metric names in the bullet list of docs/grafana/README.md's section."""
    with open(os.path.join(ROOT, "docs", "grafana", "README.md")) as f:
        text = f.read().split("## " + section, 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in text.splitlines():
        if line.startswith("- "):
            names |= set(re.findall(r"`(moerec_[a-z0-9_]+)`", line.split(" — ")[0]))
    return names


def absent_list():
    return readme_list("Not on a panel")


def conditional_list():
    """Families only a server with a shared tier or an update log exports."""
    return readme_list("Only with a shared tier") | readme_list("Only with an update log")


def traffic(c, items, rounds=10):
    for _ in range(rounds):
        c.recommend("u1", k=5)
        c.score("u1", ["1", "2", "3"])
        try:
            c.score("u1", [("1", {"no_such_feature": "x"})])
        except MoerecError:
            pass


class GrafanaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        cls.items, _ = moerec_world.build(ARGS.bin, d)
        cls.srv = moerec_world.Server(ARGS.bin, d)
        cls.client = Client(cls.srv.target)
        cls.client.upsert_items([{"item_id": str(i), "embedding": v}
                                 for i, (g, v) in cls.items.items()])
        cls.client.append_events([("u1", str(i), 1000 + i) for i in range(1, 20)])
        traffic(cls.client, cls.items)
        url = "http://127.0.0.1:%d/metrics" % cls.srv.metrics_port
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode()
        cls.families = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
        cls.samples = set(re.findall(r"^(moerec_[a-z0-9_]+)[{ ]", text, re.M))

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.srv.stop()
        cls.tmp.cleanup()

    def test_queried_metrics_exist(self):
        qs = queries(dashboard())
        self.assertGreaterEqual(len(qs), 10)
        cond = conditional_list()
        self.assertTrue(cond)
        for n in cond:  # this server has no shared tier: those are not in its /metrics
            self.assertNotIn(n, self.samples, "%s is exported without a shared tier" % n)
        for title, expr in qs:
            names = METRIC.findall(expr)
            self.assertTrue(names, "panel %r queries no moerec metric" % title)
            for n in names:
                self.assertTrue(n in self.samples or n in cond,
                                "panel %r: %s is not in /metrics" % (title, n))

    def test_every_family_on_a_panel_or_listed(self):
        used = {n for _, e in queries(dashboard()) for n in METRIC.findall(e)}
        absent = absent_list()
        self.assertLessEqual(conditional_list(), used)  # on a panel too
        self.assertGreater(len(self.families), 10)
        for fam, kind in self.families.items():
            parts = {fam + s for s in ("_bucket", "_sum", "_count")} if kind == "histogram" else {fam}
            self.assertEqual(parts - used - absent, set(),
                             "family %s is on no panel (add one, or list it in "
                             "docs/grafana/README.md)" % fam)
        for n in absent:  # the list names only what exists
            self.assertIn(n, self.samples, "README lists %s, which /metrics does not have" % n)
            self.assertNotIn(n, used, "README lists %s as absent but a panel queries it" % n)

    def test_grafana_shape(self):
        d = dashboard()
        self.assertEqual(d["uid"], "moerec")
        ids = [p["id"] for p in d["panels"]]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertGreaterEqual(d["schemaVersion"], 36)
        plugins = {r["id"] for r in d["__requires"] if r["type"] == "panel"}
        cells = {}
        for p in d["panels"]:
            self.assertIn(p["type"], ("timeseries", "stat", "table"))
            self.assertIn(p["type"], plugins)  # an import names the panel plugins it needs
            self.assertEqual(p["datasource"]["uid"], "${DS_PROMETHEUS}")
            self.assertTrue(all(k in p["gridPos"] for k in "xywh"))
            g = p["gridPos"]
            self.assertLessEqual(g["x"] + g["w"], 24, p["title"])  # Grafana's grid is 24 wide
            for x in range(g["x"], g["x"] + g["w"]):  # no panel covers another
                for y in range(g["y"], g["y"] + g["h"]):
                    self.assertNotIn((x, y), cells, (p["title"], cells.get((x, y))))
                    cells[(x, y)] = p["title"]
            refs = [t["refId"] for t in p["targets"]]
            self.assertEqual(len(refs), len(set(refs)), p["title"])
            for t in p["targets"]:
                self.assertEqual(t["datasource"]["uid"], "${DS_PROMETHEUS}")
            for o in p["fieldConfig"]["overrides"]:  # overrides name a query of the panel
                if o["matcher"]["id"] == "byFrameRefID":
                    self.assertIn(o["matcher"]["options"], refs, p["title"])
        titles = " ".join(p["title"] for p in d["panels"]).lower()
        for want in ("calls per second", "error rate", "p50", "p99", "cache hit rate",
                     "router", "expert utilisation", "store", "uptime", "model"):
            self.assertIn(want, titles)

    def test_promtool_parses(self):
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool missing: scripts/install-deps.sh --tests")
        path = os.path.join(self.tmp.name, "rules.yml")
        with open(path, "w") as f:
            f.write("groups:\n- name: dashboard\n  rules:\n")
            for i, (_, e) in enumerate(queries(dashboard())):
                f.write("  - record: moerec:panel%d\n    expr: %s\n" % (i, json.dumps(concrete(e))))
        r = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_prometheus_answers_every_panel(self):
        prom = shutil.which("prometheus")
        self.assertIsNotNone(prom, "prometheus missing: scripts/install-deps.sh --tests")
        d = self.tmp.name
        port = moerec_world.free_port()
        cfg = os.path.join(d, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: moerec\n"
                    "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % self.srv.metrics_port)
        p = subprocess.Popen([prom, "--config.file=" + cfg, "--storage.tsdb.path=" + d + "/tsdb",
                              "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            api = "http://127.0.0.1:%d/api/v1/query?query=" % port

            def query(q):
                with urllib.request.urlopen(api + urllib.parse.quote(q), timeout=10) as r:
                    return json.load(r)
            deadline = time.time() + 60
            while True:  # traffic while Prometheus gathers a few scrapes
                traffic(self.client, self.items, 2)
                try:
                    n = query('count_over_time(moerec_up[1m])')["data"]["result"]
                    if n and float(n[0]["value"][1]) >= 5:
                        break
                except OSError:
                    pass
                self.assertLess(time.time(), deadline, "Prometheus gathered no scrapes")
                time.sleep(0.5)
            cond = conditional_list()
            for title, e in queries(dashboard()):
                r = query(concrete(e))
                self.assertEqual(r["status"], "success", (title, r))
                if set(METRIC.findall(e)) <= cond:
                    continue  # shared-tier only: no series here
                self.assertTrue(r["data"]["result"], "panel %r: no series for %s" % (title, e))
        finally:
            p.terminate()
            p.wait(timeout=30)
            p.stderr.close()


if __name__ == "__main__":
    moerec_world.main(globals())

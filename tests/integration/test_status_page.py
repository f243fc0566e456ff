"""The status page (GET / on the metrics port) in headless Chromium: after
traffic (Score, Recommend, writes, some errors) the DOM holds every plot —
calls/s, error rate, p50 and p99 latency per RPC over the last hour, cache
hit rate per tier, router share per expert, expert utilisation per gate,
the store's keys per RocksDB column family, with the size table whose
key counts equal the server's /metrics —
the page loads nothing from elsewhere and logs no console error, and a
screenshot is saved as a test artefact (--artefacts DIR). A second test
serves a model and a task (hence a gate) whose names hold < > & and both
quotes, and checks the page escapes them (the raw HTML carries only
entities; the browser's text is the name itself). Retriever names cannot
hold such characters (the retriever set loader allows letters, digits,
_ . -), so they are escaped but not tested with them.

Run: VENV/bin/python test_status_page.py --bin PATH/TO/moerec [--artefacts DIR]"""
import html.parser
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moerec_world  # noqa: E402

from moerec_client import Client, MoerecError  # noqa: E402

ARGS = None
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PLOTS = ["qps", "errors", "latency-p50", "latency-p99", "cache", "router", "gate-0", "store-size"]
FAMILIES = ["meta", "items", "users", "events", "sdim", "itemlog"]
ODD = "<b>&\"q'"


def chromium(args, url, tmp):
    """Run headless Chromium on url; returns (stdout, stderr)."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--hide-scrollbars", "--user-data-dir=" + os.path.join(tmp, "profile"),
           "--enable-logging=stderr", "--v=0"] + args + [url]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return r.stdout, r.stderr


def console_errors(stderr):
    """Console messages and failed loads Chromium logged. Headless Chromium
    logs every console message (console.error included) as INFO:CONSOLE
    without its level; the page runs no script, so any is an error."""
    bad = []
    for line in stderr.splitlines():
        if ":CONSOLE" in line:
            bad.append(line)
        elif "Failed to load resource" in line or "net::ERR_" in line:
            bad.append(line)
    return bad


class Dom(html.parser.HTMLParser):
    """Collects svg data-plot ids, external references, and the text of
    elements by id/class."""

    def __init__(self):
        super().__init__()
        self.plots, self.refs, self.counts = {}, [], {}
        self.cur_plot, self.capture, self.texts = None, None, {}
        self.table, self.size_rows, self.cell = None, [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for k in ("src", "href"):
            if k in a and a[k] and not a[k].startswith(("/", "#", "data:")):
                self.refs.append(a[k])
        if tag == "script":
            self.refs.append("<script>")
        if tag == "svg" and "data-plot" in a:
            self.cur_plot = a["data-plot"]
            self.plots[self.cur_plot] = {}
        elif self.cur_plot:
            self.plots[self.cur_plot][tag] = self.plots[self.cur_plot].get(tag, 0) + 1
        if tag == "table":
            self.table = a.get("id")
        elif self.table == "store-size" and tag == "tr" and a.get("class"):
            self.size_rows.append([a["class"]])
        elif self.table == "store-size" and tag == "td" and self.size_rows:
            self.size_rows[-1].append("")
            self.cell = True
        key = "h2" if tag == "h2" else a.get("class") or a.get("id")
        if key in ("model-name", "h2"):
            self.capture = key
            self.texts.setdefault(key, []).append("")

    def handle_endtag(self, tag):
        if tag == "table":
            self.table = None
        if tag == "td":
            self.cell = None
        if tag == "svg":
            self.cur_plot = None
        if tag in ("td", "h2"):
            self.capture = None

    def handle_data(self, data):
        if self.cell and self.size_rows:
            self.size_rows[-1][-1] += data
        if self.capture:
            self.texts[self.capture][-1] += data


def traffic(c, items):
    c.upsert_items([{"item_id": str(i), "embedding": v} for i, (g, v) in items.items()])
    c.append_events([("u1", str(i), 1000 + i) for i in range(1, 20)])
    for _ in range(20):
        c.recommend("u1", k=5)
        c.score("u1", ["1", "2", "3"])
        c.retrieve("u1", k=5)
    for _ in range(5):
        try:
            c.score("u1", [("1", {"no_such_feature": "x"})])
        except MoerecError:
            pass


class StatusPageTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def fetch(self, port, path="/"):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
            return r.headers.get("Content-Type"), r.read().decode()

    def test_plots_render(self):
        d = self.tmp.name
        items, _ = moerec_world.build(ARGS.bin, d)
        srv = moerec_world.Server(ARGS.bin, d)
        try:
            with Client(srv.target) as c:
                traffic(c, items)
            ctype, page = self.fetch(srv.metrics_port)
            self.assertEqual(ctype, "text/html; charset=utf-8")
            url = "http://127.0.0.1:%d/" % srv.metrics_port
            dom_text, err = chromium(["--dump-dom"], url, d)
            self.assertEqual(console_errors(err), [], err[-2000:])
            dom = Dom()
            dom.feed(dom_text)
            self.assertEqual(dom.refs, [], "the page must load nothing from elsewhere")
            for p in PLOTS:
                self.assertIn(p, dom.plots, "plot %s missing from the DOM" % p)
            self.assertGreater(dom.plots["qps"].get("polyline", 0) + dom.plots["qps"].get("circle", 0), 0)
            self.assertGreater(dom.plots["errors"].get("polyline", 0) + dom.plots["errors"].get("circle", 0), 0)
            self.assertGreaterEqual(dom.plots["router"].get("rect", 0), 2 * 5)  # 5 experts
            self.assertGreaterEqual(dom.plots["cache"].get("rect", 0), 2)
            self.assertIn("Score", page)
            self.assertIn("level0/all", page)  # the one-task MMoE gate
            self.assertRegex(page, r'id="uptime">0d 00h 0\dm \d\ds')
            # the store's size: one row per column family (and the total),
            # one bar each; the key counts are the ones /metrics exports
            metrics = self.fetch(srv.metrics_port, "/metrics")[1]
            keys = {m.group(1): int(m.group(2)) for m in re.finditer(
                r'^moerec_store_keys_estimate\{family="([^"]+)"\} (\d+)$', metrics, re.M)}
            rows = {r[1]: r for r in dom.size_rows if r[0] == "cf"}
            self.assertEqual(sorted(rows), sorted(keys))
            self.assertLessEqual(set(FAMILIES), set(rows))
            self.assertGreaterEqual(keys["items"], len(items))  # the upserted catalogue
            self.assertGreaterEqual(keys["events"], 19)
            for fam, r in rows.items():
                self.assertEqual(len(r), 6, r)  # name, SST, live, memtables, keys
                self.assertRegex(r[2], r"^\d+(\.\d+)? (B|KiB|MiB|GiB)$")
                # no write between the page and the scrape (nor a flush:
                # the memtables are far below their size)
                self.assertEqual(int(r[5]), keys[fam], fam)
            total = [r for r in dom.size_rows if r[0] == "cf-total"]
            self.assertEqual(len(total), 1)
            self.assertEqual(int(total[0][5]), sum(int(r[5]) for r in rows.values()))
            self.assertGreaterEqual(dom.plots["store-size"].get("rect", 0), 2 * len(FAMILIES))
            title = [t for t in dom.texts["h2"] if t.startswith("Store keys per column family")]
            self.assertEqual(len(title), 1, dom.texts["h2"])
            self.assertIn("approx. %s in all;" % total[0][5], title[0])
            # the error plot shows Score's errors: 5 of 25 calls in this minute
            m = re.search(r'data-plot="errors".*?</svg>', page, re.S)
            self.assertIsNotNone(m)
            # a screenshot as a test artefact
            shot = os.path.join(ARGS.artefacts, "status_page.png")
            os.makedirs(ARGS.artefacts, exist_ok=True)
            if os.path.exists(shot):
                os.unlink(shot)
            _, err = chromium(["--screenshot=" + shot, "--window-size=1366,1800"], url, d)
            with open(shot, "rb") as f:
                png = f.read()
            self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
            self.assertGreater(len(png), 20000)
            print("screenshot: %s (%d bytes)" % (shot, len(png)))
            # the other paths still answer
            self.assertIn("moerec_rpc_calls_total", self.fetch(srv.metrics_port, "/metrics")[1])
        finally:
            srv.stop()

    def test_names_escaped(self):
        d = self.tmp.name
        mj = dict(moerec_world.MODEL_JSON)
        # two tasks (so gates are named per task), both learning the click column
        mj["tasks"] = [{"name": "c" + ODD, "label": "click"}, {"name": "like", "label": "click"}]
        moerec_world.build(ARGS.bin, d, mj)
        name = "m" + ODD
        os.rename(os.path.join(d, "models", mj["name"]), os.path.join(d, "models", name))
        srv = moerec_world.Server(ARGS.bin, d)
        try:
            with Client(srv.target) as c:
                self.assertEqual(c.get_model_info().model, name)
                c.recommend("u1", k=3)
                c.score("u1", ["1", "2"])
            _, page = self.fetch(srv.metrics_port)
            esc = "&lt;b&gt;&amp;&quot;q&#39;"
            self.assertNotIn(ODD, page)
            self.assertNotIn("<b>", page)
            for raw in ("m" + esc, "level0/task:c" + esc):
                self.assertIn(raw, page)
            dom_text, err = chromium(["--dump-dom"], "http://127.0.0.1:%d/" % srv.metrics_port, d)
            self.assertEqual(console_errors(err), [], err[-2000:])
            dom = Dom()
            dom.feed(dom_text)
            self.assertEqual(dom.texts["model-name"], [name])  # the browser shows the name itself
            self.assertIn("c" + ODD, " ".join(dom.texts["h2"]))  # the gate of task c<b>...
        finally:
            srv.stop()


if __name__ == "__main__":
    moerec_world.main(globals(), ("--artefacts", os.path.join(tempfile.gettempdir(), "moerec-artefacts")))

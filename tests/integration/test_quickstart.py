"""docs/quickstart.md as written: its shell steps 2-4 (demo-data, train,
index retrievers, serve, the client's venv install) run with this build's
binary, and its Python snippet runs against that server; the output is
what the page says (SERVING, five items best first, most of them sci-fi).
The only edits: the binary's path, free ports instead of 50051/9464, and
the venv in a temp dir.

Run: VENV/bin/python test_quickstart.py --bin PATH/TO/moerec"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moerec_world  # noqa: E402

ARGS = None
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def blocks(path):
    """[(language, text)] of the fenced code blocks."""
    with open(path) as f:
        text = f.read()
    return re.findall(r"^```(\w+)\n(.*?)^```", text, re.M | re.S)


class QuickstartTest(unittest.TestCase):
    def test_quickstart(self):
        bs = blocks(os.path.join(ROOT, "docs", "quickstart.md"))
        sh = [b for lang, b in bs if lang == "sh"]
        py = [b for lang, b in bs if lang == "python"]
        self.assertEqual(len(sh), 4)
        self.assertEqual(len(py), 1)
        moerec = os.path.abspath(ARGS.bin)
        with tempfile.TemporaryDirectory() as d:
            env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
            # step 2: the world, the ranker, the retrievers
            for line in sh[1].splitlines():
                line = line.strip()
                if not line:
                    continue
                r = subprocess.run(line.replace("build/tools/moerec", moerec), shell=True,
                                   cwd=d, capture_output=True, text=True, env=env)
                self.assertEqual(r.returncode, 0, "%s\n%s" % (line, r.stderr[-2000:]))
            # step 3: serve, on free ports
            serve = sh[2].strip()
            self.assertTrue(serve.endswith("&"), serve)
            args = serve[:-1].split()
            self.assertEqual(args[0], "build/tools/moerec")
            args[0] = moerec
            args[args.index("--port") + 1] = "0"
            args[args.index("--metrics-port") + 1] = "0"
            srv = subprocess.Popen(args, cwd=d, stdout=subprocess.PIPE, text=True, env=env)
            try:
                line = srv.stdout.readline().strip()
                self.assertTrue(line.startswith("listening on 127.0.0.1:"), line)
                target = line[len("listening on "):]
                # step 4: the client's install, as written, with the venv in d
                venv = os.path.join(d, ".venv")
                for cmd in sh[3].splitlines():
                    cmd = cmd.strip()
                    if cmd:
                        r = subprocess.run(cmd.replace(".venv", venv), shell=True, cwd=ROOT,
                                           capture_output=True, text=True)
                        self.assertEqual(r.returncode, 0, "%s\n%s" % (cmd, r.stderr[-2000:]))
                # step 5: the snippet
                self.assertIn('"127.0.0.1:50051"', py[0])
                with open(os.path.join(d, "quickstart.py"), "w") as f:
                    f.write(py[0].replace("127.0.0.1:50051", target))
                r = subprocess.run([os.path.join(venv, "bin", "python"), "quickstart.py"], cwd=d,
                                   capture_output=True, text=True, timeout=120, env=env)
                self.assertEqual(r.returncode, 0, r.stderr[-3000:])
                print(r.stdout)
                out = r.stdout.splitlines()
                self.assertEqual(out[0], "server: SERVING")
                self.assertEqual(out[1], "model demo/1")
                items = [x.split() for x in out[2:]]
                self.assertEqual(len(items), 5)
                scores = [float(x[2]) for x in items]
                self.assertEqual(scores, sorted(scores, reverse=True))
                self.assertGreaterEqual(sum(x[1] == "scifi" for x in items), 3)  # "most"
            finally:
                srv.send_signal(signal.SIGTERM)
                self.assertEqual(srv.wait(timeout=60), 0)
                srv.stdout.close()


if __name__ == "__main__":
    moerec_world.main(globals())

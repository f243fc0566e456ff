"""Shared main() of the python integration tests: parses --bin,
--proto-dir and --scripts-dir, generates the gRPC stubs from proto/ into a
temp dir (load_stubs), runs the calling module's
unittest cases and prints the 'N passed, N failed' line ctest logs show."""
import argparse
import os
import sys
import tempfile
import unittest


def load_stubs(proto_dir, out):
    """grpc_tools.protoc of proto/ into out/, importable as moerec_pb2 etc."""
    from grpc_tools import protoc
    for name in ("health.proto", "moerec.proto"):
        if protoc.main(["protoc", "-I" + proto_dir, "--python_out=" + out,
                        "--grpc_python_out=" + out, os.path.join(proto_dir, name)]):
            raise RuntimeError("protoc failed on " + name)
    sys.path.insert(0, out)


def run(module_globals):
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--proto-dir", required=True)
    ap.add_argument("--scripts-dir",
                    default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                         "scripts"))
    args, rest = ap.parse_known_args()
    module_globals["ARGS"] = args
    with tempfile.TemporaryDirectory() as out:
        sys.path.insert(0, args.scripts_dir)
        load_stubs(args.proto_dir, out)
        prog = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2)
    n, bad = prog.result.testsRun, len(prog.result.failures) + len(prog.result.errors)
    print("%d passed, %d failed" % (n - bad, bad))
    sys.exit(0 if bad == 0 and n > 0 else 1)


def time_scale():
    """The factor on a test's wall-clock bounds: MOEREC_TEST_TIME_SCALE
    (tests/integration/CMakeLists.txt sets 4 under ASan, 10 under TSan, 1
    otherwise; set it higher to run on a machine known to be overloaded)."""
    try:
        return max(1.0, float(os.environ.get("MOEREC_TEST_TIME_SCALE", "1")))
    except ValueError:
        return 1.0


def demo_model(binary, d, users=20, items=50, rows=500):
    """`moerec demo-data` + a one-epoch `moerec train` into d; returns the
    model root (d/models, holding the model 'demo')."""
    import subprocess
    subprocess.run([binary, "demo-data", "--out", d, "--users", str(users), "--items", str(items),
                    "--rows", str(rows)], check=True, capture_output=True)
    subprocess.run([binary, "train", "--model-json", os.path.join(d, "model.json"), "--data",
                    os.path.join(d, "interactions.csv"), "--out", os.path.join(d, "models", "demo"),
                    "--epochs", "1", "--quiet"], check=True, capture_output=True)
    return os.path.join(d, "models")


def demo_score_request(pb, d, candidates=8):
    """A valid ScoreRequest for the demo model in d: the first user and the
    first `candidates` items (repeated when the catalogue is smaller)."""
    import csv
    with open(os.path.join(d, "items.csv")) as f:
        items = list(csv.DictReader(f))
    with open(os.path.join(d, "users.csv")) as f:
        user = next(csv.DictReader(f))
    req = pb.ScoreRequest(user_id=user["user_id"])
    req.user_features.numeric.add(name="age", value=float(user["age"]))
    for i in range(candidates):
        it = items[i % len(items)]
        c = req.candidates.add(item_id=it["item_id"])
        c.features.categorical.add(name="genre", values=[it["genre"]])
        c.features.numeric.add(name="price", value=float(it["price"]))
    return req


def log_time(line):
    """Unix seconds of a server log line ('2026-11-29T01:44:54.435Z I ...'),
    truncated to the millisecond as logged."""
    import calendar
    import time
    stamp = line.split(" ", 1)[0]
    whole, ms = stamp.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + int(ms) / 1000.0

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

#!/usr/bin/python3
"""demo_client.py — call a running moerec server with Debian's python3-grpcio.

Generates stubs from proto/ into a temp dir, then calls health Check, the
first message of health Watch, Admin/Stats and Recommend, printing each
answer. Used by scripts/demo.sh.
"""
import argparse
import os
import sys
import tempfile


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="127.0.0.1:50051")
    ap.add_argument("--proto-dir", default=os.path.join(os.path.dirname(__file__), "..", "proto"))
    a = ap.parse_args()
    import grpc
    from grpc_tools import protoc
    with tempfile.TemporaryDirectory() as out:
        for name in ("health.proto", "moerec.proto"):
            if protoc.main(["protoc", "-I" + a.proto_dir, "--python_out=" + out,
                            "--grpc_python_out=" + out, os.path.join(a.proto_dir, name)]):
                sys.exit("protoc failed on " + name)
        sys.path.insert(0, out)
        import health_pb2, health_pb2_grpc, moerec_pb2, moerec_pb2_grpc
        ch = grpc.insecure_channel(a.target)
        health = health_pb2_grpc.HealthStub(ch)
        r = health.Check(health_pb2.HealthCheckRequest(), timeout=10)
        print("health Check:", health_pb2.HealthCheckResponse.ServingStatus.Name(r.status))
        w = health.Watch(health_pb2.HealthCheckRequest(), timeout=10)
        print("health Watch, first message:",
              health_pb2.HealthCheckResponse.ServingStatus.Name(next(w).status))
        w.cancel()
        st = moerec_pb2_grpc.AdminStub(ch).Stats(moerec_pb2.StatsRequest(), timeout=10)
        print("Admin/Stats: version %s, up %d s, %d methods" % (st.version, st.uptime_seconds,
                                                              len(st.methods)))
        try:
            moerec_pb2_grpc.RecommenderStub(ch).Recommend(
                moerec_pb2.RecommendRequest(user_id="demo-user", k=10), timeout=10)
        except grpc.RpcError as e:
            print("Recommend:", e.code().name, "-", e.details())
        ch.close()


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""seeds.py — write the seed corpora of the fuzz targets into fuzz/corpus/
(committed; rerun after a format change; writes every seed again). Usage:
  /usr/bin/python3 fuzz/seeds.py --proto-dir proto --out fuzz/corpus
Targets whose seeds are the fixture's own binary files (retr_set,
faiss_index, safetensors) are seeded by scripts/fuzz.sh --seeds, which runs
them with MOEREC_FUZZ_SEEDS_OUT."""
import argparse
import json
import os
import struct
import sys
import tempfile

import xxhash


def put(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def rpc_seeds(out, pb, hpb):
    cands = [pb.Candidate(item_id="1"), pb.Candidate(item_id="7")]
    cands[1].features.categorical.add(name="genre", values=["a", "b"])
    cands[1].features.numeric.add(name="price", value=3.5)
    feats = pb.Features()
    feats.categorical.add(name="genre", values=["x"])
    seeds = {
        "rpc_check": [hpb.HealthCheckRequest(), hpb.HealthCheckRequest(service="moerec.v1.Recommender")],
        "rpc_score": [pb.ScoreRequest(request_id="r", user_id="u1", candidates=cands, debug=True),
                      pb.ScoreRequest(user_id="u1", model="fz", candidates=cands[:1], user_features=feats)],
        "rpc_recommend": [pb.RecommendRequest(user_id="u1", k=5, debug=True),
                          pb.RecommendRequest(user_id="cold", k=3, retrieve_k=20, exclude_item_ids=["1"],
                                              retrievers=["flat", "popular"], context_features=feats)],
        "rpc_retrieve": [pb.RetrieveRequest(user_id="u1", k=10, debug=True),
                         pb.RetrieveRequest(query_vector=[0.1, -0.2, 0.3, 0.4], k=5, retrievers=["flat"],
                                            exclude_item_ids=["2"])],
        "rpc_upsert_items": [pb.UpsertItemsRequest(items=[pb.Item(item_id="100", embedding=[0.5, 0.1, 0, 1])]),
                             pb.UpsertItemsRequest(items=[pb.Item(item_id="101", features=feats),
                                                          pb.Item(item_id="102", embedding=[1, 2, 3, 4],
                                                                  features=feats)])],
        "rpc_append_events": [pb.AppendEventsRequest(events=[pb.Event(user_id="u2", item_id="3", timestamp_ms=5,
                                                                       action="click", value=1.0)]),
                              pb.AppendEventsRequest(events=[pb.Event(user_id="u1", item_id="4"),
                                                             pb.Event(user_id="u3", item_id="100")])],
        "rpc_get_model_info": [pb.GetModelInfoRequest(), pb.GetModelInfoRequest(model="fz")],
        "rpc_reload": [pb.ReloadRequest(), pb.ReloadRequest(model="fz", version="1")],
        "rpc_stats": [pb.StatsRequest()],
        "rpc_delete_items": [pb.DeleteItemsRequest(item_ids=["3"]),
                             pb.DeleteItemsRequest(request_id="d", item_ids=["1", "999", "7"], model="fz")],
        # genre is the fixture's store-backed (fp16) table; user is in memory
        "rpc_push_embeddings": [pb.PushEmbeddingsRequest(table="genre", ids=[0, 3],
                                                         rows=[0.5, -1, 2, 0, 1, 1, 1, 1]),
                                pb.PushEmbeddingsRequest(model="fz", version="1", table="genre", ids=[15],
                                                         rows=[70000.0, 0, 0, 0], request_id="p"),
                                pb.PushEmbeddingsRequest(table="user", ids=[1], rows=[1, 2, 3, 4])],
        # absolute dirs are moved under the target's temp dir; /exists exists there
        "rpc_checkpoint": [pb.CheckpointRequest(dir="/cp"), pb.CheckpointRequest(dir="/exists"),
                           pb.CheckpointRequest(dir="/no/parent"), pb.CheckpointRequest(dir="relative")],
    }
    for target, msgs in seeds.items():
        for i, m in enumerate(msgs):
            put(out, target, "seed-%d" % i, m.SerializeToString())
    log = [pb.LogRecord(upsert_items=pb.UpsertItemsRequest(items=[
               pb.Item(item_id="200", embedding=[0.1, 0.2, 0.3, 0.4], features=feats),
               pb.Item(item_id="5", deleted=True)]), time_ms=1700000000000, origin="a"),
           pb.LogRecord(append_events=pb.AppendEventsRequest(events=[
               pb.Event(user_id="u1", item_id="2", timestamp_ms=1700000000001, action="click", value=1)]),
               time_ms=1700000000001, origin="b"),
           pb.LogRecord(delete_items=pb.DeleteItemsRequest(item_ids=["4", "9"]), time_ms=5),
           pb.LogRecord(push_embeddings=pb.PushEmbeddingsRequest(model="fz", version="1", table="genre",
                                                                 ids=[2], rows=[1, 0, -1, 0.25]),
                        time_ms=1700000000002),
           pb.LogRecord(push_embeddings=pb.PushEmbeddingsRequest(model="fz", version="9", table="genre",
                                                                 ids=[2], rows=[1, 0, -1, 0.25]))]
    for i, m in enumerate(log):
        put(out, "log_record", "seed-%d" % i, m.SerializeToString())


MODEL = {
    "format": "moerec.model", "format_version": 1, "name": "movielens",
    "tables": [{"name": "user", "rows": 1000, "dim": 16, "hash": "hash", "seed": 1},
               {"name": "item", "rows": 2000, "dim": 16, "hash": "double", "seed": 2, "seed2": 3}],
    "features": {"categorical": [{"name": "user", "column": "userId", "table": "user"},
                                 {"name": "genres", "table": "item", "combiner": "mean", "separator": "|"}],
                 "numeric": [{"name": "year", "mean": 1990, "std": 15, "fill": 1990}], "extra_dim": 0},
    "tasks": [{"name": "like", "kind": "binary", "label": "rating", "threshold": 4.0, "weight": 1.0},
              {"name": "rating", "kind": "regression", "weight": 0.0, "loss_weight": 0.5}],
    "arch": {"type": "ple", "experts": 4, "task_experts": 1, "levels": 2, "expert_hidden": [8],
             "tower_hidden": [4], "activation": "relu",
             "gate": {"type": "top_p", "k": 2, "p": 0.4, "null_experts": 1, "always_on": 0}},
}


def graphhash_file(users, items, k_u, k_i):
    def side(pairs):
        ids = b"".join(struct.pack("<Q", i) for i, _ in pairs)
        rows = b"".join(struct.pack("<I", r) for _, r in pairs)
        b = ids + rows
        return b + b"\0" * (-len(b) % 8)
    body = side(users) + side(items)
    head = b"MRGHASH\0" + struct.pack("<IIQQIIdQQ", 1, 64, len(users), len(items), k_u, k_i, 1.0, 9,
                                      xxhash.xxh3_64_intdigest(body, seed=0))
    assert len(head) == 64
    return head + body


def npy_file(major, descr, shape, data, fortran=False):
    """A .npy file as numpy writes it (format major.0), written by hand."""
    head = "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }" % (
        descr, "True" if fortran else "False", "".join("%d, " % d for d in shape).rstrip(" ")
        if len(shape) != 1 else "%d," % shape[0])
    pre = 10 if major == 1 else 12
    pad = -(pre + len(head) + 1) % 64
    head = (head + " " * pad + "\n").encode()
    size = struct.pack("<H", len(head)) if major == 1 else struct.pack("<I", len(head))
    return b"\x93NUMPY" + bytes([major, 0]) + size + head + data


def npy_seeds(out):
    f4 = struct.pack("<6f", 0.5, -1, 2, 3.25, 0, 1e30)
    put(out, "npy", "seed-f4", npy_file(1, "<f4", (2, 3), f4))
    put(out, "npy", "seed-f8-v2", npy_file(2, "<f8", (3, 1), struct.pack("<3d", 1, -2.5, 1e10)))
    put(out, "npy", "seed-v3", npy_file(3, "=f4", (1, 2), struct.pack("<2f", 7, 8)))
    put(out, "npy", "seed-1d", npy_file(1, "<f4", (2,), struct.pack("<2f", 1, 2)))
    put(out, "npy", "seed-fortran", npy_file(1, "<f4", (1, 1), struct.pack("<f", 1), True))


def file_seeds(out):
    put(out, "config", "seed-full", json.dumps({
        "host": "127.0.0.1", "port": 50051, "completion_queues": 2, "calls_per_queue": 8,
        "max_receive_bytes": 4194304, "request_arena_bytes": 8388608, "drain_seconds": 5,
        "max_k": 100, "log_level": "warn", "model_dir": "m", "data_dir": "d", "item_dim": 16,
        "store_sync": 1, "user_ttl_seconds": 0, "metrics_port": -1, "query_events": 20}))
    put(out, "config", "seed-empty", "{}")
    put(out, "auth_tokens", "seed-0", "# tokens\n0123456789abcdef0123 admin\nfedcba9876543210fedcba98\n")
    put(out, "model_json", "seed-docs", json.dumps(MODEL))
    put(out, "model_json", "seed-fixture", json.dumps({
        "format": "moerec.model", "format_version": 1, "name": "fz",
        "tables": [{"name": "user", "rows": 64, "dim": 4}, {"name": "item", "rows": 64, "dim": 4}],
        "features": {"categorical": [{"name": "user_id", "table": "user"},
                                     {"name": "item_id", "table": "item"}]},
        "tasks": [{"name": "click", "weight": 1.0}],
        "arch": {"type": "mmoe", "experts": 2, "expert_hidden": [4], "tower_hidden": [2]}}))
    # first byte: 1 = the target repairs the checksum after mutation
    put(out, "graphhash_map", "seed-0",
        b"\x01" + graphhash_file([(3, 0), (10, 1), (99, 1)], [(1, 2), (2, 0)], 2, 3))
    put(out, "graphhash_map", "seed-empty", b"\x01" + graphhash_file([], [(5, 0)], 1, 1))
    put(out, "csv", "seed-0", "user_id,item_id,genre,price,click,like,ts\n"
        "u1,1,a,3.5,1,0,100\nu2,\"7\",\"a,b\",,0,1,101\nu3,9,\"q\"\"x\",2,,1,102\n")
    put(out, "csv", "seed-tsv", "user_id\titem_id\tgenre\tprice\tclick\tlike\n1\t2\tz\t1e3\t1\t0\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proto-dir", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                    "integration"))
    import moerec_testlib
    with tempfile.TemporaryDirectory() as tmp:
        moerec_testlib.load_stubs(args.proto_dir, tmp)
        import moerec_pb2 as pb
        import health_pb2 as hpb
        rpc_seeds(args.out, pb, hpb)
    file_seeds(args.out)
    npy_seeds(args.out)


if __name__ == "__main__":
    main()

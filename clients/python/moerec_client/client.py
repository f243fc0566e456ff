"""The moerec client: one channel per server address, calls spread round
robin over them, a deadline per call that covers its retries, retries with
exponential backoff for UNAVAILABLE only (the status moerec answers while
draining, and gRPC's for a connection that failed), a bearer token, TLS.

Every RPC is one row of METHODS (service, request and response message
names, streaming or not) plus a typed helper that builds the request from
plain Python values; `Client.call(name, request)` reaches any row with a
prebuilt message. Adding an RPC to proto/moerec.proto is one row and one
helper here.
"""
import itertools
import numbers
import random
import threading
import time

import grpc

from ._proto import health_pb2
from ._proto import moerec_pb2 as pb

# name -> (full service name, request module, request type, response type, server streaming)
METHODS = {
    "Recommend": ("moerec.v1.Recommender", pb, "RecommendRequest", "RecommendResponse", False),
    "Score": ("moerec.v1.Recommender", pb, "ScoreRequest", "ScoreResponse", False),
    "Retrieve": ("moerec.v1.Recommender", pb, "RetrieveRequest", "RetrieveResponse", False),
    "UpsertItems": ("moerec.v1.Recommender", pb, "UpsertItemsRequest", "UpsertItemsResponse",
                    False),
    "AppendEvents": ("moerec.v1.Recommender", pb, "AppendEventsRequest", "AppendEventsResponse",
                     False),
    "GetModelInfo": ("moerec.v1.Recommender", pb, "GetModelInfoRequest", "GetModelInfoResponse",
                     False),
    "DeleteItems": ("moerec.v1.Recommender", pb, "DeleteItemsRequest", "DeleteItemsResponse",
                    False),
    "Reload": ("moerec.v1.Admin", pb, "ReloadRequest", "ReloadResponse", False),
    "Stats": ("moerec.v1.Admin", pb, "StatsRequest", "StatsResponse", False),
    "Checkpoint": ("moerec.v1.Admin", pb, "CheckpointRequest", "CheckpointResponse", False),
    "PushEmbeddings": ("moerec.v1.Admin", pb, "PushEmbeddingsRequest", "PushEmbeddingsResponse",
                       False),
    "Check": ("grpc.health.v1.Health", health_pb2, "HealthCheckRequest", "HealthCheckResponse",
              False),
    "Watch": ("grpc.health.v1.Health", health_pb2, "HealthCheckRequest", "HealthCheckResponse",
              True),
}


class MoerecError(Exception):
    """A call that failed: `code` is the grpc.StatusCode the server (or the
    channel) answered, `details` its message, `method` the RPC name,
    `target` the address that answered last, `attempts` how many were made."""

    def __init__(self, method, code, details, target, attempts):
        self.method, self.code, self.details = method, code, details
        self.target, self.attempts = target, attempts
        super().__init__("%s: %s: %s" % (method, code.name, details))

    @property
    def code_name(self):
        """The status name, e.g. "INVALID_ARGUMENT"."""
        return self.code.name


class RetryPolicy:
    """Retries of UNAVAILABLE: at most `max_attempts` attempts in all, the
    n-th retry after min(max_backoff, initial_backoff * multiplier**(n-1))
    seconds times a random factor in [1 - jitter, 1 + jitter]; never past
    the call's deadline. Each retry goes to the next address."""

    def __init__(self, max_attempts=4, initial_backoff=0.05, max_backoff=1.0, multiplier=2.0,
                 jitter=0.2):
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if initial_backoff < 0 or max_backoff < 0 or multiplier < 1 or not 0 <= jitter < 1:
            raise ValueError("backoff must be >= 0, multiplier >= 1, jitter in [0, 1)")
        self.max_attempts, self.initial_backoff = max_attempts, initial_backoff
        self.max_backoff, self.multiplier, self.jitter = max_backoff, multiplier, jitter

    def backoff(self, retry):
        """Seconds to wait before retry number `retry` (1-based)."""
        b = min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry - 1))
        return b * random.uniform(1 - self.jitter, 1 + self.jitter)


NO_RETRY = RetryPolicy(max_attempts=1)


def features(values=None):
    """A moerec.v1.Features from a dict: a str value (or a list/tuple of
    str) is categorical, an int or float numeric. None -> empty; a Features
    message is returned as is."""
    if values is None:
        return pb.Features()
    if isinstance(values, pb.Features):
        return values
    f = pb.Features()
    for name, v in values.items():
        if isinstance(v, bool):
            raise TypeError("feature %r: bool is neither categorical nor numeric" % name)
        if isinstance(v, str):
            f.categorical.add(name=name, values=[v])
        elif isinstance(v, (list, tuple)):
            if not all(isinstance(x, str) for x in v):
                raise TypeError("feature %r: a multi-valued feature holds strings" % name)
            f.categorical.add(name=name, values=list(v))
        elif isinstance(v, (int, float)):
            f.numeric.add(name=name, value=float(v))
        else:
            raise TypeError("feature %r: %s is not str, list of str, int or float"
                            % (name, type(v).__name__))
    return f


def _candidate(c):
    if isinstance(c, pb.Candidate):
        return c
    if isinstance(c, str):
        return pb.Candidate(item_id=c)
    if isinstance(c, dict):
        return pb.Candidate(item_id=c["item_id"], features=features(c.get("features")))
    item_id, feats = c
    return pb.Candidate(item_id=item_id, features=features(feats))


def _item(it):
    if isinstance(it, pb.Item):
        return it
    return pb.Item(item_id=it["item_id"], features=features(it.get("features")),
                   embedding=list(it.get("embedding", ())), deleted=bool(it.get("deleted", False)))


def _event(e):
    if isinstance(e, pb.Event):
        return e
    if isinstance(e, dict):
        e = dict(e)
        if isinstance(e.get("labels"), dict):  # {"like": 1, ...} -> [EventLabel]
            e["labels"] = [pb.EventLabel(task=k, value=float(v)) for k, v in e["labels"].items()]
        return pb.Event(**e)
    keys = ("user_id", "item_id", "timestamp_ms", "action", "value")
    if not 2 <= len(e) <= len(keys):
        raise ValueError("an event tuple is (user_id, item_id[, timestamp_ms[, action[, value]]])")
    return pb.Event(**dict(zip(keys, e)))


def _consumed(c):
    """None -> unset (the server's consumed_filter config); "all", "none",
    "last" -> that policy; ("last", n), {"policy", "last_n"} or a
    pb.ConsumedFilter."""
    if c is None or isinstance(c, pb.ConsumedFilter):
        return c
    if isinstance(c, str):
        return pb.ConsumedFilter(policy=c)
    if isinstance(c, dict):
        return pb.ConsumedFilter(**c)
    policy, last_n = c
    return pb.ConsumedFilter(policy=policy, last_n=last_n)


def _sequence(v):
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 1 << 64:
        raise ValueError("min_sequence is an update-log sequence: an int in [0, 2**64)")
    return v


def _read(v):
    if v is None or isinstance(v, bytes):
        return v
    with open(v, "rb") as f:
        return f.read()


class Client:
    """A client of one moerec deployment.

    targets     "host:port", a comma-separated list of them, or a list:
                calls go round robin over the addresses (one channel each)
    token       bearer token sent as `authorization: Bearer <token>`
    tls         use TLS (implied by root_cert, client_cert or client_key)
    root_cert   PEM bytes or a file path: the CA that signed the server's
                certificate (None with tls=True: the system's roots)
    client_cert, client_key
                PEM bytes or file paths, for servers that require client
                certificates (mTLS); both or neither
    server_name override of the name checked in the server certificate
    timeout     default deadline of a call in seconds, retries included
    retry       a RetryPolicy (RetryPolicy(max_attempts=1): no retries)
    options     extra gRPC channel arguments, e.g.
                [("grpc.max_receive_message_length", 64 << 20)]
    """

    def __init__(self, targets, token=None, tls=False, root_cert=None, client_cert=None,
                 client_key=None, server_name=None, timeout=10.0, retry=None, options=()):
        if isinstance(targets, str):
            targets = [t.strip() for t in targets.split(",") if t.strip()]
        self.targets = list(targets)
        if not self.targets:
            raise ValueError("no server address given")
        if (client_cert is None) != (client_key is None):
            raise ValueError("client_cert and client_key go together")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive (seconds)")
        self.timeout, self.retry = timeout, retry or RetryPolicy()
        self._metadata = (("authorization", "Bearer " + token),) if token else ()
        opts = list(options)
        if server_name:
            opts.append(("grpc.ssl_target_name_override", server_name))
        if tls or root_cert or client_cert:
            creds = grpc.ssl_channel_credentials(_read(root_cert), _read(client_key),
                                                 _read(client_cert))
            self._channels = [grpc.secure_channel(t, creds, opts) for t in self.targets]
        else:
            self._channels = [grpc.insecure_channel(t, opts) for t in self.targets]
        self._next = itertools.count()
        self._lock = threading.Lock()
        self._callables = {}

    # ---------------------------------------------------------------- plumbing

    def close(self):
        for ch in self._channels:
            ch.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _pick(self):
        with self._lock:
            return next(self._next) % len(self._channels)

    def _callable(self, i, name):
        key = (i, name)
        fn = self._callables.get(key)
        if fn is None:
            service, mod, req, resp, stream = METHODS[name]
            make = self._channels[i].unary_stream if stream else self._channels[i].unary_unary
            fn = make("/%s/%s" % (service, name),
                      request_serializer=getattr(mod, req).SerializeToString,
                      response_deserializer=getattr(mod, resp).FromString)
            self._callables[key] = fn
        return fn

    def call(self, name, request, timeout=None):
        """Call RPC `name` (a key of METHODS) with a prebuilt request message.
        `timeout` (seconds) overrides the client's default deadline; it
        covers every retry."""
        if name not in METHODS:
            raise ValueError("unknown RPC %r (known: %s)" % (name, ", ".join(sorted(METHODS))))
        if METHODS[name][4]:
            raise ValueError("%s is server streaming: use its helper" % name)
        timeout = self.timeout if timeout is None else timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        attempt = 0
        while True:
            attempt += 1
            i = self._pick()
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                return self._callable(i, name)(request, timeout=left, metadata=self._metadata)
            except grpc.RpcError as e:
                code, details = e.code(), e.details() or ""
                if code != grpc.StatusCode.UNAVAILABLE or attempt >= self.retry.max_attempts:
                    raise MoerecError(name, code, details, self.targets[i], attempt) from None
                pause = self.retry.backoff(attempt)
                if deadline is not None and time.monotonic() + pause >= deadline:
                    raise MoerecError(name, code, details, self.targets[i], attempt) from None
                time.sleep(pause)

    # ------------------------------------------------------------ Recommender

    def recommend(self, user_id, k=10, user_features=None, context_features=None,
                  exclude_item_ids=(), retrieve_k=0, retrievers=(), model="", debug=False,
                  request_id="", min_sequence=0, consumed_filter=None, timeout=None):
        """Recommend: retrieval + ranking, the best k items for user_id.
        min_sequence: read-your-writes, wait until the replica applied this
        update-log sequence (a write answer's log_sequence); 0: no wait.
        consumed_filter: None (the server's config), "all", "none", "last",
        ("last", n), a dict {"policy", "last_n"} or a pb.ConsumedFilter."""
        req = pb.RecommendRequest(
            request_id=request_id, user_id=user_id, user_features=features(user_features),
            context_features=features(context_features), k=k,
            exclude_item_ids=list(exclude_item_ids), debug=debug, model=model,
            retrieve_k=retrieve_k, retrievers=list(retrievers),
            min_sequence=_sequence(min_sequence))
        if consumed_filter is not None:
            req.consumed_filter.CopyFrom(_consumed(consumed_filter))
        return self.call("Recommend", req, timeout)

    def score(self, user_id, candidates, user_features=None, context_features=None, model="",
              debug=False, request_id="", min_sequence=0, timeout=None):
        """Score: rank the given candidates. Each is an item id, an
        (item_id, features dict) pair, a dict {"item_id", "features"} or a
        pb.Candidate. The answer keeps the candidates' order. min_sequence
        as in recommend()."""
        return self.call("Score", pb.ScoreRequest(
            request_id=request_id, user_id=user_id, user_features=features(user_features),
            context_features=features(context_features),
            candidates=[_candidate(c) for c in candidates], debug=debug, model=model,
            min_sequence=_sequence(min_sequence)), timeout)

    def retrieve(self, user_id="", k=100, query_vector=None, user_features=None,
                 context_features=None, exclude_item_ids=(), retrievers=(), model="",
                 debug=False, request_id="", min_sequence=0, timeout=None):
        """Retrieve: candidates from the expert retrievers, no ranking.
        min_sequence as in recommend()."""
        return self.call("Retrieve", pb.RetrieveRequest(
            request_id=request_id, user_id=user_id, user_features=features(user_features),
            context_features=features(context_features), k=k,
            exclude_item_ids=list(exclude_item_ids), debug=debug, model=model,
            retrievers=list(retrievers),
            query_vector=[] if query_vector is None else [float(x) for x in query_vector],
            min_sequence=_sequence(min_sequence)), timeout)

    def upsert_items(self, items, model="", request_id="", timeout=None):
        """UpsertItems: each item a dict {"item_id", "features",
        "embedding", "deleted"} (only item_id required) or a pb.Item. The
        answer's log_sequence (0 without an update log) is what a read's
        min_sequence takes."""
        return self.call("UpsertItems", pb.UpsertItemsRequest(
            request_id=request_id, items=[_item(i) for i in items], model=model), timeout)

    def append_events(self, events, request_id="", timeout=None):
        """AppendEvents: each event a tuple (user_id, item_id[,
        timestamp_ms[, action[, value]]]), a dict of pb.Event's fields (its
        "labels" may be a dict task -> 0/1) or a pb.Event. The answer
        carries log_sequence, as upsert_items'."""
        return self.call("AppendEvents", pb.AppendEventsRequest(
            request_id=request_id, events=[_event(e) for e in events]), timeout)

    def delete_items(self, item_ids, model="", request_id="", timeout=None):
        """DeleteItems: remove the items (ids, str) from the store and from
        every served retriever set. The answer carries log_sequence, as
        upsert_items'."""
        if isinstance(item_ids, str):
            raise TypeError("item_ids is a list of ids, not one str")
        return self.call("DeleteItems", pb.DeleteItemsRequest(
            request_id=request_id, item_ids=list(item_ids), model=model), timeout)

    def get_model_info(self, model="", timeout=None):
        """GetModelInfo: architecture, tasks, features, retrievers."""
        return self.call("GetModelInfo", pb.GetModelInfoRequest(model=model), timeout)

    # ------------------------------------------------------------------ Admin

    def reload(self, model="", version="", timeout=None):
        """Admin/Reload: load `version` (empty: the newest on disk)."""
        return self.call("Reload", pb.ReloadRequest(model=model, version=version), timeout)

    def stats(self, digest=False, timeout=None):
        """Admin/Stats: per-method calls, errors, latency; caches; routes;
        the update log's applied sequence. digest=True also hashes every
        stored row (store_digest, store_rows: O(rows), to compare replicas)."""
        return self.call("Stats", pb.StatsRequest(digest=digest), timeout)

    def checkpoint(self, dir, timeout=None):
        """Admin/Checkpoint: a RocksDB checkpoint of the server's store in
        `dir` (an absolute path on the server's machine that must not
        exist); the answer's log_sequence is the last update-log record it
        holds."""
        return self.call("Checkpoint", pb.CheckpointRequest(dir=dir), timeout)

    def push_embeddings(self, table, ids, rows, model="", version="", request_id="",
                        timeout=None):
        """Admin/PushEmbeddings: rows of a "storage": "store" table of the
        serving version. ids are row indices of the table; rows is
        len(ids) * dim floats, row after row, or one sequence of dim floats
        per id. The answer's written counts the rows; log_sequence as in
        upsert_items'."""
        rows = list(rows)  # a flat or 2-D NumPy array works as well as lists
        if rows and not isinstance(rows[0], numbers.Real):
            rows = [float(x) for row in rows for x in row]
        else:
            rows = [float(x) for x in rows]
        return self.call("PushEmbeddings", pb.PushEmbeddingsRequest(
            model=model, version=version, table=table, ids=list(ids), rows=rows,
            request_id=request_id), timeout)

    # ----------------------------------------------------------------- Health

    def health(self, service="", timeout=None):
        """grpc.health.v1.Health/Check: the status name, e.g. "SERVING"."""
        r = self.call("Check", health_pb2.HealthCheckRequest(service=service), timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)

    def watch_health(self, service="", timeout=None):
        """grpc.health.v1.Health/Watch: yields status names as they change
        until the deadline (None: no deadline). No retries."""
        i = self._pick()
        stream = self._callable(i, "Watch")(health_pb2.HealthCheckRequest(service=service),
                                            timeout=timeout, metadata=self._metadata)
        try:
            for r in stream:
                yield health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)
        except grpc.RpcError as e:
            if e.code() not in (grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise MoerecError("Watch", e.code(), e.details() or "", self.targets[i], 1) \
                    from None
        finally:
            stream.cancel()

"""moerec_client — a thin Python client for the moerec gRPC service.

    from moerec_client import Client
    with Client("127.0.0.1:50051") as c:
        r = c.recommend("u42", k=10)
        for item in r.items:
            print(item.item_id, item.score)

Responses are the protobuf messages of proto/moerec.proto (package
moerec.v1); `moerec_client.pb` is that generated module. A failed call
raises MoerecError carrying the server's status code and message.
"""
__version__ = "0.1.0"

from .client import Client, MoerecError, RetryPolicy, features  # noqa: F401
from ._proto import moerec_pb2 as pb  # noqa: F401
from ._proto import health_pb2  # noqa: F401

__all__ = ["Client", "MoerecError", "RetryPolicy", "features", "pb", "health_pb2"]

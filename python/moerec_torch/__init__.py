"""moerec_torch — train in PyTorch, serve in moerec.

The ranker's architectures (shared-bottom, OMoE, MMoE, CGC, PLE, HoME;
dense / top-k / top-p gates, always-on and null experts) as a
torch.nn.Module built from a model.json, moerec's categorical hashing
(xxh3, via python3-xxhash) and the mapped tables' mapping files, so
encoded rows match the server's, and load /
save of moerec's model version directories (model.json +
weights.safetensors, written by hand); every model.json moerec reads, with
moerec's label rule (records.py) and training loss. See docs/pytorch.md.
"""
from .model import Batch, MoERanker  # noqa: F401
from .io import latest_version, load, save  # noqa: F401
from .hashing import field_id, value_rows  # noqa: F401
from .mapping import Mapping  # noqa: F401

__all__ = ["MoERanker", "Batch", "load", "save", "latest_version", "field_id", "value_rows",
           "Mapping"]

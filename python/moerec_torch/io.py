"""Load and save moerec model version directories:

    <model dir>/<version>/model.json          (every default filled in)
    <model dir>/<version>/weights.safetensors (F32, docs/model-format.md names)
    <model dir>/<version>/<table>.map         (mapped tables' mappings, mapping.py)

save() writes the mappings and weights first and model.json last, each through
atomic.write_atomic (temporary, fsync, rename, directory fsync): moerec's newest version is the largest one that
holds a model.json, so a server never picks up half a version.
"""
import json
import os

from . import safetensors
from .atomic import write_atomic
from .config import to_json_dict
from .model import MoERanker


def load(version_dir):
    """MoERanker with the weights of a version directory."""
    with open(os.path.join(version_dir, "model.json")) as f:
        cfg = json.load(f)
    m = MoERanker(cfg, mappings=version_dir)
    tensors, meta = safetensors.read(os.path.join(version_dir, "weights.safetensors"))
    if meta.get("arch", cfg["arch"]["type"]) != cfg["arch"]["type"]:
        raise ValueError("%s: weights are for arch %s, model.json says %s"
                         % (version_dir, meta.get("arch"), cfg["arch"]["type"]))
    m.load_tensors(tensors)
    return m


def latest_version(model_dir):
    """The largest decimal version under model_dir holding a model.json, or 0."""
    best = 0
    for n in os.listdir(model_dir) if os.path.isdir(model_dir) else ():
        if n.isdigit() and os.path.isfile(os.path.join(model_dir, n, "model.json")):
            best = max(best, int(n))
    return best


def save(model, model_dir, version=None):
    """Write model as model_dir/<version>/ (default: the next version);
    returns the version directory."""
    version = latest_version(model_dir) + 1 if version is None else int(version)
    d = os.path.join(model_dir, str(version))
    os.makedirs(d, exist_ok=True)
    for t in model.cfg["tables"]:
        if t["name"] in model.mappings:
            model.mappings[t["name"]].write(os.path.join(d, t["mapping"]))
    safetensors.write(os.path.join(d, "weights.safetensors"), model.tensors(),
                      {"format": "moerec.model", "arch": model.cfg["arch"]["type"]})
    text = json.dumps(to_json_dict(model.cfg), indent=2) + "\n"
    write_atomic(os.path.join(d, "model.json"), [text.encode()])
    return d

"""A task's label rule, as `moerec train` reads a label column
(moe/model.c moe_model_label, moe/dataset.c; docs/model-format.md,
`tasks[].label`, `threshold`, `positive`):

  - a missing cell (absent, None, "" or "NA") is no label: mask 0, the
    row is left out of that task's loss;
  - `positive`: 1 when the cell equals the string, else 0 (text labels);
  - `threshold`: 1 when the number >= threshold (both as float32), else 0;
  - otherwise the number itself; a binary task then needs 0 or 1.

A cell that is not a number (and the task has no `positive`) is an error
naming the task and its column, as moerec's is.
"""
import math

import numpy as np

from .config import f32

MISSING = ("", "NA")  # common/csv.h MR_CSV_NA_DEFAULT


def _number(cell):
    if isinstance(cell, bool):
        return None
    if isinstance(cell, (int, float)):
        v = float(cell)
    else:
        try:
            v = float(str(cell).strip())
        except ValueError:
            return None
    return v if math.isfinite(v) and abs(v) <= 3.4028234663852886e38 else None


def task_label(task, cell):
    """(y, mask) of one cell for one resolved task (MoERanker.cfg["tasks"][k])."""
    if cell is None or (isinstance(cell, str) and cell in MISSING):
        return 0.0, 0.0
    if "positive" in task:
        return (1.0 if str(cell) == task["positive"] else 0.0), 1.0
    v = _number(cell)
    if v is None:
        raise ValueError("task '%s': label column '%s' is not a number ('%.40s'); for text labels "
                         "set the task's \"positive\" in model.json" % (task["name"], task["label"],
                                                                        cell))
    v = f32(v)  # moerec reads the cell as a float
    if "threshold" in task:
        return (1.0 if v >= f32(task["threshold"]) else 0.0), 1.0
    if task["kind"] == "binary" and v not in (0.0, 1.0):
        raise ValueError("task '%s' is binary but label is %g; set the task's \"threshold\" "
                         "(label = value >= X)" % (task["name"], v))
    return v, 1.0


def labels(tasks, records):
    """records: a list of dicts {label column: cell} (e.g. csv.DictReader rows).
    Returns (y, mask), float32 arrays (B, T)."""
    y = np.zeros((len(records), len(tasks)), dtype=np.float32)
    mask = np.zeros_like(y)
    for b, r in enumerate(records):
        for k, t in enumerate(tasks):
            y[b, k], mask[b, k] = task_label(t, r.get(t["label"]))
    return y, mask

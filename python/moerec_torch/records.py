"""Rows of a data file as `moerec train` and `moerec score` read them
(moe/dataset.c, moe/model.c moe_model_label; docs/model-format.md):
records are dicts {column: cell}, e.g. csv.DictReader rows.

Features (feature_rows): a categorical feature reads its `column`, split
by its `separator` (an empty cell or piece is no value); a numeric one its
`column`, a missing cell ("" or one of `na`) taking the field's fill.

Labels (labels), by each task's rule (`tasks[].label`, `threshold`,
`positive`):

  - a missing cell (absent, None, "" or one of `na`, default "NA") is no label: mask 0, the
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

NA = ("NA",)  # common/csv.h MR_CSV_NA_DEFAULT: "" and NA (moerec train --na LIST)


def _missing(cell, na):
    return cell is None or (isinstance(cell, str) and (cell == "" or cell in na))


def _number(cell):
    if isinstance(cell, bool):
        return None
    if isinstance(cell, (int, float)):
        v = float(cell)
    else:
        text = str(cell).strip()
        if "_" in text:  # Python's float() reads 1_000, C's strtod does not
            return None
        try:
            v = float(text)
        except ValueError:
            return None
    return v if math.isfinite(v) and abs(v) <= 3.4028234663852886e38 else None


def task_label(task, cell, na=NA):
    """(y, mask) of one cell for one resolved task (MoERanker.cfg["tasks"][k])."""
    if _missing(cell, na):
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


def labels(tasks, records, na=NA):
    """(y, mask), float32 arrays (B, T), of records' label columns."""
    y = np.zeros((len(records), len(tasks)), dtype=np.float32)
    mask = np.zeros_like(y)
    for b, r in enumerate(records):
        for k, t in enumerate(tasks):
            y[b, k], mask[b, k] = task_label(t, r.get(t["label"]), na)
    return y, mask


def feature_rows(cfg, records, na=NA):
    """records -> rows for MoERanker.encode (keyed by feature name)."""
    out = []
    for r in records:
        row = {}
        for c in cfg["features"]["categorical"]:
            cell = r.get(c["column"]) or ""
            vals = cell.split(c["separator"]) if c["separator"] else [cell]
            row[c["name"]] = [v for v in vals if v]
        for n in cfg["features"]["numeric"]:
            cell = r.get(n["column"])
            if _missing(cell, na):
                continue
            v = _number(cell)
            if v is None:
                raise ValueError("column '%s': '%.40s' is not a finite number"
                                 % (n["column"], cell))
            row[n["name"]] = v
        out.append(row)
    return out

"""moerec's categorical hashing (hashing/idhash.c), bit for bit, via
python3-xxhash:

    id   = xxh3_64(field name | 0x1f | value, seed = table seed)
    row0 = xxh3_64(id as 8 little-endian bytes, seed) mod rows
    row1 = (row0 + 1 + xxh3_64(id bytes, seed2) mod (rows - 1)) mod rows   ("double")

Mapped kinds (frequency, graph, double_graph, lsh) take their rows from
the table's mapping file (mapping.py), falling back to these hashes for
ids the mapping does not hold.

Seeds default as model.json's loader does: seed = table index + 1,
seed2 = seed * 0x9e3779b97f4a7c15 + 1 (mod 2^64).
"""
import struct

import xxhash

U64 = (1 << 64) - 1


def default_seed2(seed):
    return (seed * 0x9E3779B97F4A7C15 + 1) & U64


def field_id(field, value, seed):
    """idhash_field: the 64-bit id of (field name, value)."""
    f = field.encode() if isinstance(field, str) else field
    v = value.encode() if isinstance(value, str) else value
    return xxhash.xxh3_64_intdigest(f + b"\x1f" + v, seed=seed & U64)


def u64(x, seed):
    """idhash_u64: xxh3-64 of the 8 little-endian bytes of x."""
    return xxhash.xxh3_64_intdigest(struct.pack("<Q", x & U64), seed=seed & U64)


def value_rows(table, field, value, mapping=None):
    """Rows of table (a dict with rows, hash, seed, seed2) for one value;
    mapped kinds need the table's mapping.Mapping."""
    k, seed = table["rows"], table["seed"]
    i = field_id(field, value, seed)
    if table["hash"] not in ("hash", "double"):
        if mapping is None:
            raise ValueError("table '%s' (%s): rows need its mapping" % (table["name"], table["hash"]))
        return mapping.rows_of(table, i)
    r0 = u64(i, seed) % k
    if table["hash"] == "hash":
        return [r0]
    return [r0, (r0 + 1 + u64(i, table["seed2"]) % (k - 1)) % k]

"""The id -> row mappings of moerec's mapped tables (`frequency`, `graph`,
`double_graph`, `lsh`; docs/model-format.md, "Mapped tables"), read from
and written to the GraphHash mappings file exactly as hashing/graphhash_file.c
and moe/model_maps.c do:

    header (64 bytes, little-endian)
      char magic[8] "MRGHASH\\0" | u32 version 1 | u32 header_bytes 64
      u64 nusers | u64 nitems | u32 user_rows | u32 item_rows
      f64 resolution | u64 seed | u64 checksum (xxh3-64, seed 0, of the rest)
    u64 user_ids[nusers] (strictly ascending) | u32 user_rows[nusers] | pad to 8
    u64 item_ids[nitems] | u32 item_rows[nitems] | pad to 8

A table's mapping holds the table's value ids (hashing.field_id) on the
user side, with user_rows = the table's rows, seed = the table's seed and
an empty item side. Rows of a value id (moerec's idhash_mapper_rows):

    in the file:      its stored row
    not in the file:  graph, double_graph, lsh:  xxh3(id, seed) mod rows
                      frequency (n ids stored):  n + xxh3(id, seed) mod (rows - n)
    double_graph adds (row0 + 1 + xxh3(id, seed2) mod (rows - 1)) mod rows.

Nothing here builds a mapping (Louvain, SimHash, MinHash, the count pass
live in moerec: `moerec index tables` or `moerec train`); a mapping is read
from a version directory or a `moerec index tables --out` directory and
written back byte for byte.
"""
import os
import struct

import numpy as np
import xxhash

from .atomic import write_atomic
from .hashing import u64

MAPPED_KINDS = ("frequency", "graph", "double_graph", "lsh")
MAGIC = b"MRGHASH\x00"
HEADER = struct.Struct("<8sIIQQIIdQQ")  # 64 bytes


def _pad8(n):
    return (n + 7) & ~7


class Mapping:
    """One table's mapping file, validated. ids (uint64, ascending) and rows
    (uint32) are the user side; `image` is the file's bytes."""

    def __init__(self, image, where="mapping"):
        self.where = where
        b = bytes(image)
        if len(b) < HEADER.size:
            raise ValueError("%s: %d bytes is shorter than the header" % (where, len(b)))
        magic, version, hbytes, nu, ni, uk, ik, res, seed, csum = HEADER.unpack_from(b)
        if magic != MAGIC:
            raise ValueError("%s: bad magic (not a mappings file)" % where)
        if version != 1:
            raise ValueError("%s: version %d, this reader knows 1" % (where, version))
        if hbytes != HEADER.size:
            raise ValueError("%s: header of %d bytes, expected 64" % (where, hbytes))
        if nu > len(b) or ni > len(b) or HEADER.size + _pad8(12 * nu) + _pad8(12 * ni) != len(b):
            raise ValueError("%s: size %d does not match %d users and %d items (truncated?)"
                             % (where, len(b), nu, ni))
        if uk == 0 or ik == 0:
            raise ValueError("%s: zero table size" % where)
        if xxhash.xxh3_64_intdigest(b[HEADER.size:], seed=0) != csum:
            raise ValueError("%s: checksum mismatch" % where)
        sides = []
        off = HEADER.size
        for n, k, what in ((nu, uk, "user"), (ni, ik, "item")):
            ids = np.frombuffer(b, dtype="<u8", count=n, offset=off)
            rows = np.frombuffer(b, dtype="<u4", count=n, offset=off + 8 * n)
            if n > 1 and not bool((ids[1:] > ids[:-1]).all()):
                raise ValueError("%s: %s ids not strictly ascending" % (where, what))
            if n and int(rows.max()) >= k:
                raise ValueError("%s: %s row %d >= table size %d" % (where, what, int(rows.max()), k))
            sides.append((ids, rows))
            off += _pad8(12 * n)
        self.image = b
        self.ids, self.rows = sides[0]
        self.n_items = int(ni)
        self.k, self.seed, self.resolution = int(uk), int(seed), float(res)

    @classmethod
    def read(cls, path):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ValueError("%s: cannot read the mapping: %s" % (path, e.strerror)) from None
        return cls(data, where=path)

    @classmethod
    def from_tables(cls, ids, rows, k, seed, resolution=0.0):
        """A one-sided mapping from explicit (id, row) pairs (ids distinct),
        packed as graphhash_from_tables packs it."""
        ids = np.asarray(ids, dtype=np.uint64)
        rows = np.asarray(rows, dtype=np.uint32)
        order = np.argsort(ids, kind="stable")
        ids, rows = ids[order], rows[order]
        n = len(ids)
        side = ids.astype("<u8").tobytes() + rows.astype("<u4").tobytes()
        body = side + b"\x00" * (_pad8(len(side)) - len(side))
        csum = xxhash.xxh3_64_intdigest(body, seed=0)
        head = HEADER.pack(MAGIC, 1, HEADER.size, n, 0, int(k), 1, float(resolution),
                           int(seed) % (1 << 64), csum)
        return cls(head + body)

    def write(self, path):
        """Write the file (byte-identical to what was read), atomically."""
        write_atomic(path, [self.image])

    def check_table(self, table):
        """The checks of moe_model_maps_attach: rows, seed, one side, and a
        frequency head smaller than the table whose rows are its ranks."""
        t, w = table, self.where
        if self.k != t["rows"]:
            raise ValueError("%s: mapping has %d rows, table '%s' has %d"
                             % (w, self.k, t["name"], t["rows"]))
        if self.seed != t["seed"]:
            raise ValueError("%s: mapping was built with seed %d, table '%s' has seed %d"
                             % (w, self.seed, t["name"], t["seed"]))
        if self.n_items:
            raise ValueError("%s: a table mapping holds one side (its item side is not empty)" % w)
        if t["hash"] == "frequency":
            n = len(self.ids)
            if n >= t["rows"]:
                raise ValueError("%s: frequency head of %d ids, table has %d rows"
                                 % (w, n, t["rows"]))
            if n and int(self.rows.max()) >= n:
                raise ValueError("%s: frequency head row %d outside [0, %d)"
                                 % (w, int(self.rows.max()), n))

    def lookup(self, vid):
        """(found, row) of a value id in the stored table."""
        j = int(np.searchsorted(self.ids, np.uint64(vid)))
        if j < len(self.ids) and int(self.ids[j]) == vid:
            return True, int(self.rows[j])
        return False, None

    def rows_of(self, table, vid):
        """The table rows of value id vid (idhash_mapper_rows)."""
        k, seed = table["rows"], table["seed"]
        found, r0 = self.lookup(vid)
        if not found:
            if table["hash"] == "frequency":
                n = len(self.ids)
                r0 = n + u64(vid, seed) % (k - n)
            else:
                r0 = u64(vid, seed) % k
        if table["hash"] != "double_graph":
            return [r0]
        return [r0, (r0 + 1 + u64(vid, table["seed2"]) % (k - 1)) % k]


def load_mappings(tables, source):
    """{table name: Mapping} for every mapped table of tables (resolved
    model.json tables). source: a directory holding each table's
    `mapping` file (a version directory, `moerec index tables --out`), or
    a dict {table name: Mapping or file path}. Each is checked against its
    table; a missing one is an error naming the table and the file."""
    out = {}
    for t in tables:
        if t["hash"] not in MAPPED_KINDS:
            continue
        what = "table '%s' (%s)" % (t["name"], t["hash"])
        if source is None:
            raise ValueError("%s needs its mapping file '%s': pass mappings=DIR (a version "
                             "directory or `moerec index tables --out DIR`)"
                             % (what, t["mapping"]))
        if isinstance(source, dict) and source.get(t["name"]) is None:
            raise ValueError("%s: no mapping given (mappings has no '%s')" % (what, t["name"]))
        try:
            m = source[t["name"]] if isinstance(source, dict) else \
                os.path.join(source, t["mapping"])
            m = m if isinstance(m, Mapping) else Mapping.read(m)
            m.check_table(t)
        except ValueError as e:
            raise ValueError("%s: %s" % (what, e)) from None
        out[t["name"]] = m
    return out

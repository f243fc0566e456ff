/* graphhash.h — GraphHash (Snap, WWW 2025): embedding rows from graph
 * clusters, and the mappings file.
 *
 * Louvain (louvain.h) clusters the user x item training graph; every
 * cluster id, renumbered 0..k-1 separately for the clusters holding users
 * and those holding items, becomes an embedding row of the user or item
 * table. Ids that were not in the graph fall back to hashing into the same
 * k rows. DoubleGraphHash gives each id two rows, its cluster row and a
 * hash row, summed by the embedding bag.
 *
 * A graphhash_map is immutable, either built in memory or loaded read-only
 * with mmap from a mappings file, so lookups are safe from any thread and
 * a server may share one file between processes. The file (little-endian):
 *
 *   header (64 bytes)
 *     char     magic[8]     "MRGHASH\0"
 *     uint32   version      GRAPHHASH_FILE_VERSION
 *     uint32   header_bytes 64
 *     uint64   nusers, nitems
 *     uint32   user_rows, item_rows   (table sizes k)
 *     double   resolution
 *     uint64   seed         fallback hash seed
 *     uint64   checksum     xxh3-64 of everything after the header
 *   uint64 user_ids[nusers]    sorted ascending, distinct
 *   uint32 user_rows[nusers]   each < user_rows
 *   (zero padding to 8 bytes)
 *   uint64 item_ids[nitems], uint32 item_rows[nitems], padding
 *
 * Load checks the size, magic, version, checksum, id order and row range,
 * and rejects any mismatch as MR_ECORRUPT.
 */
#ifndef MOEREC_HASHING_GRAPHHASH_H
#define MOEREC_HASHING_GRAPHHASH_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "hashing/bigraph.h"
#include "hashing/idhash.h"
#include "hashing/louvain.h"

#define GRAPHHASH_FILE_VERSION 1
#define GRAPHHASH_MAGIC "MRGHASH"

typedef enum { GRAPHHASH_USERS = 0, GRAPHHASH_ITEMS = 1 } graphhash_side;

typedef struct graphhash_map graphhash_map;

/* Cluster g (built with bigraph_build_ids: raw ids are needed) with
 * Louvain(params) and keep the id -> row tables; seed is the hash seed of
 * the fallback for unseen ids. rep (may be NULL) receives the Louvain
 * result; its comm array is freed here unless rep is given (then the
 * caller calls louvain_result_free). */
int graphhash_build(graphhash_map **out, const bigraph *g, const louvain_params *params,
                    uint64_t seed, louvain_result *rep, mr_err *e);
/* From explicit tables (ids need not be sorted; distinct per side; every
 * row < that side's k). For tools that import clusters computed elsewhere. */
int graphhash_from_tables(graphhash_map **out, const uint64_t *user_ids, const uint32_t *user_rows,
                          size_t nusers, uint32_t user_k, const uint64_t *item_ids,
                          const uint32_t *item_rows, size_t nitems, uint32_t item_k,
                          double resolution, uint64_t seed, mr_err *e);
void graphhash_map_free(graphhash_map *m);

/* Write the mappings file (atomically: temp file + rename). */
int graphhash_map_save(const graphhash_map *m, const char *path, mr_err *e);
/* mmap a mappings file read-only, after validating it. */
int graphhash_map_load(graphhash_map **out, const char *path, mr_err *e);

/* Table size k of a side (>= 1). */
uint32_t graphhash_map_rows(const graphhash_map *m, graphhash_side side);
/* Ids with a cluster on a side. */
size_t graphhash_map_size(const graphhash_map *m, graphhash_side side);
double graphhash_map_resolution(const graphhash_map *m);
uint64_t graphhash_map_seed(const graphhash_map *m);
/* Row of id on a side: 1 and *row = its cluster when the id was in the
 * graph, 0 and *row = hash fallback (xxh3(id, seed) mod k) when not. */
int graphhash_map_row(const graphhash_map *m, graphhash_side side, uint64_t id, uint32_t *row);

/* Row mappers over a map (borrowed: it must outlive the mapper).
 * graph: one row, cluster or hash fallback; table size k of that side.
 * double_graph: the cluster row plus a hash row (seed2) that differs from
 * it (k >= 2); unseen ids get two hash rows. */
int graphhash_mapper_create(idhash_mapper **out, const graphhash_map *m, graphhash_side side,
                            mr_err *e);
int graphhash_mapper_create_double(idhash_mapper **out, const graphhash_map *m, graphhash_side side,
                                   uint64_t seed2, mr_err *e);
/* lsh: the graph lookup over a map whose rows are LSH buckets (built with
 * graphhash_from_tables); idhash_mapper_kind reports IDHASH_LSH. */
int graphhash_mapper_create_lsh(idhash_mapper **out, const graphhash_map *m, graphhash_side side,
                                mr_err *e);
/* Ids and rows of a side (ids ascending), e.g. for collision statistics. */
void graphhash_map_table(const graphhash_map *m, graphhash_side side, const uint64_t **ids,
                         const uint32_t **rows, size_t *n);

/* Balanced rows from clusters (GraphHash with cluster splitting): ids
 * cluster[0..n) with masses mass[0..n) (> 0, e.g. training degree) get
 * rows row[0..n) in [0, rows). Ids are ordered by (cluster, mass
 * descending) and cut into consecutive runs of about equal mass, one run
 * per row: a giant cluster is split over several rows, its heaviest ids
 * first (an id heavier than a row's share gets a row of its own), small
 * clusters share a row with the next cluster only when the row is under
 * half its share. Every row is used when n >= rows. Deterministic.
 * MR_EINVAL for rows == 0 or a mass that is not finite and > 0. */
int graphhash_balance_rows(const uint32_t *cluster, const double *mass, size_t n, uint32_t rows,
                           uint32_t *row, mr_err *e);
/* Hub rows: the min(hubs, n) heaviest ids (mass descending, ties: lower
 * index) own rows 0, 1, .. in that order; the other ids share rows
 * [hubs', rows) by cluster, hubs' = min(hubs, n): balanced by mass as
 * graphhash_balance_rows when balance, else hubs' + cluster mod
 * (rows - hubs'). MR_EINVAL for hubs >= rows or a mass that is not finite
 * and > 0. Deterministic. */
int graphhash_hub_rows(const uint32_t *cluster, const double *mass, size_t n, uint32_t rows,
                       uint32_t hubs, int balance, uint32_t *row, mr_err *e);

#endif

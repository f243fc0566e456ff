/* model_maps.h — the id -> row mappings of a model's frequency, graph,
 * double_graph and lsh tables ("mapped" tables).
 *
 * A mapped table's rows come from a table of ids built from the training
 * rows, not from a hash alone:
 *   frequency     the floor(rows/2) most frequent ids own rows 0.., in
 *                 descending count; every other id hashes into the rest;
 *   graph         Louvain clusters of the bipartite graph between this
 *                 table's ids and its "pair" table's ids (one edge per
 *                 training row), cluster c -> row c mod rows (GraphHash);
 *                 the resolution is the table's "resolution", else the
 *                 build's, given or searched so that the number of
 *                 clusters is close to rows (the paper's table size);
 *                 with "balance": "degree" the clusters are split or
 *                 packed into rows of equal training degree instead
 *                 (graphhash_balance_rows);
 *   double_graph  the graph row plus a second, distinct hash row, summed;
 *   lsh           "vectors": the SimHash bucket (floor(log2 rows) bits) of
 *                 the id's content vector, for every id in the vectors file,
 *                 seen in training or not; "pair": the MinHash of the set of
 *                 pair-table ids the id occurred with, mod rows.
 * Ids the table does not hold (unseen at build time) are hashed with the
 * table's seed, exactly as the hash kind would (the GraphHash paper's
 * fallback).
 *
 * Each mapping is one GraphHash mappings file (hashing/graphhash.h) in the
 * version directory, named by the table's "mapping" (default
 * "<table>.map"), whose user side holds the table's ids and rows (k = the
 * table's rows, seed = the table's seed) and whose item side is empty.
 * Load checks all of it; a missing or corrupt file fails the model load
 * with a message naming the file.
 */
#ifndef MOEREC_MOE_MODEL_MAPS_H
#define MOEREC_MOE_MODEL_MAPS_H

#include "common/error.h"
#include "moe/dataset.h"
#include "moe/model.h"

/* 1 for the kinds that need a mapping. */
int moe_table_mapped(const moe_table *t);
/* Mapped tables still without a mapping. */
int moe_model_maps_missing(const moe_model *m);

/* Load every mapped table's file from dir and switch its row mapper to it;
 * computes the collision statistics. */
int moe_model_maps_load(moe_model *m, const char *dir, mr_err *e);
/* Write every mapped table's file into dir (atomically, each). MR_ESTATE if
 * a mapped table has no mapping. */
int moe_model_maps_save(const moe_model *m, const char *dir, mr_err *e);

typedef struct moe_maps_opts {
    double resolution;    /* Louvain resolution of graph kinds; <= 0: auto,
                            * the one whose cluster count is closest to the
                            * table's rows (14 Louvain runs)             */
    uint64_t seed;        /* Louvain order seed, SimHash/MinHash seed     */
    const char *base_dir; /* where relative "vectors" paths start, or NULL */
} moe_maps_opts;

/* Build the mapping of every mapped table lacking one from the training
 * rows idx[0..n) of d (d must have been read for m: moe_dataset ids), then
 * attach it. Call moe_dataset_map_rows afterwards to re-map d's rows. */
int moe_model_maps_build(moe_model *m, const moe_dataset *d, const long *idx, long n,
                         const moe_maps_opts *o, mr_err *e);
/* Attach gm (ownership passes, also on failure) to table t. */
int moe_model_maps_attach(moe_model *m, int t, graphhash_map *gm, const char *what, mr_err *e);

#endif

/* model.h — a complete ranking model: feature schema, hashed embedding
 * tables, the expert network and the task list, as stored in a model
 * directory (model.json + weights.safetensors, docs/model-format.md).
 *
 * The network input for one row is
 *   x = [bag(field 0) | ... | bag(field F-1) | numeric (normalised) | extra]
 * where bag(f) is the sum (or mean) of the embedding rows of field f's
 * values in its table, numeric values are (v - mean) / std, and "extra" is
 * extra_dim floats supplied by the caller (dense blocks such as a long-term
 * interest vector). Values hash to rows with hashing/idhash.h: the id of a
 * value is idhash_field_str(field name, value, table seed), and the table's
 * row mapper turns the id into one row (hash, frequency, graph, lsh) or two
 * (double, double_graph). The frequency, graph, double_graph and lsh kinds
 * ("mapped" kinds) read an id -> row table built from the training data
 * (moe/model_maps.h) and stored in the version directory; ids it does not
 * hold are hashed, as for the hash kind.
 *
 * A loaded model is read-only: any number of threads may score with it at
 * once, each with its own moe_scorer (moe/scorer.h).
 */
#ifndef MOEREC_MOE_MODEL_H
#define MOEREC_MOE_MODEL_H

#include <stdint.h>

#include "common/error.h"
#include "hashing/graphhash.h"
#include "hashing/idhash.h"
#include "moe/net.h"

#define MOE_MAX_FIELDS 256
#define MOE_MAX_TABLES 64
#define MOE_FIELD_SLOTS 1024     /* name -> field hash table, > 2 * 2 * MOE_MAX_FIELDS */
#define MOE_JSON_MAX (64u << 20) /* model.json bytes at most */
#define MOE_MAX_HIST_ACTIONS 16  /* features.history_actions at most */
#define MOE_ACTION_MAX 65        /* an action name: 1..64 bytes, as Event.action */

/* Where a table's rows come from when they are not in process memory
 * (a RocksDB column family behind the cache, set up by the server): fetch
 * rows[0..n) (distinct, ascending) of table t into out (n, dim), an absent
 * row as zeros. Called once per table per scored batch, from the scoring
 * thread; must be thread-safe across scorers. 0 or an error code. */
typedef int (*moe_row_fetch_fn)(void *ctx, int t, const uint64_t *rows, size_t n, float *out,
                                mr_err *e);

/* Where a table's rows live when served (model.json "storage"). */
typedef enum { MOE_STORAGE_MEMORY = 0, MOE_STORAGE_STORE = 1 } moe_storage;
/* Row encoding of a store table (model.json "encoding"); the values match
 * index/store's emb_encoding. */
typedef enum { MOE_ENC_FP32 = 0, MOE_ENC_FP16 = 1, MOE_ENC_INT8 = 2 } moe_encoding;

typedef struct moe_table {
    char name[MOE_NAME_MAX];
    long rows;                  /* table size k                              */
    int dim;                    /* embedding width                           */
    idhash_kind kind;           /* any idhash_kind                           */
    uint64_t seed, seed2;       /* hashing seeds                             */
    char mapping[MOE_NAME_MAX]; /* mapped kinds: id -> row file in the version
                                   * directory (a GraphHash mappings file)    */
    int pair;                   /* graph kinds, lsh by neighbours: the table
                                   * of the other side of the graph, or -1    */
    char vectors[256];          /* lsh by content: vectors CSV (build only) */
    double resolution;          /* graph kinds: Louvain resolution, 0 = the
                                   * build's (moe_maps_opts)                  */
    int balance;                /* graph kinds: 1 = rows balanced by degree
                                   * (graphhash_balance_rows), 0 = a row per
                                   * cluster                                  */
    int hubs;                   /* graph kinds: the hubs highest-degree ids
                                   * own rows 0..hubs-1 (graphhash_hub_rows);
                                   * 0 = none                                 */
    graphhash_map *gmap;        /* mapped kinds: the mapping, NULL until
                                   * built or loaded (rows are then hashed)    */
    idhash_stats stats;         /* collision statistics over gmap's ids      */
    idhash_mapper *map;
    float *data;            /* (rows, dim), unless fetch is set          */
    moe_row_fetch_fn fetch; /* rows from elsewhere (NULL: data)          */
    void *fetch_ctx;
    moe_storage storage;   /* memory (default) or store                 */
    moe_encoding encoding; /* store: row encoding                       */
    int64_t ttl_s;         /* store: rows not written for this long are
                                   * evicted; 0 = never                        */
} moe_table;

typedef struct moe_cat_field {
    char name[MOE_NAME_MAX];   /* feature name (request / schema)           */
    char column[MOE_NAME_MAX]; /* input column (training files)             */
    int table;                 /* index into tables                         */
    int mean;                  /* bag = mean instead of sum                 */
    char sep;                  /* multi-value separator in files, 0 = none  */
    int offset;                /* start of the bag in x                     */
} moe_cat_field;

typedef struct moe_num_field {
    char name[MOE_NAME_MAX];
    char column[MOE_NAME_MAX];
    float mean, std; /* normalisation: (v - mean) / std           */
    float fill;      /* value used when missing (raw units)       */
    int offset;
} moe_num_field;

typedef struct moe_task {
    char name[MOE_NAME_MAX];
    moe_task_kind kind;
    char label[MOE_NAME_MAX]; /* label column                              */
    int has_threshold;        /* label = (column >= threshold)             */
    float threshold;
    int has_positive; /* label = (cell == positive), text labels   */
    char positive[MOE_NAME_MAX];
    float weight;      /* weight in the final score                 */
    float loss_weight; /* weight in the training loss               */
    float loss_decay;  /* PLE's gamma: epoch t (0-based) trains with
                                   * loss_weight * loss_decay^t                */
} moe_task;

typedef struct moe_model {
    char name[MOE_NAME_MAX];
    int n_cat, n_num, extra_dim, in_dim;
    moe_cat_field cat[MOE_MAX_FIELDS];
    moe_num_field num[MOE_MAX_FIELDS];
    int n_tables;
    moe_table tables[MOE_MAX_TABLES];
    int n_tasks;
    moe_task tasks[MOE_MAX_TASKS];
    /* features.history_actions: the SDIM block ends with one float per
     * action (moe/sdim_feature.h), extra_dim = 2 d + n_hist_act */
    int n_hist_act;
    char hist_act[MOE_MAX_HIST_ACTIONS][MOE_ACTION_MAX];
    moe_net *net;
    char *train_json;                    /* model.json "train" section, or NULL       */
    moe_precision precision;             /* model.json "precision" (requested)        */
    moe_precision precision_used;        /* what the scorer runs (after fallback)     */
    char precision_note[256];            /* why precision_used != precision, or ""    */
    moe_dnn *dnn;                        /* oneDNN plan, NULL for openblas_fp32       */
    int16_t field_slot[MOE_FIELD_SLOTS]; /* open addressing by name hash: 0 empty,
                                   * i + 1 categorical i, -(i + 1) numeric i   */
} moe_model;

/* Parse model.json text into a new model with freshly initialised weights
 * (seeded). Errors name the offending field, e.g. "tasks[1].kind". */
int moe_model_from_json(moe_model **out, const char *json_text, uint64_t seed, mr_err *e);
/* Load a version directory (model.json + weights.safetensors). Every tensor
 * must be present with the right shape; errors name the tensor. The loaded
 * model runs in its model.json "precision" (moe_model_set_precision). */
int moe_model_load(moe_model **out, const char *dir, mr_err *e);
/* Load flags. MOE_LOAD_STORE_LAZY: tables with "storage": "store" keep
 * data = NULL (their tensor's presence and shape are still checked; the
 * server bulk-loads the rows into the store from the safetensors file
 * itself and serves them through a row source). */
#define MOE_LOAD_STORE_LAZY 1
int moe_model_load_flags(moe_model **out, const char *dir, int flags, mr_err *e);
/* "fp32" | "fp16" | "int8" -> enc (0), else -1; and back. */
int moe_encoding_parse(const char *s, moe_encoding *out);
const char *moe_encoding_name(moe_encoding enc);
/* Run inference in precision p from now on: builds the oneDNN plan from the
 * current weights (or drops it for openblas_fp32). Falls back to fp32 when
 * the CPU lacks p (precision_used, precision_note say so). Not safe while
 * another thread scores with m; call it before serving. A model made by
 * moe_model_from_json runs openblas_fp32 until this is called (training
 * changes weights, and a plan holds a copy). */
int moe_model_set_precision(moe_model *m, moe_precision p, mr_err *e);
/* Write model.json + weights.safetensors into dir (created if missing). */
int moe_model_save(const moe_model *m, const char *dir, mr_err *e);
void moe_model_free(moe_model *m);
/* model.json text of m (malloc'd). */
char *moe_model_to_json(const moe_model *m);

/* Newest version directory under a model root (models/<name>/): the largest
 * numeric subdirectory holding a model.json; MR_ENOTFOUND when none. */
int moe_model_latest_version(const char *root, char *out, size_t outlen, mr_err *e);

/* Field lookup by name: returns the index and sets *numeric; -1 if unknown.
 * O(1): a hash table built when the schema is parsed (requests resolve every
 * feature name of every candidate through it). */
int moe_model_field(const moe_model *m, const char *name, int *numeric);
int moe_model_task(const moe_model *m, const char *name);

/* Label rules (moerec train / score --label-positive, --label-threshold):
 * spec is "TASK=VALUE". positive: the task's label is 1 when the cell
 * equals VALUE, 0 for any other present cell (binary tasks only);
 * threshold: VALUE is a number X and the label is 1 when the cell's number
 * is >= X. Either replaces the task's model.json rule (threshold or
 * positive). MR_EINVAL naming flag and spec: no '=', unknown task, empty
 * value, a positive rule on a regression task, X not a finite number. */
int moe_model_label_rule(moe_model *m, const char *flag, const char *spec, int threshold,
                         mr_err *e);

/* Label of task k from one present (not missing) cell, the rule of
 * moe_dataset_read: cell == positive when the task has "positive"; else
 * the number *num (parsed by the caller through common/csv.h; has_num 0 =
 * the cell is not a number), >= threshold when set; a binary task without
 * either needs 0 or 1. On error, e names the task and what to do; the
 * caller prefixes file and line. */
int moe_model_label(const moe_model *m, int k, const char *cell, int has_num, double num, float *y,
                    mr_err *e);

/* Training-loss weight of task k in epoch t (0-based). */
float moe_model_loss_weight(const moe_model *m, int k, int epoch);

/* Rows of value (len bytes) of categorical field f: writes up to
 * IDHASH_MAX_ROWS rows, returns how many. */
int moe_model_value_rows(const moe_model *m, int f, const char *value, size_t len, uint64_t *rows);
/* Serve table t's rows through fetch (moe_row_fetch_fn) instead of
 * t->data; fetch = NULL goes back to data. Call before any scorer runs. */
void moe_model_set_row_source(moe_model *m, int t, moe_row_fetch_fn fetch, void *ctx);
/* The 64-bit id of value in field f (what a mapping is keyed by). */
uint64_t moe_model_value_id(const moe_model *m, int f, const char *value, size_t len);

#endif

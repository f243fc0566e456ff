/* index_features_int.h — what cmd_index_features.c (options, reading the
 * log, the columns) and index_features_store.c (the store rows) share. */
#ifndef MOEREC_TOOLS_INDEX_FEATURES_INT_H
#define MOEREC_TOOLS_INDEX_FEATURES_INT_H

#include <jansson.h>
#include <stdint.h>

#include "common/error.h"
#include "hashing/u64map.h"
#include "moe/featcount.h"
#include "tools/cli.h"

#define FX_APPLY_MAX 4

typedef struct fx_task {
    char name[64], column[64];
    int rule; /* 0: 0/1 value, 1: >= threshold, 2: == value */
    double threshold;
    char value[64];
    int col;
} fx_task;

typedef struct fx_opts {
    const char *log, *out, *store_dir, *apply[FX_APPLY_MAX], *apply_out[FX_APPLY_MAX];
    int n_apply, n_apply_out;
    const char *user_col, *item_col, *time_col, *cat_col;
    char cat_sep;
    fx_task task[FC_MAX_TASKS];
    char window_name[FC_MAX_WINDOWS][32];
    fc_spec spec;
    int mode, folds;
    uint64_t seed;
    int as_of_row;       /* --as-of row (apply files) */
    int as_of_set;       /* --as-of given */
    double as_of;        /* else this time; NAN = the log's latest */
    char na[CLI_NA_MAX]; /* --na, "" = the reader's default */
} fx_opts;

/* Category text by its hash (idhash_bytes(text, len, 0), fc_event.cats),
 * kept for the store's names; only filled when --store has categories. */
typedef struct fx_dict {
    u64map map;  /* hash -> index into text     */
    char **text; /* (n) NUL-terminated          */
    uint32_t n, cap;
} fx_dict;

typedef struct fx_rows {
    fc_event *ev;
    uint64_t *cats; /* (n, FC_MAX_CATS) */
    size_t n, cap;
    double t_max;
    fx_dict *dict; /* NULL: category text not kept */
} fx_rows;

/* Record the text of category hash h (len bytes at s). */
int fx_dict_add(fx_dict *d, uint64_t h, const char *s, size_t len, mr_err *e);
const char *fx_dict_text(const fx_dict *d, uint64_t h);
void fx_dict_free(fx_dict *d);

/* Every user's and item's values of fin read at now into the store
 * (index_features_store.c); with categories, each user's (user, category)
 * blocks and each item's categories too. Adds the summary's stored_*. */
int fx_store(const fx_opts *o, const fx_rows *log, const fc_counter *fin, double now, json_t *sum,
             mr_err *e);

#endif

/* model_json.c — model.json: parse it into a moe_model (schema, tables,
 * tasks, arch) and write it back. Every field has a default; an unknown
 * field is an error that names it ("arch.gate.kind: unknown field"), so a
 * typo never silently trains the wrong model. docs/model-format.md is the
 * reference for every field.
 */
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/name.h"
#include "moe/model_int.h"
#include "moe/model_maps.h"

#define MOE_FORMAT "moerec.model"
#define MOE_FORMAT_VERSION 1

static int check_keys(json_t *o, const char *where, const char *const *allowed, mr_err *e) {
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        int ok = 0;
        for (int i = 0; allowed[i]; i++) ok |= !strcmp(k, allowed[i]);
        if (!ok)
            return mr_err_set(e, MR_EINVAL, "model.json: %s%s%s: unknown field", where,
                              *where ? "." : "", k);
    }
    return 0;
}

static int get_int(json_t *o, const char *key, const char *where, int def, int lo, int hi, int *out,
                   mr_err *e) {
    json_t *v = json_object_get(o, key);
    *out = def;
    if (!v) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return mr_err_set(e, MR_EINVAL, "model.json: %s.%s must be an integer in [%d, %d]", where,
                          key, lo, hi);
    *out = (int)json_integer_value(v);
    return 0;
}

static int get_num(json_t *o, const char *key, const char *where, double def, double *out,
                   mr_err *e) {
    json_t *v = json_object_get(o, key);
    *out = def;
    if (!v) return 0;
    if (!json_is_number(v))
        return mr_err_set(e, MR_EINVAL, "model.json: %s.%s must be a number", where, key);
    *out = json_number_value(v);
    if (!(fabs(*out) <= FLT_MAX)) /* every number here is kept as a float */
        return mr_err_set(e, MR_EINVAL, "model.json: %s.%s = %g is outside the float range", where,
                          key, *out);
    return 0;
}

static int get_bool(json_t *o, const char *key, const char *where, int *out, mr_err *e) {
    json_t *v = json_object_get(o, key);
    *out = 0;
    if (!v) return 0;
    if (!json_is_boolean(v))
        return mr_err_set(e, MR_EINVAL, "model.json: %s.%s must be true or false", where, key);
    *out = json_is_true(v);
    return 0;
}

static int get_str(json_t *o, const char *key, const char *where, const char *def, char *out,
                   size_t n, mr_err *e) {
    json_t *v = json_object_get(o, key);
    snprintf(out, n, "%s", def ? def : "");
    if (!v) {
        if (!def) return mr_err_set(e, MR_EINVAL, "model.json: %s.%s is required", where, key);
        return 0;
    }
    if (!json_is_string(v) || strlen(json_string_value(v)) >= n)
        return mr_err_set(e, MR_EINVAL, "model.json: %s.%s must be a string of < %zu bytes", where,
                          key, n);
    snprintf(out, n, "%s", json_string_value(v));
    return 0;
}

static int get_dims(json_t *o, const char *key, const char *where, int *dims, int *n, int def_n,
                    const int *def, mr_err *e) {
    json_t *v = json_object_get(o, key);
    if (!v) {
        *n = def_n;
        for (int i = 0; i < def_n; i++) dims[i] = def[i];
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) >= MOE_MAX_LAYERS)
        return mr_err_set(e, MR_EINVAL, "model.json: %s.%s must be a list of < %d widths", where,
                          key, MOE_MAX_LAYERS);
    *n = (int)json_array_size(v);
    for (int i = 0; i < *n; i++) {
        json_t *d = json_array_get(v, (size_t)i);
        if (!json_is_integer(d) || json_integer_value(d) < 1 || json_integer_value(d) > 65536)
            return mr_err_set(e, MR_EINVAL, "model.json: %s.%s[%d] must be a width in [1, 65536]",
                              where, key, i);
        dims[i] = (int)json_integer_value(d);
    }
    return 0;
}

#define TRY(x)               \
    do {                     \
        int rc_ = (x);       \
        if (rc_) return rc_; \
    } while (0)

static int parse_gate(json_t *g, moe_gate_spec *s, mr_err *e) {
    static const char *const keys[] = {"type", "k", "p", "null_experts", "always_on", NULL};
    if (!g) return 0;
    if (!json_is_object(g))
        return mr_err_set(e, MR_EINVAL, "model.json: arch.gate must be an object");
    TRY(check_keys(g, "arch.gate", keys, e));
    char t[16];
    TRY(get_str(g, "type", "arch.gate", "dense", t, sizeof t, e));
    if (!strcmp(t, "dense")) s->kind = MOE_GATE_DENSE;
    else if (!strcmp(t, "topk")) s->kind = MOE_GATE_TOPK;
    else if (!strcmp(t, "topp")) s->kind = MOE_GATE_TOPP;
    else return mr_err_set(e, MR_EINVAL, "model.json: arch.gate.type '%s' (dense, topk, topp)", t);
    double p;
    TRY(get_int(g, "k", "arch.gate", 2, 1, 64, &s->k, e));
    TRY(get_num(g, "p", "arch.gate", 0.4, &p, e));
    s->p = (float)p;
    TRY(get_int(g, "null_experts", "arch.gate", 0, 0, 64, &s->n_null, e));
    TRY(get_int(g, "always_on", "arch.gate", 0, 0, 64, &s->n_always, e));
    return 0;
}

static int parse_arch(json_t *a, moe_model *m, moe_arch *arch, mr_err *e) {
    static const char *const keys[] = {"type",       "experts",       "task_experts",
                                       "levels",     "expert_hidden", "tower_hidden",
                                       "activation", "expert_norm",   "feature_gate_rank",
                                       "self_gate",  "task_groups",   "gate",
                                       "lbl_coef",   "entropy_coef",  NULL};
    if (!json_is_object(a))
        return mr_err_set(e, MR_EINVAL, "model.json: arch is required (an object)");
    TRY(check_keys(a, "arch", keys, e));
    char t[32];
    TRY(get_str(a, "type", "arch", NULL, t, sizeof t, e));
    moe_arch_kind kind;
    if (moe_arch_kind_parse(t, &kind))
        return mr_err_set(e, MR_EINVAL,
                          "model.json: arch.type '%s' (shared_bottom, omoe, mmoe, cgc, ple, home)",
                          t);
    moe_arch_defaults(arch, kind, m->in_dim, m->n_tasks);
    for (int k = 0; k < m->n_tasks; k++) arch->task_kind[k] = m->tasks[k].kind;
    TRY(get_int(a, "experts", "arch", arch->n_shared, 0, MOE_MAX_EXPERTS, &arch->n_shared, e));
    TRY(get_int(a, "task_experts", "arch", arch->n_task_experts, 0, MOE_MAX_EXPERTS,
                &arch->n_task_experts, e));
    TRY(get_int(a, "levels", "arch", arch->n_levels, 1, MOE_MAX_LEVELS, &arch->n_levels, e));
    int dh[MOE_MAX_LAYERS];
    memcpy(dh, arch->expert_hidden, sizeof dh);
    TRY(get_dims(a, "expert_hidden", "arch", arch->expert_hidden, &arch->n_expert_layers,
                 arch->n_expert_layers, dh, e));
    memcpy(dh, arch->tower_hidden, sizeof dh);
    TRY(get_dims(a, "tower_hidden", "arch", arch->tower_hidden, &arch->n_tower_layers,
                 arch->n_tower_layers, dh, e));
    char act[16];
    TRY(get_str(a, "activation", "arch", arch->act == MOE_ACT_SWISH ? "swish" : "relu", act,
                sizeof act, e));
    if (!strcmp(act, "relu")) arch->act = MOE_ACT_RELU;
    else if (!strcmp(act, "swish")) arch->act = MOE_ACT_SWISH;
    else return mr_err_set(e, MR_EINVAL, "model.json: arch.activation '%s' (relu, swish)", act);
    if (json_object_get(a, "expert_norm"))
        TRY(get_bool(a, "expert_norm", "arch", &arch->expert_norm, e));
    TRY(get_int(a, "feature_gate_rank", "arch", 0, 0, 4096, &arch->feature_gate_rank, e));
    TRY(get_bool(a, "self_gate", "arch", &arch->self_gate, e));
    json_t *tg = json_object_get(a, "task_groups");
    if (tg) {
        if (!json_is_array(tg) || (int)json_array_size(tg) != m->n_tasks)
            return mr_err_set(e, MR_EINVAL,
                              "model.json: arch.task_groups must list a group per task");
        arch->n_groups = 0;
        for (int k = 0; k < m->n_tasks; k++) {
            json_t *g = json_array_get(tg, (size_t)k);
            if (!json_is_integer(g) || json_integer_value(g) < 0 ||
                json_integer_value(g) >= m->n_tasks)
                return mr_err_set(e, MR_EINVAL,
                                  "model.json: arch.task_groups[%d] must be an integer in [0, %d]",
                                  k, m->n_tasks - 1);
            arch->task_group[k] = (int)json_integer_value(g);
            if (arch->task_group[k] + 1 > arch->n_groups) arch->n_groups = arch->task_group[k] + 1;
        }
    }
    TRY(parse_gate(json_object_get(a, "gate"), &arch->gate, e));
    double c;
    TRY(get_num(a, "lbl_coef", "arch", 0, &c, e));
    arch->lbl_coef = (float)c;
    TRY(get_num(a, "entropy_coef", "arch", 0, &c, e));
    arch->ent_coef = (float)c;
    if (kind ==
        MOE_ARCH_SHARED_BOTTOM) { /* one MLP: an expert or gate setting would be ignored silently */
        /* the defaults pass: moerec's and moerec_torch's writers spell every arch key out */
        moe_arch d;
        moe_arch_defaults(&d, kind, m->in_dim, m->n_tasks);
        const moe_gate_spec *g = &arch->gate, *dg = &d.gate;
        const char *bad = arch->n_shared != d.n_shared               ? "experts"
                          : arch->n_task_experts != d.n_task_experts ? "task_experts"
                          : arch->n_levels != d.n_levels             ? "levels"
                          : g->kind != dg->kind || g->k != dg->k || g->p != dg->p ||
                                  g->n_null != dg->n_null || g->n_always != dg->n_always
                              ? "gate"
                          : tg                     ? "task_groups"
                          : arch->lbl_coef != 0.0f ? "lbl_coef"
                          : arch->ent_coef != 0.0f ? "entropy_coef"
                                                   : NULL;
        if (bad)
            return mr_err_set(
                e, MR_EINVAL,
                "model.json: arch.%s does not apply to shared_bottom (one shared MLP, no experts "
                "or gates); use omoe, mmoe, cgc, ple or home",
                bad);
    }
    return 0;
}

/* "storage": "memory" (default) | "store", "encoding": "fp32" (default) |
 * "fp16" | "int8", "ttl_seconds": 0 (default, never); encoding and TTL
 * describe rows in the store, so they need "storage": "store". */
static int parse_storage(json_t *t, const char *where, moe_table *tb, mr_err *e) {
    char s[16], enc[16];
    TRY(get_str(t, "storage", where, "memory", s, sizeof s, e));
    if (!strcmp(s, "store")) tb->storage = MOE_STORAGE_STORE;
    else if (!strcmp(s, "memory")) tb->storage = MOE_STORAGE_MEMORY;
    else
        return mr_err_set(e, MR_EINVAL,
                          "model.json: %s.storage '%s' must be \"memory\" or \"store\"", where, s);
    TRY(get_str(t, "encoding", where, "fp32", enc, sizeof enc, e));
    if (moe_encoding_parse(enc, &tb->encoding))
        return mr_err_set(e, MR_EINVAL,
                          "model.json: %s.encoding '%s' must be \"fp32\", \"fp16\" or \"int8\"",
                          where, enc);
    json_t *ttl = json_object_get(t, "ttl_seconds");
    if (ttl && (!json_is_integer(ttl) || json_integer_value(ttl) < 0 ||
                json_integer_value(ttl) > (1LL << 40)))
        return mr_err_set(e, MR_EINVAL,
                          "model.json: %s.ttl_seconds must be an integer in [0, 2^40]", where);
    tb->ttl_s = ttl ? (int64_t)json_integer_value(ttl) : 0;
    if (tb->storage == MOE_STORAGE_MEMORY && (json_object_get(t, "encoding") || ttl))
        return mr_err_set(
            e, MR_EINVAL,
            "model.json: %s: encoding and ttl_seconds describe rows in the store; they "
            "need \"storage\": \"store\"",
            where);
    return 0;
}

/* Graph kinds (graph, double_graph): "resolution" (> 0; absent = the
 * build's), "balance": "none" (default, a row per cluster, c mod rows) |
 * "degree" (clusters split / packed into rows of equal training degree,
 * graphhash_balance_rows), "hubs": the highest-degree ids that own a row
 * each before the others share the rest (graphhash_hub_rows; 0 = none). */
static int parse_graph_opts(json_t *t, const char *where, moe_table *tb, mr_err *e) {
    int graph = tb->kind == IDHASH_GRAPH || tb->kind == IDHASH_DOUBLE_GRAPH;
    if (!graph && (json_object_get(t, "resolution") || json_object_get(t, "balance") ||
                   json_object_get(t, "hubs")))
        return mr_err_set(e, MR_EINVAL,
                          "model.json: %s: resolution, balance and hubs belong to the graph and "
                          "double_graph kinds",
                          where);
    TRY(get_int(t, "hubs", where, 0, 0, (int)(tb->rows - 1), &tb->hubs, e));
    TRY(get_num(t, "resolution", where, 0, &tb->resolution, e));
    if (json_object_get(t, "resolution") && !(tb->resolution > 0 && tb->resolution <= 1e6))
        return mr_err_set(e, MR_EINVAL, "model.json: %s.resolution must be in (0, 1e6]", where);
    char b[16];
    TRY(get_str(t, "balance", where, "none", b, sizeof b, e));
    if (!strcmp(b, "degree")) tb->balance = 1;
    else if (!strcmp(b, "none")) tb->balance = 0;
    else
        return mr_err_set(e, MR_EINVAL,
                          "model.json: %s.balance '%s' must be \"none\" or \"degree\"", where, b);
    return 0;
}

int moe_encoding_parse(const char *s, moe_encoding *out) {
    static const char *const names[] = {"fp32", "fp16", "int8"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i])) {
            *out = (moe_encoding)i;
            return 0;
        }
    return -1;
}

const char *moe_encoding_name(moe_encoding enc) {
    return enc == MOE_ENC_FP16 ? "fp16" : enc == MOE_ENC_INT8 ? "int8" : "fp32";
}

static int parse_tables(json_t *ts, moe_model *m, mr_err *e) {
    static const char *const keys[] = {
        "name",    "rows",    "dim",      "hash",        "seed",       "seed2",   "mapping", "pair",
        "vectors", "storage", "encoding", "ttl_seconds", "resolution", "balance", "hubs",    NULL};
    char pairs[MOE_MAX_TABLES][MOE_NAME_MAX];
    if (!ts) return 0;
    if (!json_is_array(ts) || json_array_size(ts) > MOE_MAX_TABLES)
        return mr_err_set(e, MR_EINVAL, "model.json: tables must be a list of at most %d",
                          MOE_MAX_TABLES);
    for (size_t i = 0; i < json_array_size(ts); i++) {
        json_t *t = json_array_get(ts, i);
        char where[32];
        snprintf(where, sizeof where, "tables[%zu]", i);
        if (!json_is_object(t))
            return mr_err_set(e, MR_EINVAL, "model.json: %s must be an object", where);
        TRY(check_keys(t, where, keys, e));
        moe_table *tb = &m->tables[m->n_tables];
        TRY(get_str(t, "name", where, NULL, tb->name, sizeof tb->name, e));
        for (int j = 0; j < m->n_tables; j++)
            if (!strcmp(m->tables[j].name, tb->name))
                return mr_err_set(e, MR_EINVAL, "model.json: %s.name '%s' is used twice", where,
                                  tb->name);
        json_t *rows = json_object_get(t, "rows");
        if (!json_is_integer(rows) || json_integer_value(rows) < 2 ||
            json_integer_value(rows) > (1LL << 31))
            return mr_err_set(e, MR_EINVAL, "model.json: %s.rows must be an integer in [2, 2^31]",
                              where);
        tb->rows = (long)json_integer_value(rows);
        TRY(get_int(t, "dim", where, 16, 1, 4096, &tb->dim, e));
        char h[16];
        TRY(get_str(t, "hash", where, "hash", h, sizeof h, e));
        if (idhash_kind_parse(h, &tb->kind, e)) return mr_err_wrap(e, "model.json: %s.hash", where);
        int mapped = moe_table_mapped(tb);
        char dflt[MOE_NAME_MAX + 8];
        snprintf(dflt, sizeof dflt, "%s.map", tb->name);
        TRY(get_str(t, "mapping", where, mapped ? dflt : "", tb->mapping, sizeof tb->mapping, e));
        TRY(get_str(t, "pair", where, "", pairs[i], sizeof pairs[i], e));
        TRY(get_str(t, "vectors", where, "", tb->vectors, sizeof tb->vectors, e));
        if (!mapped && (json_object_get(t, "mapping") || json_object_get(t, "pair") ||
                        json_object_get(t, "vectors")))
            return mr_err_set(
                e, MR_EINVAL,
                "model.json: %s: mapping, pair and vectors belong to the frequency, graph, "
                "double_graph and lsh kinds, not '%s'",
                where, h);
        if (mapped &&
            (!mr_file_name_ok(tb->mapping, sizeof tb->mapping) ||
             !strcmp(tb->mapping, "model.json") || !strcmp(tb->mapping, "weights.safetensors")))
            return mr_err_set(
                e, MR_EINVAL,
                "model.json: %s.mapping '%s' must be a plain file name in the version "
                "directory",
                where, tb->mapping);
        if ((tb->kind == IDHASH_GRAPH || tb->kind == IDHASH_DOUBLE_GRAPH) && !pairs[i][0])
            return mr_err_set(
                e, MR_EINVAL,
                "model.json: %s.pair is required for '%s' (the table of the other side of "
                "the user x item graph)",
                where, h);
        if (tb->kind == IDHASH_LSH && (pairs[i][0] != 0) == (tb->vectors[0] != 0))
            return mr_err_set(
                e, MR_EINVAL,
                "model.json: %s: an lsh table needs exactly one of vectors (SimHash of "
                "content vectors) and pair (MinHash of the id's neighbours)",
                where);
        json_t *s1 = json_object_get(t, "seed"), *s2 = json_object_get(t, "seed2");
        if ((s1 && !json_is_integer(s1)) || (s2 && !json_is_integer(s2)))
            return mr_err_set(e, MR_EINVAL, "model.json: %s.seed must be an integer", where);
        tb->seed = s1 ? (uint64_t)json_integer_value(s1) : (uint64_t)(i + 1);
        tb->seed2 = s2 ? (uint64_t)json_integer_value(s2) : idhash_seed2(tb->seed);
        TRY(parse_storage(t, where, tb, e));
        TRY(parse_graph_opts(t, where, tb, e));
        m->n_tables++;
    }
    for (int i = 0; i < m->n_tables; i++) { /* pairs may name a later table */
        moe_table *tb = &m->tables[i];
        tb->pair = -1;
        for (int j = 0; pairs[i][0] && j < m->n_tables; j++)
            if (!strcmp(m->tables[j].name, pairs[i])) tb->pair = j;
        if (pairs[i][0] && (tb->pair < 0 || tb->pair == i))
            return mr_err_set(e, MR_EINVAL,
                              "model.json: tables[%d].pair '%s' must name another table", i,
                              pairs[i]);
        for (int j = 0; j < i; j++)
            if (moe_table_mapped(tb) && !strcmp(m->tables[j].mapping, tb->mapping))
                return mr_err_set(e, MR_EINVAL, "model.json: tables[%d].mapping '%s' is used twice",
                                  i, tb->mapping);
    }
    return 0;
}

/* features.history_actions: 1..16 distinct action names (Event.action,
 * 1..64 bytes); the SDIM block is then [long d | short d | one float per
 * action], so extra_dim - n must be 2 d for some d >= 1. */
static int parse_history_actions(json_t *a, moe_model *m, mr_err *e) {
    if (!a) return 0;
    if (!json_is_array(a) || json_array_size(a) < 1 || json_array_size(a) > MOE_MAX_HIST_ACTIONS)
        return mr_err_set(e, MR_EINVAL,
                          "model.json: features.history_actions must be a list of 1..%d action "
                          "names",
                          MOE_MAX_HIST_ACTIONS);
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *v = json_array_get(a, i);
        size_t len = json_is_string(v) ? strlen(json_string_value(v)) : 0;
        if (len < 1 || len >= MOE_ACTION_MAX)
            return mr_err_set(e, MR_EINVAL,
                              "model.json: features.history_actions[%zu] must be a string of "
                              "1..%d bytes",
                              i, MOE_ACTION_MAX - 1);
        for (int j = 0; j < m->n_hist_act; j++)
            if (!strcmp(m->hist_act[j], json_string_value(v)))
                return mr_err_set(e, MR_EINVAL,
                                  "model.json: features.history_actions: '%s' is listed twice",
                                  m->hist_act[j]);
        snprintf(m->hist_act[m->n_hist_act++], MOE_ACTION_MAX, "%s", json_string_value(v));
    }
    int rest = m->extra_dim - m->n_hist_act;
    if (rest < 2 || rest % 2)
        return mr_err_set(e, MR_EINVAL,
                          "model.json: features.history_actions adds %d floats to the SDIM block "
                          "[long d | short d | actions]: extra_dim %d must be 2 d + %d for some "
                          "d >= 1",
                          m->n_hist_act, m->extra_dim, m->n_hist_act);
    return 0;
}

static int parse_features(json_t *f, moe_model *m, mr_err *e) {
    static const char *const keys[] = {"categorical", "numeric", "extra_dim", "history_actions",
                                       NULL};
    static const char *const ckeys[] = {"name", "column", "table", "combiner", "separator", NULL};
    static const char *const nkeys[] = {"name", "column", "mean", "std", "fill", NULL};
    if (!f) return 0;
    if (!json_is_object(f))
        return mr_err_set(e, MR_EINVAL, "model.json: features must be an object");
    TRY(check_keys(f, "features", keys, e));
    json_t *cs = json_object_get(f, "categorical"), *ns = json_object_get(f, "numeric");
    if ((cs && !json_is_array(cs)) || (ns && !json_is_array(ns)) ||
        json_array_size(cs) > MOE_MAX_FIELDS || json_array_size(ns) > MOE_MAX_FIELDS)
        return mr_err_set(e, MR_EINVAL,
                          "model.json: features.categorical/numeric must be lists of at most %d",
                          MOE_MAX_FIELDS);
    int off = 0;
    for (size_t i = 0; i < json_array_size(cs); i++) {
        json_t *c = json_array_get(cs, i);
        char where[48], tname[MOE_NAME_MAX], comb[16], sep[4];
        snprintf(where, sizeof where, "features.categorical[%zu]", i);
        if (!json_is_object(c))
            return mr_err_set(e, MR_EINVAL, "model.json: %s must be an object", where);
        TRY(check_keys(c, where, ckeys, e));
        moe_cat_field *cf = &m->cat[m->n_cat];
        TRY(get_str(c, "name", where, NULL, cf->name, sizeof cf->name, e));
        TRY(get_str(c, "column", where, cf->name, cf->column, sizeof cf->column, e));
        TRY(get_str(c, "table", where, cf->name, tname, sizeof tname, e));
        cf->table = -1;
        for (int t = 0; t < m->n_tables; t++)
            if (!strcmp(m->tables[t].name, tname)) cf->table = t;
        if (cf->table < 0)
            return mr_err_set(e, MR_EINVAL, "model.json: %s.table '%s' is not in tables", where,
                              tname);
        TRY(get_str(c, "combiner", where, "sum", comb, sizeof comb, e));
        if (strcmp(comb, "sum") && strcmp(comb, "mean"))
            return mr_err_set(e, MR_EINVAL, "model.json: %s.combiner '%s' (sum, mean)", where,
                              comb);
        cf->mean = !strcmp(comb, "mean");
        TRY(get_str(c, "separator", where, "", sep, sizeof sep, e));
        if (strlen(sep) > 1)
            return mr_err_set(e, MR_EINVAL, "model.json: %s.separator must be one character",
                              where);
        cf->sep = sep[0];
        cf->offset = off;
        off += m->tables[cf->table].dim;
        m->n_cat++;
    }
    for (size_t i = 0; i < json_array_size(ns); i++) {
        json_t *c = json_array_get(ns, i);
        char where[48];
        double v;
        snprintf(where, sizeof where, "features.numeric[%zu]", i);
        if (!json_is_object(c))
            return mr_err_set(e, MR_EINVAL, "model.json: %s must be an object", where);
        TRY(check_keys(c, where, nkeys, e));
        moe_num_field *nf = &m->num[m->n_num];
        TRY(get_str(c, "name", where, NULL, nf->name, sizeof nf->name, e));
        TRY(get_str(c, "column", where, nf->name, nf->column, sizeof nf->column, e));
        TRY(get_num(c, "mean", where, 0, &v, e));
        nf->mean = (float)v;
        TRY(get_num(c, "std", where, 1, &v, e));
        if (!(v > 0)) return mr_err_set(e, MR_EINVAL, "model.json: %s.std must be > 0", where);
        nf->std = (float)v;
        TRY(get_num(c, "fill", where, nf->mean, &v, e));
        nf->fill = (float)v;
        nf->offset = off++;
        m->n_num++;
    }
    for (int i = 0; i < m->n_cat + m->n_num; i++)
        for (int j = 0; j < i; j++) {
            const char *a = i < m->n_cat ? m->cat[i].name : m->num[i - m->n_cat].name;
            const char *b = j < m->n_cat ? m->cat[j].name : m->num[j - m->n_cat].name;
            if (!strcmp(a, b))
                return mr_err_set(e, MR_EINVAL, "model.json: feature name '%s' is used twice", a);
        }
    TRY(get_int(f, "extra_dim", "features", 0, 0, 1 << 16, &m->extra_dim, e));
    TRY(parse_history_actions(json_object_get(f, "history_actions"), m, e));
    m->in_dim = off + m->extra_dim;
    return 0;
}

static int parse_tasks(json_t *ts, moe_model *m, mr_err *e) {
    static const char *const keys[] = {"name",        "kind",       "label",
                                       "threshold",   "positive",   "weight",
                                       "loss_weight", "loss_decay", NULL};
    if (!json_is_array(ts) || json_array_size(ts) < 1 || json_array_size(ts) > MOE_MAX_TASKS)
        return mr_err_set(e, MR_EINVAL, "model.json: tasks must be a list of 1..%d tasks",
                          MOE_MAX_TASKS);
    for (size_t i = 0; i < json_array_size(ts); i++) {
        json_t *t = json_array_get(ts, i);
        char where[32], kind[16];
        double v;
        snprintf(where, sizeof where, "tasks[%zu]", i);
        if (!json_is_object(t))
            return mr_err_set(e, MR_EINVAL, "model.json: %s must be an object", where);
        TRY(check_keys(t, where, keys, e));
        moe_task *k = &m->tasks[m->n_tasks];
        TRY(get_str(t, "name", where, NULL, k->name, sizeof k->name, e));
        for (int j = 0; j < m->n_tasks; j++)
            if (!strcmp(m->tasks[j].name, k->name))
                return mr_err_set(e, MR_EINVAL, "model.json: %s.name '%s' is used twice", where,
                                  k->name);
        TRY(get_str(t, "kind", where, "binary", kind, sizeof kind, e));
        if (!strcmp(kind, "binary")) k->kind = MOE_TASK_BINARY;
        else if (!strcmp(kind, "regression")) k->kind = MOE_TASK_REGRESSION;
        else
            return mr_err_set(e, MR_EINVAL, "model.json: %s.kind '%s' (binary, regression)", where,
                              kind);
        TRY(get_str(t, "label", where, k->name, k->label, sizeof k->label, e));
        k->has_threshold = json_object_get(t, "threshold") != NULL;
        TRY(get_num(t, "threshold", where, 0, &v, e));
        k->threshold = (float)v;
        k->has_positive = json_object_get(t, "positive") != NULL;
        TRY(get_str(t, "positive", where, "", k->positive, sizeof k->positive, e));
        if (k->has_positive && (k->has_threshold || k->kind != MOE_TASK_BINARY || !k->positive[0]))
            return mr_err_set(e, MR_EINVAL,
                              "model.json: %s.positive needs a binary task without threshold and a "
                              "non-empty value",
                              where);
        TRY(get_num(t, "weight", where, 1, &v, e));
        k->weight = (float)v;
        TRY(get_num(t, "loss_weight", where, 1, &v, e));
        k->loss_weight = (float)v;
        TRY(get_num(t, "loss_decay", where, 1, &v, e));
        if (!(v >= 0 && v <= 1))
            return mr_err_set(e, MR_EINVAL, "model.json: %s.loss_decay must be in [0, 1]", where);
        k->loss_decay = (float)v;
        m->n_tasks++;
    }
    return 0;
}

int moe_model_parse_json(moe_model *m, moe_arch *arch, const char *text, mr_err *e) {
    static const char *const keys[] = {"format", "format_version", "name",  "tables",    "features",
                                       "tasks",  "arch",           "train", "precision", NULL};
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    if (!json_is_object(root)) {
        json_decref(root);
        return mr_err_set(e, MR_EINVAL, "model.json: line %d: %s", je.line,
                          root ? "not an object" : je.text);
    }
    int rc = check_keys(root, "", keys, e);
    json_t *fmt = json_object_get(root, "format"), *fv = json_object_get(root, "format_version");
    if (!rc && fmt && (!json_is_string(fmt) || strcmp(json_string_value(fmt), MOE_FORMAT)))
        rc = mr_err_set(e, MR_EINVAL, "model.json: format must be \"%s\"", MOE_FORMAT);
    if (!rc && fv && (!json_is_integer(fv) || json_integer_value(fv) != MOE_FORMAT_VERSION))
        rc = mr_err_set(e, MR_EINVAL,
                        "model.json: format_version %lld not supported (this build reads %d)",
                        fv && json_is_integer(fv) ? (long long)json_integer_value(fv) : -1LL,
                        MOE_FORMAT_VERSION);
    if (!rc) rc = get_str(root, "name", "", "model", m->name, sizeof m->name, e);
    if (!rc) rc = parse_tables(json_object_get(root, "tables"), m, e);
    if (!rc) rc = parse_features(json_object_get(root, "features"), m, e);
    if (!rc) rc = parse_tasks(json_object_get(root, "tasks"), m, e);
    if (!rc && m->in_dim < 1)
        rc = mr_err_set(e, MR_EINVAL,
                        "model.json: features give an empty input (no fields, extra_dim 0)");
    if (!rc) rc = parse_arch(json_object_get(root, "arch"), m, arch, e);
    json_t *pr = json_object_get(root, "precision");
    m->precision = MOE_PREC_FP32;
    if (!rc && pr &&
        (!json_is_string(pr) || moe_precision_parse(json_string_value(pr), &m->precision)))
        rc = mr_err_set(
            e, MR_EINVAL,
            "model.json: precision must be \"fp32\", \"bf16\", \"int8\" or \"openblas_fp32\"");
    json_t *tr = json_object_get(root, "train");
    if (!rc && tr) {
        if (!json_is_object(tr))
            rc = mr_err_set(e, MR_EINVAL, "model.json: train must be an object");
        else m->train_json = json_dumps(tr, JSON_COMPACT);
    }
    json_decref(root);
    return rc;
}

static json_t *dims_json(const int *d, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_integer(d[i]));
    return a;
}

char *moe_model_to_json(const moe_model *m) {
    json_t *r = json_object();
    json_object_set_new(r, "format", json_string(MOE_FORMAT));
    json_object_set_new(r, "format_version", json_integer(MOE_FORMAT_VERSION));
    json_object_set_new(r, "name", json_string(m->name));
    json_object_set_new(r, "precision", json_string(moe_precision_name(m->precision)));
    json_t *ts = json_array();
    for (int i = 0; i < m->n_tables; i++) {
        const moe_table *t = &m->tables[i];
        json_t *o = json_pack("{s:s, s:I, s:i, s:s, s:I, s:I}", "name", t->name, "rows",
                              (json_int_t)t->rows, "dim", t->dim, "hash", idhash_kind_name(t->kind),
                              "seed", (json_int_t)t->seed, "seed2", (json_int_t)t->seed2);
        if (moe_table_mapped(t)) json_object_set_new(o, "mapping", json_string(t->mapping));
        if (t->pair >= 0) json_object_set_new(o, "pair", json_string(m->tables[t->pair].name));
        if (t->vectors[0]) json_object_set_new(o, "vectors", json_string(t->vectors));
        if (t->resolution > 0) json_object_set_new(o, "resolution", json_real(t->resolution));
        if (t->balance) json_object_set_new(o, "balance", json_string("degree"));
        if (t->hubs) json_object_set_new(o, "hubs", json_integer(t->hubs));
        if (t->storage == MOE_STORAGE_STORE) {
            json_object_set_new(o, "storage", json_string("store"));
            json_object_set_new(o, "encoding", json_string(moe_encoding_name(t->encoding)));
            if (t->ttl_s) json_object_set_new(o, "ttl_seconds", json_integer((json_int_t)t->ttl_s));
        }
        json_array_append_new(ts, o);
    }
    json_object_set_new(r, "tables", ts);
    json_t *cs = json_array(), *ns = json_array();
    for (int i = 0; i < m->n_cat; i++) {
        const moe_cat_field *c = &m->cat[i];
        char sep[2] = {c->sep, 0};
        json_array_append_new(cs,
                              json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", c->name, "column",
                                        c->column, "table", m->tables[c->table].name, "combiner",
                                        c->mean ? "mean" : "sum", "separator", sep));
    }
    for (int i = 0; i < m->n_num; i++) {
        const moe_num_field *n = &m->num[i];
        json_array_append_new(ns, json_pack("{s:s, s:s, s:f, s:f, s:f}", "name", n->name, "column",
                                            n->column, "mean", (double)n->mean, "std",
                                            (double)n->std, "fill", (double)n->fill));
    }
    json_t *fo = json_pack("{s:o, s:o, s:i}", "categorical", cs, "numeric", ns, "extra_dim",
                           m->extra_dim);
    if (m->n_hist_act) {
        json_t *ha = json_array();
        for (int i = 0; i < m->n_hist_act; i++)
            json_array_append_new(ha, json_string(m->hist_act[i]));
        json_object_set_new(fo, "history_actions", ha);
    }
    json_object_set_new(r, "features", fo);
    json_t *tk = json_array();
    for (int i = 0; i < m->n_tasks; i++) {
        const moe_task *t = &m->tasks[i];
        json_t *o = json_pack("{s:s, s:s, s:s, s:f, s:f}", "name", t->name, "kind",
                              t->kind == MOE_TASK_BINARY ? "binary" : "regression", "label",
                              t->label, "weight", (double)t->weight, "loss_weight",
                              (double)t->loss_weight);
        if (t->has_threshold) json_object_set_new(o, "threshold", json_real(t->threshold));
        if (t->has_positive) json_object_set_new(o, "positive", json_string(t->positive));
        if (t->loss_decay != 1.0f) json_object_set_new(o, "loss_decay", json_real(t->loss_decay));
        json_array_append_new(tk, o);
    }
    json_object_set_new(r, "tasks", tk);
    const moe_arch *a = &m->net->arch;
    static const char *gk[] = {"dense", "topk", "topp"};
    json_t *arch = json_pack(
        "{s:s, s:i, s:i, s:i, s:o, s:o, s:s, s:b, s:i, s:b, s:{s:s, s:i, s:f, s:i, s:i}, s:f, s:f}",
        "type", moe_arch_kind_name(a->kind), "experts", a->n_shared, "task_experts",
        a->n_task_experts, "levels", a->n_levels, "expert_hidden",
        dims_json(a->expert_hidden, a->n_expert_layers), "tower_hidden",
        dims_json(a->tower_hidden, a->n_tower_layers), "activation",
        a->act == MOE_ACT_SWISH ? "swish" : "relu", "expert_norm", a->expert_norm,
        "feature_gate_rank", a->feature_gate_rank, "self_gate", a->self_gate, "gate", "type",
        gk[a->gate.kind], "k", a->gate.k, "p", (double)a->gate.p, "null_experts", a->gate.n_null,
        "always_on", a->gate.n_always, "lbl_coef", (double)a->lbl_coef, "entropy_coef",
        (double)a->ent_coef);
    if (a->kind == MOE_ARCH_HOME)
        json_object_set_new(arch, "task_groups", dims_json(a->task_group, a->n_tasks));
    json_object_set_new(r, "arch", arch);
    if (m->train_json) {
        json_t *tr = json_loads(m->train_json, 0, NULL);
        if (tr) json_object_set_new(r, "train", tr);
    }
    char *s = json_dumps(r, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(r);
    return s;
}

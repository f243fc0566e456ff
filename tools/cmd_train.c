/* cmd_train.c — `moerec train`: train the multi-task MoE ranker from a
 * CSV/TSV file whose schema is in model.json, and write a new model version
 * (model.json + weights.safetensors) under the output root.
 *
 * Options come from model.json's "train" section, then the command line
 * (which wins). Progress goes to stderr; the final metrics are one JSON
 * object on stdout, so scripts can parse them.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "command.h"
#include "common/clock.h"
#include "common/csv.h"
#include "common/log.h"
#include "common/read_file.h"
#include "common/tensor.h"
#include "hashing/idhash.h"
#include "moe/dataset.h"
#include "moe/model.h"
#include "moe/model_maps.h"
#include "moe/sdim_feature.h"
#include "moe/sdim_join.h"
#include "moe/train.h"
#include "tools/cli.h"

typedef struct train_cli {
    const char *model_json, *data, *out, *init, *mappings, *val_data;
    float resolution; /* Louvain resolution of graph tables; 0 = auto */
    char split[16];
    char time_col[64];
    char user_col[64]; /* --split user-time: the rows' user column */
    double val_frac;
    long max_rows;
    int fit_numeric, version;
    moe_train_opts o;
    sdim_csv_opts sdim;  /* --sdim-*: long-behaviour extra block (moe/sdim_join.h) */
    char na[CLI_NA_MAX]; /* --na: the input files' missing set, "" = the reader's default */
    const char *rule[CLI_MAX_LABEL_RULES]; /* --label-positive / --label-threshold specs */
    int rule_threshold[CLI_MAX_LABEL_RULES];
    int n_rules;
} train_cli;

/* mkdir -p: 0 when path is a directory afterwards. */
static int mkdir_p(const char *path) {
    char p[4096];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) return -1;
        *s = '/';
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST) return -1;
    struct stat st;
    if (stat(p, &st) != 0) return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

#define SDIM_STR_(x) #x
#define SDIM_STR(x) SDIM_STR_(x)
static const char sdim_usage[] =
    "  --sdim-events FILE  behaviour events CSV (user_id,item_id,ts_ms): fill the model's\n"
    "                      extra block (extra_dim = 2 d) with SDIM [long | short] per row,\n"
    "                      from the row user's events strictly before the row's time; with\n"
    "                      features.history_actions (extra_dim = 2 d + actions) the file\n"
    "                      also needs an action column (as AppendEvents' Event.action)\n"
    "  --sdim-items FILE   item vectors CSV (item_id,e0..e{d-1}): the store's item table\n"
    "  --sdim-columns U,I,T  the data's user, item and time columns (user_id,item_id,ts_ms)\n"
    "  --sdim-params M,TAU,SEED,LMAX,SHORT  as the store's behaviour config (" SDIM_STR(SDIM_DEFAULT_M) "," SDIM_STR(
        SDIM_DEFAULT_TAU) "," SDIM_STR(SDIM_DEFAULT_SEED) "," SDIM_STR(SDIM_DEFAULT_L_MAX) "," SDIM_STR(SDIM_DEFAULT_SHORT) ")\n";

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: moerec train --model-json FILE --data FILE --out DIR [options]\n\n"
        "Train the multi-task MoE ranker on a CSV/TSV file (header line; columns named\n"
        "by model.json) and write DIR/<version>/{model.json,weights.safetensors}.\n"
        "Options may also be set in model.json's \"train\" object (same names, '_' for '-'),\n"
        "these only: epochs, batch, lr, emb_lr, emb_opt, clip, weight_decay, seed, val_frac,\n"
        "split, time_column, user_column, patience, threads; flags override them.\n\n"
        "  --model-json FILE   schema, tasks and architecture (docs/model-format.md)\n"
        "  --data FILE         training data, CSV or TSV (input rules: docs/operations.md)\n"
        "  --out DIR           model root; the version is the next free integer\n"
        "  --version N         write version N instead\n"
        "  --init DIR          start from the weights of a model version directory (same\n"
        "                      architecture and tables as --model-json)\n"
        "  --epochs N          most epochs (10)\n"
        "  --batch N           rows per step (256)\n"
        "  --lr F              Adam learning rate of dense weights (0.001)\n"
        "  --emb-lr F          embedding learning rate (0.001)\n"
        "  --emb-opt adam|adagrad  embedding optimizer, sparse row updates (adam)\n"
        "  --clip F            global gradient-norm clip, 0 = off (10)\n"
        "  --weight-decay F    L2 on dense weights (0)\n"
        "  --seed N            shuffling and initialisation seed (1)\n"
        "  --val-frac F        validation fraction (0.1)\n"
        "  --split random|time|user-time  validation split (random): a seeded random\n"
        "                      fraction; the latest fraction by time over all rows (time);\n"
        "                      each user's latest fraction by time (user-time). Time splits\n"
        "                      put rows tied with the boundary time into validation\n"
        "  --time-column NAME  column ordering rows for the time splits\n"
        "  --user-column NAME  user column of --split user-time (user_id)\n"
        "  --val-data FILE     validate on this file (same columns) instead of a split of\n"
        "                      --data; every --data row trains\n"
        "  --patience N        early stopping: epochs without validation gain (2)\n"
        "  --threads N         threads in all, 0 = one per core (0)\n"
        "  --max-rows N        read at most N rows\n"
        "  --mappings DIR      take the mappings of frequency/graph/double_graph/lsh tables\n"
        "                      from DIR (a version directory) instead of building them from\n"
        "                      the training split (default: built; with --init, DIR's)\n"
        "  --resolution F      Louvain resolution gamma of graph tables; 0 = auto: the one whose\n"
        "                      cluster count is closest to the table's rows (0); a table's\n"
        "                      model.json \"resolution\" overrides it\n"
        "  --no-fit-numeric    keep model.json's numeric mean/std instead of fitting them\n"
        "  --na LIST           cells of numeric and label columns read as missing besides the\n"
        "                      empty one, comma-separated (NA; e.g. NA,null; every input\n"
        "                      file: docs/operations.md, input files)\n"
        "%s"
        "  --quiet             no progress line\n"
        "%s\n"
        "Example:\n"
        "  moerec train --model-json demo/model.json --data demo/interactions.csv \\\n"
        "      --out demo/models/demo --epochs 3 --threads 4\n",
        cli_label_usage, sdim_usage);
}

/* The ranges of the numeric train keys: the same as their flags' (parse_args). */
static const struct {
    const char *key;
    double lo, hi;
    int integer;
} train_ranges[] = {
    {"epochs", 1, 1000000, 1}, {"batch", 1, 1 << 20, 1},     {"lr", 1e-12, 1e3, 0},
    {"emb_lr", 0, 1e3, 0},     {"clip", 0, 1e9, 0},          {"weight_decay", 0, 1e3, 0},
    {"seed", 0, 9.2e18, 1},    {"val_frac", 0, 0.999999, 0}, {"patience", 0, 1000000, 1},
    {"threads", 0, 4096, 1},
};

/* 0 when train.k's value v is in its flag's range; else a message, -1. */
static int train_range_ok(const char *k, const json_t *v) {
    for (size_t i = 0; i < sizeof train_ranges / sizeof *train_ranges; i++) {
        if (strcmp(k, train_ranges[i].key)) continue;
        double x = json_number_value(v);
        int integer = train_ranges[i].integer;
        if ((integer && !json_is_integer(v)) || !(x >= train_ranges[i].lo) ||
            !(x <= train_ranges[i].hi)) {
            fprintf(stderr, "moerec train: model.json train.%s: %g is not %s in [%g, %g]\n", k, x,
                    integer ? "an integer" : "a number", train_ranges[i].lo, train_ranges[i].hi);
            return -1;
        }
    }
    return 0;
}

static int opt_json(train_cli *c, const char *json_text) {
    json_t *t = json_loads(json_text, 0, NULL);
    if (!t) return 0;
    const char *k;
    json_t *v;
    json_object_foreach(t, k, v) {
        double x = json_number_value(v);
        int text = !strcmp(k, "emb_opt") || !strcmp(k, "split") || !strcmp(k, "time_column") ||
                   !strcmp(k, "user_column");
        if (text ? !json_is_string(v) : !json_is_number(v)) {
            fprintf(stderr, "moerec train: model.json train.%s must be a %s\n", k,
                    text ? "string" : "number");
            json_decref(t);
            return -1;
        }
        if (!text && train_range_ok(k, v)) {
            json_decref(t);
            return -1;
        }
        if (!strcmp(k, "emb_opt") && strcmp(json_string_value(v), "adam") &&
            strcmp(json_string_value(v), "adagrad")) {
            fprintf(stderr, "moerec train: model.json train.emb_opt '%s' (adam, adagrad)\n",
                    json_string_value(v));
            json_decref(t);
            return -1;
        }
        if (!strcmp(k, "epochs")) c->o.epochs = (int)x;
        else if (!strcmp(k, "batch")) c->o.batch = (int)x;
        else if (!strcmp(k, "lr")) c->o.lr = (float)x;
        else if (!strcmp(k, "emb_lr")) c->o.emb_lr = (float)x;
        else if (!strcmp(k, "emb_opt") && json_is_string(v))
            c->o.emb_opt = !strcmp(json_string_value(v), "adagrad") ? MOE_OPT_ADAGRAD
                                                                    : MOE_OPT_ADAM;
        else if (!strcmp(k, "clip")) c->o.clip = (float)x;
        else if (!strcmp(k, "weight_decay")) c->o.weight_decay = (float)x;
        else if (!strcmp(k, "seed")) c->o.seed = (uint64_t)x;
        else if (!strcmp(k, "val_frac")) c->val_frac = x;
        else if (!strcmp(k, "split") && json_is_string(v))
            snprintf(c->split, sizeof c->split, "%s", json_string_value(v));
        else if (!strcmp(k, "time_column") && json_is_string(v))
            snprintf(c->time_col, sizeof c->time_col, "%s", json_string_value(v));
        else if (!strcmp(k, "user_column") && json_is_string(v))
            snprintf(c->user_col, sizeof c->user_col, "%s", json_string_value(v));
        else if (!strcmp(k, "patience")) c->o.patience = (int)x;
        else if (!strcmp(k, "threads")) c->o.threads = (int)x;
        else {
            fprintf(stderr, "moerec train: model.json train.%s: unknown option\n", k);
            json_decref(t);
            return -1;
        }
    }
    json_decref(t);
    return 0;
}

/* --sdim-columns U,I,T and --sdim-params M,TAU,SEED,LMAX,SHORT: each piece
 * through the range-checked parsers, an error naming the flag. */
static int sdim_columns(sdim_csv_opts *o, const char *v, mr_err *e) {
    char u[64], i[64], t[64];
    if (sscanf(v, "%63[^,],%63[^,],%63s", u, i, t) != 3)
        return mr_err_set(e, MR_EINVAL, "--sdim-columns: '%s' is not USER,ITEM,TIME", v);
    snprintf(o->user_col, sizeof o->user_col, "%s", u);
    snprintf(o->item_col, sizeof o->item_col, "%s", i);
    snprintf(o->time_col, sizeof o->time_col, "%s", t);
    return 0;
}

static int sdim_params(sdim_csv_opts *o, const char *v, mr_err *e) {
    char part[5][32];
    unsigned long long seed;
    if (sscanf(v, "%31[^,],%31[^,],%31[^,],%31[^,],%31s", part[0], part[1], part[2], part[3],
               part[4]) != 5)
        return mr_err_set(e, MR_EINVAL, "--sdim-params: '%s' is not M,TAU,SEED,LMAX,SHORT", v);
    int rc = cli_int("--sdim-params M", part[0], 1, 4096, &o->m, e);
    if (!rc) rc = cli_int("--sdim-params TAU", part[1], 1, SDIM_MAX_TAU, &o->tau, e);
    if (!rc && !(rc = cli_u64("--sdim-params SEED", part[2], &seed, e))) o->seed = seed;
    if (!rc) rc = cli_int("--sdim-params LMAX", part[3], 1, 1 << 24, &o->l_max, e);
    if (!rc) rc = cli_int("--sdim-params SHORT", part[4], 0, 1 << 24, &o->short_n, e);
    return rc;
}

static int parse_args(train_cli *c, int argc, char **argv) {
    enum {
        O_VERSION = 256,
        O_EMB_LR,
        O_EMB_OPT,
        O_WD,
        O_VAL,
        O_SPLIT,
        O_TIME,
        O_MAXROWS,
        O_NOFIT,
        O_SEV,
        O_SIT,
        O_SCOL,
        O_SPAR,
        O_JSON,
        O_INIT,
        O_MAPS,
        O_RES,
        O_USER,
        O_VALDATA,
        O_NA,
        O_LPOS,
        O_LTHR
    };
    static const struct option opts[] = {{"model-json", required_argument, 0, O_JSON},
                                         {"data", required_argument, 0, 'd'},
                                         {"out", required_argument, 0, 'o'},
                                         {"init", required_argument, 0, O_INIT},
                                         {"version", required_argument, 0, O_VERSION},
                                         {"epochs", required_argument, 0, 'e'},
                                         {"batch", required_argument, 0, 'b'},
                                         {"lr", required_argument, 0, 'l'},
                                         {"emb-lr", required_argument, 0, O_EMB_LR},
                                         {"emb-opt", required_argument, 0, O_EMB_OPT},
                                         {"clip", required_argument, 0, 'c'},
                                         {"weight-decay", required_argument, 0, O_WD},
                                         {"seed", required_argument, 0, 's'},
                                         {"val-frac", required_argument, 0, O_VAL},
                                         {"split", required_argument, 0, O_SPLIT},
                                         {"time-column", required_argument, 0, O_TIME},
                                         {"user-column", required_argument, 0, O_USER},
                                         {"val-data", required_argument, 0, O_VALDATA},
                                         {"patience", required_argument, 0, 'p'},
                                         {"threads", required_argument, 0, 't'},
                                         {"max-rows", required_argument, 0, O_MAXROWS},
                                         {"no-fit-numeric", no_argument, 0, O_NOFIT},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"sdim-events", required_argument, 0, O_SEV},
                                         {"sdim-items", required_argument, 0, O_SIT},
                                         {"sdim-columns", required_argument, 0, O_SCOL},
                                         {"sdim-params", required_argument, 0, O_SPAR},
                                         {"help", no_argument, 0, 'h'},
                                         {"mappings", required_argument, 0, O_MAPS},
                                         {"resolution", required_argument, 0, O_RES},
                                         {"na", required_argument, 0, O_NA},
                                         {"label-positive", required_argument, 0, O_LPOS},
                                         {"label-threshold", required_argument, 0, O_LTHR},
                                         {0, 0, 0, 0}};
    mr_err e;
    mr_err_clear(&e);
    optind = 1; /* called twice: before and after model.json's "train" section */
    c->n_rules = 0;
    opterr = 0;
    for (int o; (o = getopt_long(argc, argv, ":h", opts, NULL)) != -1;) {
        int rc = 0;
        long long ll = 0;
        unsigned long long u = 0;
        switch (o) {
        case O_JSON: c->model_json = optarg; break;
        case 'd': c->data = optarg; break;
        case 'o': c->out = optarg; break;
        case O_INIT: c->init = optarg; break;
        case O_MAPS: c->mappings = optarg; break;
        case O_RES: rc = cli_float("--resolution", optarg, 0, 1e6, &c->resolution, &e); break;
        case O_VERSION: rc = cli_int("--version", optarg, 0, 1000000000, &c->version, &e); break;
        case 'e': rc = cli_int("--epochs", optarg, 1, 1000000, &c->o.epochs, &e); break;
        case 'b': rc = cli_int("--batch", optarg, 1, 1 << 20, &c->o.batch, &e); break;
        case 'l': rc = cli_float("--lr", optarg, 1e-12, 1e3, &c->o.lr, &e); break;
        case O_EMB_LR: rc = cli_float("--emb-lr", optarg, 0, 1e3, &c->o.emb_lr, &e); break;
        case O_EMB_OPT:
            if (strcmp(optarg, "adam") && strcmp(optarg, "adagrad"))
                rc = mr_err_set(&e, MR_EINVAL, "--emb-opt: '%s' is not adam or adagrad", optarg);
            else c->o.emb_opt = !strcmp(optarg, "adagrad") ? MOE_OPT_ADAGRAD : MOE_OPT_ADAM;
            break;
        case 'c': rc = cli_float("--clip", optarg, 0, 1e9, &c->o.clip, &e); break;
        case O_WD: rc = cli_float("--weight-decay", optarg, 0, 1e3, &c->o.weight_decay, &e); break;
        case 's':
            if (!(rc = cli_u64("--seed", optarg, &u, &e))) c->o.seed = u;
            break;
        case O_VAL:
            rc = cli_parse_double("--val-frac", optarg, 0, 0.999999, &c->val_frac, &e);
            break;
        case O_SPLIT: snprintf(c->split, sizeof c->split, "%s", optarg); break;
        case O_TIME: snprintf(c->time_col, sizeof c->time_col, "%s", optarg); break;
        case O_USER: snprintf(c->user_col, sizeof c->user_col, "%s", optarg); break;
        case O_VALDATA: c->val_data = optarg; break;
        case 'p': rc = cli_int("--patience", optarg, 0, 1000000, &c->o.patience, &e); break;
        case 't': rc = cli_int("--threads", optarg, 0, 4096, &c->o.threads, &e); break;
        case O_MAXROWS:
            if (!(rc = cli_parse_int("--max-rows", optarg, 0, 1LL << 40, &ll, &e)))
                c->max_rows = (long)ll;
            break;
        case O_NOFIT: c->fit_numeric = 0; break;
        case 'q': c->o.progress = 0; break;
        case O_SEV: c->sdim.events_path = optarg; break;
        case O_SIT: c->sdim.items_path = optarg; break;
        case O_SCOL: rc = sdim_columns(&c->sdim, optarg, &e); break;
        case O_SPAR: rc = sdim_params(&c->sdim, optarg, &e); break;
        case O_NA:
            if (!(rc = cli_na("--na", optarg, c->na, sizeof c->na, &e))) c->sdim.na = c->na;
            break;
        case O_LPOS:
        case O_LTHR:
            if (c->n_rules == CLI_MAX_LABEL_RULES)
                rc = mr_err_set(&e, MR_EINVAL, "at most %d label rules", CLI_MAX_LABEL_RULES);
            else {
                c->rule_threshold[c->n_rules] = o == O_LTHR;
                c->rule[c->n_rules++] = optarg;
            }
            break;
        case 'h': break; /* handled by train_main */
        default: rc = cli_getopt_error(o, argv, &e); break;
        }
        if (rc) {
            fprintf(stderr, "moerec train: %s (see --help)\n", e.msg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "moerec train: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (!c->model_json || !c->data || !c->out) {
        fprintf(stderr, "moerec train: --model-json, --data and --out are required (see --help)\n");
        return 2;
    }
    if (strcmp(c->split, "random") && strcmp(c->split, "time") && strcmp(c->split, "user-time")) {
        fprintf(stderr, "moerec train: --split %s (random, time, user-time)\n", c->split);
        return 2;
    }
    if (strcmp(c->split, "random") && !c->time_col[0]) {
        fprintf(stderr, "moerec train: --split %s needs --time-column\n", c->split);
        return 2;
    }
    if (!strcmp(c->split, "user-time") && !(c->val_frac > 0)) {
        fprintf(stderr, "moerec train: --split user-time needs --val-frac > 0\n");
        return 2;
    }
    if (c->o.epochs < 1 || c->o.batch < 1 || !(c->val_frac >= 0 && c->val_frac < 1) ||
        !(c->o.lr > 0)) {
        fprintf(stderr, "moerec train: epochs, batch >= 1; 0 <= val-frac < 1; lr > 0\n");
        return 2;
    }
    return 0;
}

/* Mapped tables: load (--mappings, else --init) or build their mappings
 * from the training split, then re-map the dataset's rows. */
static int build_mappings(const train_cli *c, moe_model *m, moe_dataset *d, const long *tr,
                          long ntr, mr_err *e) {
    const char *from = c->mappings ? c->mappings : c->init;
    char base[4096];
    snprintf(base, sizeof base, "%s", c->model_json);
    char *slash = strrchr(base, '/');
    if (slash) *slash = 0;
    else snprintf(base, sizeof base, ".");
    moe_maps_opts mo = {.resolution = c->resolution, .seed = c->o.seed, .base_dir = base};
    uint64_t t0 = mr_now_ns();
    int rc = from ? moe_model_maps_load(m, from, e) : moe_model_maps_build(m, d, tr, ntr, &mo, e);
    if (rc || (rc = moe_dataset_map_rows(d, m, e))) return rc;
    for (int i = 0; i < m->n_tables; i++) {
        const moe_table *t = &m->tables[i];
        if (t->gmap)
            fprintf(
                stderr,
                "moerec train: table '%s' (%s): %llu mapped ids on %llu of %ld rows, max load %llu%s\n",
                t->name, idhash_kind_name(t->kind), (unsigned long long)t->stats.nids,
                (unsigned long long)t->stats.occupied, t->rows,
                (unsigned long long)t->stats.max_load, from ? " (loaded)" : "");
    }
    fprintf(stderr, "moerec train: mappings in %.2f s\n", (double)(mr_now_ns() - t0) / 1e9);
    return 0;
}

/* The hashed value of column col for each data row of path (the rows
 * moe_dataset_read keeps, through the same reader; at most max_rows). */
static int read_groups(const char *path, const char *col, long n, long max_rows, const char *na,
                       uint64_t **out, mr_err *e) {
    mr_csv *in = NULL;
    long i = 0;
    mr_csv_opts co = cli_csv_opts(na);
    int c = -1, rc = mr_csv_open(&in, path, &co, e);
    uint64_t *g = malloc(sizeof *g * (size_t)(n ? n : 1));
    if (!rc && !g) rc = mr_err_set(e, MR_ENOMEM, "out of memory");
    if (!rc && mr_csv_need(in, col, &c, e)) rc = mr_err_wrap(e, "--user-column");
    while (!rc && (max_rows <= 0 || i < max_rows) && i < n && (rc = mr_csv_next(in, e)) == 1) {
        g[i++] = idhash_bytes(mr_csv_cell(in, c), mr_csv_cell_len(in, c), 0);
        rc = 0;
    }
    mr_csv_close(in);
    if (!rc && i != n)
        rc = mr_err_set(e, MR_EINTERNAL, "%s: %ld rows for the user column, %ld for the data", path,
                        i, n);
    if (rc < 0) {
        free(g);
        return rc;
    }
    *out = g;
    return MR_OK;
}

/* NULL when w's weights fit m's layout exactly, else what differs. */
static const char *init_mismatch(const moe_model *m, const moe_model *w) {
    static char why[160];
    if (w->net->n_tensors != m->net->n_tensors || w->net->n_params != m->net->n_params)
        return "architecture";
    for (int i = 0; i < m->net->n_tensors; i++) {
        const moe_tensor *a = &m->net->tensors[i], *b = &w->net->tensors[i];
        if (strcmp(a->name, b->name) || a->shape[0] != b->shape[0] || a->shape[1] != b->shape[1]) {
            snprintf(why, sizeof why, "tensor '%s'", a->name);
            return why;
        }
    }
    if (w->n_tables != m->n_tables) return "number of tables";
    for (int i = 0; i < m->n_tables; i++)
        if (strcmp(m->tables[i].name, w->tables[i].name) ||
            m->tables[i].rows != w->tables[i].rows || m->tables[i].dim != w->tables[i].dim ||
            m->tables[i].kind != w->tables[i].kind || m->tables[i].seed != w->tables[i].seed ||
            m->tables[i].seed2 != w->tables[i].seed2) {
            snprintf(why, sizeof why, "table '%s' (name, size or hashing)", m->tables[i].name);
            return why;
        }
    return NULL;
}

static void print_metrics(const moe_model *m, const train_cli *c, const char *dir, long ntr,
                          long nva, const moe_train_result *r) {
    json_t *tasks = json_object();
    for (int k = 0; k < m->n_tasks; k++) {
        /* no validation rows (--val-frac 0): no metric, null rather than a made-up 0 */
        json_t *t = m->tasks[k].kind == MOE_TASK_BINARY
                        ? json_pack("{s:o, s:o, s:I}", "auc",
                                    nva ? json_real(r->best.auc[k]) : json_null(), "logloss",
                                    nva ? json_real(r->best.logloss[k]) : json_null(), "count",
                                    (json_int_t)r->best.count[k])
                        : json_pack("{s:o, s:I}", "mse",
                                    nva ? json_real(r->best.mse[k]) : json_null(), "count",
                                    (json_int_t)r->best.count[k]);
        json_object_set_new(tasks, m->tasks[k].name, t);
    }
    json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:i, s:i, s:f, s:o, s:f, s:f, s:I, s:o}",
                          "model_dir", dir, "arch", moe_arch_kind_name(m->net->arch.kind),
                          "train_rows", (json_int_t)ntr, "val_rows", (json_int_t)nva, "epochs",
                          r->epochs_run, "best_epoch", r->best_epoch, "train_loss", r->train_loss,
                          "val_loss", nva ? json_real(r->best.loss) : json_null(), "samples_per_s",
                          r->samples_per_s, "active_expert_fraction", r->best.active_fraction,
                          "seed", (json_int_t)c->o.seed, "tasks", tasks);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    printf("%s\n", s);
    free(s);
    json_decref(o);
}

static int train_main(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    train_cli c = {.fit_numeric = 1, .val_frac = 0.1, .version = -1};
    snprintf(c.split, sizeof c.split, "random");
    snprintf(c.user_col, sizeof c.user_col, "user_id");
    moe_train_defaults(&c.o);
    sdim_csv_opts_init(&c.sdim);
    c.o.progress = 1;
    /* a first pass finds --model-json so its "train" section can be read
     * before the command line overrides it */
    int rc = parse_args(&c, argc, argv);
    if (rc) return rc;
    mr_err e = {0};
    char *text = mr_read_file(c.model_json, MOE_JSON_MAX, NULL, &e);
    if (!text) {
        fprintf(stderr, "moerec train: %s\n", e.msg);
        return 1;
    }
    moe_model *m = NULL;
    moe_dataset *d = NULL;
    long *tr = NULL, *va = NULL, ntr = 0, nva = 0;
    int status = 1;
    uint64_t init_seed = c.o.seed;
    if (moe_model_from_json(&m, text, c.o.seed, &e)) goto fail;
    if (m->train_json) {
        train_cli file = c;
        moe_train_defaults(&file.o);
        file.o.progress = c.o.progress;
        if (opt_json(&file, m->train_json)) goto out;
        c = file;
        if ((rc = parse_args(&c, argc, argv))) { /* the command line wins */
            status = rc;
            goto out;
        }
        if (c.o.seed != init_seed) { /* train.seed seeds the initialisation too, as --seed does */
            moe_model_free(m);
            m = NULL;
            if (moe_model_from_json(&m, text, c.o.seed, &e)) goto fail;
        }
    }
    for (int r = 0; r < c.n_rules; r++) /* in command-line order: a later rule for a task wins */
        if (moe_model_label_rule(m, c.rule_threshold[r] ? "--label-threshold" : "--label-positive",
                                 c.rule[r], c.rule_threshold[r], &e)) {
            fprintf(stderr, "moerec train: %s (see --help)\n", e.msg);
            status = 2;
            goto out;
        }
    if (c.init) {
        moe_model *w = NULL;
        if (moe_model_load(&w, c.init, &e)) goto fail;
        const char *diff = init_mismatch(m, w);
        if (diff) {
            fprintf(stderr, "moerec train: --init %s does not match --model-json: %s\n", c.init,
                    diff);
            moe_model_free(w);
            goto out;
        }
        /* keep this model.json's schema, tasks and train options; take the weights */
        memcpy(m->net->params, w->net->params, sizeof(float) * (size_t)m->net->n_params);
        for (int i = 0; i < m->n_tables; i++)
            memcpy(m->tables[i].data, w->tables[i].data,
                   sizeof(float) * (size_t)(m->tables[i].rows * m->tables[i].dim));
        moe_model_free(w);
    }
    /* The output folder first (with its parents): a bad --out fails before
     * minutes of training, not after. */
    if (mkdir_p(c.out) != 0) {
        fprintf(stderr, "moerec train: --out %s: %s\n", c.out, strerror(errno));
        goto out;
    }
    mr_blas_set_threads(1); /* parallelism comes from the expert/tower pool */
    mr_csv_opts co = cli_csv_opts(c.na);
    if (moe_dataset_read_opts(&d, m, c.data, c.time_col[0] ? c.time_col : NULL, c.max_rows, &co,
                              &e))
        goto fail;
    c.sdim.n_actions = sdim_model_actions(m, c.sdim.actions);
    if (c.sdim.events_path && sdim_join_csv(d, c.data, c.max_rows, &c.sdim, &e)) goto fail;
    if (c.val_data) { /* every --data row trains; the --val-data rows validate */
        moe_dataset *dv = NULL;
        long n0 = d->n;
        int vrc = moe_dataset_read_opts(&dv, m, c.val_data, c.time_col[0] ? c.time_col : NULL, 0,
                                        &co, &e);
        if (!vrc && c.sdim.events_path) vrc = sdim_join_csv(dv, c.val_data, 0, &c.sdim, &e);
        if (!vrc) vrc = moe_dataset_append(d, dv, &e);
        moe_dataset_free(dv);
        if (vrc) {
            mr_err_wrap(&e, "--val-data %s", c.val_data);
            goto fail;
        }
        tr = malloc(sizeof *tr * (size_t)n0);
        va = malloc(sizeof *va * (size_t)(d->n - n0));
        if (!tr || !va) {
            mr_err_set(&e, MR_ENOMEM, "out of memory");
            goto fail;
        }
        for (long i = 0; i < d->n; i++) {
            if (i < n0) tr[ntr++] = i;
            else va[nva++] = i;
        }
    } else if (!strcmp(c.split, "user-time")) {
        uint64_t *groups = NULL;
        if (read_groups(c.data, c.user_col, d->n, c.max_rows, c.na, &groups, &e)) goto fail;
        int src = moe_dataset_split_groups(d, groups, c.val_frac, &tr, &ntr, &va, &nva, &e);
        free(groups);
        if (src) goto fail;
    } else if (moe_dataset_split(d, c.val_frac, !strcmp(c.split, "time"), c.o.seed, &tr, &ntr, &va,
                                 &nva, &e))
        goto fail;
    if (c.fit_numeric) moe_dataset_fit_numeric(d, m, tr, ntr);
    if (moe_model_maps_missing(m) && build_mappings(&c, m, d, tr, ntr, &e)) goto fail;
    fprintf(stderr,
            "moerec train: %ld rows (%ld train, %ld validation), %s, %ld parameters + %d tables\n",
            d->n, ntr, nva, moe_arch_kind_name(m->net->arch.kind), m->net->n_params, m->n_tables);
    moe_train_result res;
    if (moe_train(m, d, tr, ntr, va, nva, &c.o, &res, &e)) goto fail;
    char dir[4096], latest[4096];
    int version = c.version;
    if (version < 0) {
        mr_err e2;
        version = 1;
        if (moe_model_latest_version(c.out, latest, sizeof latest, &e2) == 0) {
            const char *slash = strrchr(latest, '/');
            version = atoi(slash ? slash + 1 : latest) + 1;
        }
    }
    snprintf(dir, sizeof dir, "%s/%d", c.out, version);
    if (moe_model_save(m, dir, &e)) goto fail;
    print_metrics(m, &c, dir, ntr, nva, &res);
    status = 0;
    goto out;
fail:
    fprintf(stderr, "moerec train: %s\n", e.msg);
out:
    free(text);
    free(tr);
    free(va);
    moe_dataset_free(d);
    moe_model_free(m);
    return status;
}

MR_COMMAND(cmd_train, "train", "train the multi-task MoE ranker from CSV/TSV (model.json schema)",
           train_main)

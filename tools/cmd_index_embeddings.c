/* cmd_index_embeddings.c — `moerec index embeddings`: user and item vectors
 * from an interaction log by BPR matrix factorisation (moe/bpr.h), or
 * imported from a .npy matrix (common/npy.h) or a CSV (id,v0,v1,...), written
 * as the items file `moerec index retrievers` reads (id, e0..e{d-1}), a
 * users file of the same layout, and optionally the store's item table
 * (the vectors Recommend's query, SDIM and the retrievers use).
 *
 * Every row of the log is one positive (user, item); repeated pairs count
 * once per row. With --test, a held-out log (e.g. each user's latest
 * ratings) is scored: Recall@20 over all items except the user's training
 * items, the graphhash benchmark's definition.
 */
#include <errno.h>
#include <getopt.h>
#include <float.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/atomic_file.h"
#include "common/clock.h"
#include "common/csv.h"
#include "common/npy.h"
#include "common/tensor.h"
#include "common/threadpool.h"
#include "hashing/u64map.h"
#include "index/store/store.h"
#include "moe/bpr.h"
#include "server/backend.h"
#include "tools/cli.h"
#include "tools/index_features.h"

#define EX_IMPORT_MAX_DIM 4096

typedef struct ex_opts {
    const char *log, *test, *items_out, *users_out, *store_dir, *table;
    const char *user_col, *item_col;
    const char *import, *import_ids, *import_users, *import_user_ids; /* --import*: vectors given */
    const char *train_flag; /* a training-only flag given (refused with --import) */
    int threads, quiet;
    bpr_opts b;
    char na[CLI_NA_MAX]; /* --na, "" = the reader's default */
} ex_opts;

/* Dense ids in order of first appearance, with their text. */
typedef struct ex_ids {
    u64map map;
    char **text;
    int n, cap;
} ex_ids;

static int ex_intern(ex_ids *d, const char *s, int add) {
    uint64_t k = mr_api_id(s);
    uint32_t v = u64map_get(&d->map, k);
    if (v != U64MAP_NONE || !add) return v == U64MAP_NONE ? -1 : (int)v;
    if (d->n == d->cap) {
        int cap = d->cap ? 2 * d->cap : 1024;
        char **t = realloc(d->text, sizeof *t * (size_t)cap);
        if (!t) return -2;
        d->text = t;
        d->cap = cap;
    }
    if (!(d->text[d->n] = strdup(s)) || u64map_put(&d->map, k, (uint32_t)d->n)) return -2;
    return d->n++;
}

static void ex_ids_free(ex_ids *d) {
    for (int i = 0; i < d->n; i++) free(d->text[i]);
    free(d->text);
    u64map_free(&d->map);
}

typedef struct ex_pairs {
    int32_t *u, *i;
    long n, cap;
} ex_pairs;

/* Read (user, item) pairs of path; unknown ids are added when add; else a
 * row of an unknown user is skipped and an unknown item kept as -1. */
static int ex_read(const ex_opts *o, const char *path, ex_ids *us, ex_ids *is, int add, ex_pairs *p,
                   long *skipped, mr_err *e) {
    mr_csv *l = NULL;
    mr_csv_opts co = cli_csv_opts(o->na);
    int rc = mr_csv_open(&l, path, &co, e), uc = -1, ic = -1;
    if (!rc) rc = mr_csv_need(l, o->user_col, &uc, e);
    if (!rc) rc = mr_csv_need(l, o->item_col, &ic, e);
    while (!rc && (rc = mr_csv_next(l, e)) == 1) {
        const char *user = mr_csv_cell(l, uc), *item = mr_csv_cell(l, ic);
        if (!user[0] || !item[0]) {
            rc = mr_err_set(e, MR_EINVAL, "%s:%ld: empty user or item id", path, mr_csv_line(l));
            break;
        }
        int u = ex_intern(us, user, add), i = ex_intern(is, item, add);
        if (u == -2 || i == -2) {
            rc = mr_err_set(e, MR_ENOMEM, "out of memory");
            break;
        }
        if (u < 0 || (i < 0 && add)) { /* a test row of a user never seen in training */
            (*skipped)++;
            rc = 0;
            continue;
        }
        /* a test item never seen in training stays, as -1: a miss in Recall's denominator */
        if (p->n == p->cap) {
            long cap = p->cap ? 2 * p->cap : 65536;
            int32_t *a = realloc(p->u, sizeof *a * (size_t)cap),
                    *b = a ? realloc(p->i, sizeof *b * (size_t)cap) : NULL;
            if (a) p->u = a;
            if (!b) {
                rc = mr_err_set(e, MR_ENOMEM, "out of memory");
                break;
            }
            p->i = b;
            p->cap = cap;
        }
        p->u[p->n] = u;
        p->i[p->n++] = i;
        rc = 0;
    }
    mr_csv_close(l);
    return rc < 0 ? rc : MR_OK;
}

/* CSR of pairs per user. */
static int ex_csr(const ex_pairs *p, int nu, int64_t **off, int32_t **items) {
    *off = calloc((size_t)nu + 1, sizeof **off);
    *items = malloc(sizeof **items * (size_t)(p->n ? p->n : 1));
    if (!*off || !*items) return -1;
    for (long k = 0; k < p->n; k++) (*off)[p->u[k] + 1]++;
    for (int u = 0; u < nu; u++) (*off)[u + 1] += (*off)[u];
    int64_t *pos = malloc(sizeof *pos * ((size_t)nu + 1));
    if (!pos) return -1;
    memcpy(pos, *off, sizeof *pos * ((size_t)nu + 1));
    for (long k = 0; k < p->n; k++) (*items)[pos[p->u[k]]++] = p->i[k];
    free(pos);
    return 0;
}

/* id,e0..e{dim-1} rows, atomically (common/atomic_file.h). */
static int ex_write(const char *path, const char *idname, const ex_ids *ids, const float *X,
                    int dim, mr_err *e) {
    mr_afile af;
    int rc = mr_afile_open(&af, path, e);
    if (rc) return rc;
    mr_csv_put_cell(af.f, idname, ',');
    for (int c = 0; c < dim; c++) fprintf(af.f, ",e%d", c);
    fputc('\n', af.f);
    for (int i = 0; i < ids->n; i++) {
        mr_csv_put_cell(af.f, ids->text[i], ',');
        for (int c = 0; c < dim; c++) fprintf(af.f, ",%.9g", (double)X[(size_t)i * dim + c]);
        fputc('\n', af.f);
    }
    return mr_afile_commit(&af, e);
}

/* Item vectors into the store's table (created fp32 when absent). */
static int ex_store(const ex_opts *o, const ex_ids *is, const float *V, mr_err *e) {
    store_config cfg;
    store_config_init(&cfg);
    mr_store *st = NULL;
    int rc = store_open(&st, o->store_dir, &cfg, e);
    if (rc) return mr_err_wrap(e, "--store %s", o->store_dir);
    mr_emb_table *t = emb_store_table(st, o->table, NULL);
    if (!t && (rc = emb_table_create(st, o->table, (uint32_t)o->b.dim, EMB_FP32, 0, e))) goto out;
    if (!t && !(t = emb_store_table(st, o->table, e))) {
        rc = MR_ENOTFOUND;
        goto out;
    }
    emb_table_info info;
    emb_table_get_info(t, &info);
    if ((int)info.dim != o->b.dim) {
        rc = mr_err_set(e, MR_EINVAL, "--store: table '%s' has dim %u, the vectors %d", o->table,
                        info.dim, o->b.dim);
        goto out;
    }
    uint64_t *ids = malloc(sizeof *ids * (size_t)is->n);
    if (!ids) {
        rc = mr_err_set(e, MR_ENOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < is->n; i++) ids[i] = mr_api_id(is->text[i]);
    for (int b = 0; b < is->n && !rc; b += 4096) {
        int nb = is->n - b < 4096 ? is->n - b : 4096;
        rc = emb_store_put(st, t, ids + b, (size_t)nb, V + (size_t)b * o->b.dim,
                           (size_t)nb * o->b.dim, e);
    }
    free(ids);
out:
    store_close(st);
    return rc;
}

/* Intern id (text) as vector row ids->n; a repeated id is an error. */
static int ex_import_id(ex_ids *ids, const char *id, const char *where, long line, mr_err *e) {
    if (!id[0]) return mr_err_set(e, MR_EINVAL, "%s:%ld: empty id", where, line);
    int before = ids->n, k = ex_intern(ids, id, 1);
    if (k == -2) return mr_err_set(e, MR_ENOMEM, "out of memory");
    if (k < before)
        return mr_err_set(e, MR_EINVAL, "%s:%ld: id '%s' repeated (first on row %d)", where, line,
                          id, k + 1);
    return MR_OK;
}

/* The ids of a .npy matrix: the first column of ids_path (a CSV with a
 * header line), one row per matrix row. */
static int ex_import_npy_ids(const char *ids_path, const char *na, ex_ids *ids, int64_t rows,
                             mr_err *e) {
    mr_csv *l = NULL;
    mr_csv_opts co = cli_csv_opts(na);
    int rc = mr_csv_open(&l, ids_path, &co, e);
    while (!rc && (rc = mr_csv_next(l, e)) == 1) {
        if (ids->n == rows) {
            rc = mr_err_set(e, MR_EINVAL, "%s: more ids than the matrix's %lld rows", ids_path,
                            (long long)rows);
            break;
        }
        rc = ex_import_id(ids, mr_csv_cell(l, 0), ids_path, mr_csv_line(l), e);
    }
    mr_csv_close(l);
    if (rc < 0) return rc;
    if (ids->n != rows)
        return mr_err_set(e, MR_EINVAL, "%s: %d ids for the matrix's %lld rows", ids_path, ids->n,
                          (long long)rows);
    return MR_OK;
}

/* Vectors of path (.npy when it starts with the .npy magic, else CSV:
 * header line, the id first, then one column per component) into ids (in
 * file order) and *X (ids->n, *dim). */
static int ex_import(const char *flag, const char *path, const char *ids_path, const char *na,
                     ex_ids *ids, float **X, int *dim, mr_err *e) {
    char magic[6] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return mr_err_set(e, MR_ENOTFOUND, "%s %s: %s", flag, path, strerror(errno));
    size_t got = fread(magic, 1, sizeof magic, f);
    fclose(f);
    int npy = got == 6 && !memcmp(magic, "\x93NUMPY", 6), rc;
    if (npy) {
        int64_t rows = 0, cols = 0;
        float *d = NULL;
        if (!ids_path)
            return mr_err_set(e, MR_EINVAL, "%s %s is .npy: its ids need %s-ids FILE", flag, path,
                              flag);
        if ((rc = mr_npy_read_f32(path, &d, &rows, &cols, e))) return rc;
        if (cols > EX_IMPORT_MAX_DIM || rows > INT32_MAX) {
            free(d);
            return mr_err_set(e, MR_EINVAL, "%s: shape (%lld, %lld): at most %d columns", path,
                              (long long)rows, (long long)cols, EX_IMPORT_MAX_DIM);
        }
        if ((rc = ex_import_npy_ids(ids_path, na, ids, rows, e))) {
            free(d);
            return rc;
        }
        *X = d;
        *dim = (int)cols;
        return MR_OK;
    }
    if (ids_path)
        return mr_err_set(e, MR_EINVAL, "%s %s is CSV (ids in its first column): no %s-ids", flag,
                          path, flag);
    mr_csv_opts co = cli_csv_opts(na);
    co.max_cols = EX_IMPORT_MAX_DIM + 1;
    mr_csv *l = NULL;
    if ((rc = mr_csv_open(&l, path, &co, e))) return rc;
    int d = mr_csv_ncols(l) - 1;
    float *v = NULL;
    size_t cap = 0;
    if (d < 1)
        rc = mr_err_set(e, MR_EINVAL, "%s: no vector columns (the id, then v0, v1, ...)", path);
    while (!rc && (rc = mr_csv_next(l, e)) == 1) {
        if ((size_t)(ids->n + 1) * (size_t)d > cap) {
            size_t nc = cap ? 2 * cap : (size_t)d * 1024;
            float *w = realloc(v, sizeof *w * nc);
            if (!w) {
                rc = mr_err_set(e, MR_ENOMEM, "%s: out of memory", path);
                break;
            }
            v = w;
            cap = nc;
        }
        float *row = v + (size_t)ids->n * (size_t)d;
        for (int c = 0; c < d && rc >= 0; c++) {
            double x = 0;
            if ((rc = mr_csv_double(l, c + 1, &x, e)) == 1)
                rc = mr_err_set(e, MR_EINVAL,
                                "%s:%ld: column '%s' is missing (every component is needed)", path,
                                mr_csv_line(l), mr_csv_header(l, c + 1));
            else if (rc == 0 && fabs(x) > FLT_MAX)
                rc = mr_err_set(e, MR_EINVAL, "%s:%ld: column '%s': %g is not a float", path,
                                mr_csv_line(l), mr_csv_header(l, c + 1), x);
            row[c] = (float)x;
        }
        if (rc >= 0) rc = ex_import_id(ids, mr_csv_cell(l, 0), path, mr_csv_line(l), e);
    }
    mr_csv_close(l);
    if (rc >= 0 && !ids->n) rc = mr_err_set(e, MR_EINVAL, "%s: no data rows", path);
    if (rc < 0) {
        free(v);
        return rc;
    }
    *X = v;
    *dim = d;
    return MR_OK;
}

static void ex_usage(FILE *f) {
    fprintf(
        f,
        "usage: moerec index embeddings --log FILE --items-out FILE [options]\n\n"
        "User and item vectors by BPR matrix factorisation (every log row is one positive;\n"
        "one uniform negative per positive; seeded, all cores, deterministic for any thread\n"
        "count). Writes FILE with columns <item column>,e0..e{dim-1} (what `moerec index\n"
        "retrievers --items FILE --id-column <item column>` reads).\n\n"
        "  --log FILE            interactions, CSV with a header line\n"
        "  --user-column NAME    (userId)\n"
        "  --item-column NAME    (movieId)\n"
        "  --items-out FILE      item vectors\n"
        "  --users-out FILE      user vectors (same layout, the user column first)\n"
        "  --store DIR           also write the item vectors into the store's item table\n"
        "  --item-table NAME     that table (item, the server's default item_table; created\n"
        "                        fp32 when absent, else its dim\n"
        "                        must be --dim)\n"
        "  --test FILE           held-out interactions: print Recall@20 (training items\n"
        "                        excluded; an item unseen in training is a miss; rows of\n"
        "                        unseen users are skipped and counted)\n"
        "  --import FILE         import item vectors instead of training: a .npy matrix\n"
        "                        (float32 or float64, 2-D, C order; rows = items) or a CSV\n"
        "                        (header line; the item id, then one column per component)\n"
        "  --import-ids FILE     the .npy's item ids: first column of a CSV with a header\n"
        "                        line, one row per matrix row, in order\n"
        "  --import-users FILE   user vectors for --users-out, same formats\n"
        "  --import-users-ids FILE  the user .npy's ids\n"
        "                        (with --import: no --log, --test, --dim or training flag)\n"
        "  --dim N               vector width (32)\n"
        "  --epochs N            (20)\n"
        "  --lr X                SGD learning rate (0.05)\n"
        "  --reg X               L2 (0.0025)\n"
        "  --seed N              (1)\n"
        "  --threads N           0 = all cores (0)\n"
        "  --na LIST             cells read as missing besides the empty one (NA; e.g.\n"
        "                        NA,null; docs/operations.md, input files)\n"
        "  --quiet               no progress lines\n\n"
        "Example:\n"
        "  moerec index embeddings --log train.csv --items-out items.csv --test test.csv --dim 32\n");
}

static void ex_progress(int epoch, double loss, void *ctx) {
    const ex_opts *o = ctx;
    if (!o->quiet)
        fprintf(stderr, "moerec index embeddings: epoch %d/%d loss %.4f\n", epoch, o->b.epochs,
                loss);
}

static int ex_args(ex_opts *o, int argc, char **argv) {
    enum {
        O_LOG = 256,
        O_TEST,
        O_IOUT,
        O_UOUT,
        O_STORE,
        O_TABLE,
        O_UCOL,
        O_ICOL,
        O_DIM,
        O_EPOCHS,
        O_LR,
        O_REG,
        O_SEED,
        O_THREADS,
        O_QUIET,
        O_NA,
        O_IMP,
        O_IMPIDS,
        O_IMPU,
        O_IMPUIDS
    };
    static const struct option opts[] = {{"log", required_argument, 0, O_LOG},
                                         {"test", required_argument, 0, O_TEST},
                                         {"items-out", required_argument, 0, O_IOUT},
                                         {"users-out", required_argument, 0, O_UOUT},
                                         {"store", required_argument, 0, O_STORE},
                                         {"item-table", required_argument, 0, O_TABLE},
                                         {"user-column", required_argument, 0, O_UCOL},
                                         {"item-column", required_argument, 0, O_ICOL},
                                         {"dim", required_argument, 0, O_DIM},
                                         {"epochs", required_argument, 0, O_EPOCHS},
                                         {"lr", required_argument, 0, O_LR},
                                         {"reg", required_argument, 0, O_REG},
                                         {"seed", required_argument, 0, O_SEED},
                                         {"threads", required_argument, 0, O_THREADS},
                                         {"quiet", no_argument, 0, O_QUIET},
                                         {"na", required_argument, 0, O_NA},
                                         {"import", required_argument, 0, O_IMP},
                                         {"import-ids", required_argument, 0, O_IMPIDS},
                                         {"import-users", required_argument, 0, O_IMPU},
                                         {"import-users-ids", required_argument, 0, O_IMPUIDS},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1;) {
        mr_err e;
        mr_err_clear(&e);
        const char *v = optarg;
        unsigned long long u = 0;
        int rc = 0;
        switch (c) {
        case O_LOG: o->log = v; break;
        case O_TEST: o->test = v; break;
        case O_IOUT: o->items_out = v; break;
        case O_UOUT: o->users_out = v; break;
        case O_STORE: o->store_dir = v; break;
        case O_TABLE: o->table = v; break;
        case O_UCOL: o->user_col = v; break;
        case O_ICOL: o->item_col = v; break;
        case O_IMP: o->import = v; break;
        case O_IMPIDS: o->import_ids = v; break;
        case O_IMPU: o->import_users = v; break;
        case O_IMPUIDS: o->import_user_ids = v; break;
        case O_DIM:
            o->train_flag = "--dim";
            rc = cli_int("--dim", v, 1, 1024, &o->b.dim, &e);
            break;
        case O_EPOCHS:
            o->train_flag = "--epochs";
            rc = cli_int("--epochs", v, 1, 1000000, &o->b.epochs, &e);
            break;
        case O_LR:
            o->train_flag = "--lr";
            rc = cli_float("--lr", v, 1e-12, 1e3, &o->b.lr, &e);
            break;
        case O_REG:
            o->train_flag = "--reg";
            rc = cli_float("--reg", v, 0, 1e3, &o->b.reg, &e);
            break;
        case O_SEED:
            o->train_flag = "--seed";
            if (!(rc = cli_u64("--seed", v, &u, &e))) o->b.seed = u;
            break;
        case O_THREADS:
            o->train_flag = "--threads";
            rc = cli_int("--threads", v, 0, 4096, &o->threads, &e);
            break;
        case O_QUIET: o->quiet = 1; break;
        case O_NA: rc = cli_na("--na", v, o->na, sizeof o->na, &e); break;
        case 'h': ex_usage(stdout); return 3;
        default: rc = cli_getopt_error(c, argv, &e); break;
        }
        if (rc) {
            fprintf(stderr, "moerec index embeddings: %s (see --help)\n", e.msg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "moerec index embeddings: unexpected argument '%s' (see --help)\n",
                argv[optind]);
        return 2;
    }
    if (o->import || o->import_users) {
        const char *clash = o->log ? "--log" : o->test ? "--test" : o->train_flag;
        if (clash) {
            fprintf(stderr,
                    "moerec index embeddings: %s does not apply to imported vectors (--import)\n",
                    clash);
            return 2;
        }
        if (!o->import || (!o->items_out && !o->store_dir) || (o->import_users && !o->users_out) ||
            (o->users_out && !o->import_users) || (o->import_ids && !o->import) ||
            (o->import_user_ids && !o->import_users)) {
            fprintf(
                stderr,
                "moerec index embeddings: --import needs --items-out or --store; --import-users goes "
                "with --users-out; --import-ids / --import-users-ids with their file (see --help)\n");
            return 2;
        }
        return 0;
    }
    if (o->import_ids || o->import_user_ids) {
        fprintf(
            stderr,
            "moerec index embeddings: --import-ids / --import-users-ids need --import / --import-users\n");
        return 2;
    }
    if (!o->log || (!o->items_out && !o->store_dir)) {
        fprintf(
            stderr,
            "moerec index embeddings: --log and --items-out or --store are required (see --help)\n");
        return 2;
    }
    if (o->b.dim < 1 || o->b.dim > 1024 || o->b.epochs < 1 || !(o->b.lr > 0) || !(o->b.reg >= 0) ||
        o->threads < 0) {
        fprintf(stderr,
                "moerec index embeddings: --dim 1..1024, --epochs >= 1, --lr > 0, --reg >= 0, "
                "--threads >= 0\n");
        return 2;
    }
    return 0;
}

int ix_embeddings(int argc, char **argv) {
    ex_opts o = {.user_col = "userId", .item_col = "movieId", .table = "item"};
    bpr_defaults(&o.b);
    int rc = ex_args(&o, argc, argv);
    if (rc) return rc == 3 ? 0 : rc;
    o.b.progress = ex_progress;
    o.b.ctx = &o;
    mr_err e = {0};
    ex_ids us = {0}, is = {0};
    ex_pairs tr = {0}, te = {0};
    float *U = NULL, *V = NULL;
    int64_t *troff = NULL, *teoff = NULL;
    int32_t *tri = NULL, *tei = NULL;
    mr_pool *pool = NULL;
    long skipped = 0;
    int status = 1;
    if (u64map_init(&us.map, 1024) || u64map_init(&is.map, 1024)) goto oom;
    if (o.import) { /* the vectors are given: the same outputs as training writes */
        int udim = 0;
        if ((rc = ex_import("--import", o.import, o.import_ids, o.na, &is, &V, &o.b.dim, &e)))
            goto fail;
        if (o.import_users && (rc = ex_import("--import-users", o.import_users, o.import_user_ids,
                                              o.na, &us, &U, &udim, &e)))
            goto fail;
        if (o.import_users && udim != o.b.dim) {
            mr_err_set(&e, MR_EINVAL, "--import-users %s has %d columns, the item vectors %d",
                       o.import_users, udim, o.b.dim);
            goto fail;
        }
        if (o.items_out && (rc = ex_write(o.items_out, o.item_col, &is, V, o.b.dim, &e))) goto fail;
        if (o.users_out && (rc = ex_write(o.users_out, o.user_col, &us, U, o.b.dim, &e))) goto fail;
        if (o.store_dir && (rc = ex_store(&o, &is, V, &e))) goto fail;
        ix_print_json(json_pack("{s:s, s:i, s:i, s:i}", "imported", o.import, "items", is.n,
                                "users", us.n, "dim", o.b.dim),
                      0);
        status = 0;
        goto out;
    }
    if ((rc = ex_read(&o, o.log, &us, &is, 1, &tr, &skipped, &e))) goto fail;
    if (tr.n == 0 || is.n < 2) {
        mr_err_set(&e, MR_EINVAL, "%s: %ld interactions over %d items (at least 1 and 2)", o.log,
                   tr.n, is.n);
        goto fail;
    }
    U = mr_floats_alloc((size_t)us.n * (size_t)o.b.dim);
    V = mr_floats_alloc((size_t)is.n * (size_t)o.b.dim);
    if (!U || !V || !(pool = mr_pool_create(o.threads))) goto oom;
    mr_blas_set_threads(1);
    uint64_t t0 = mr_now_ns();
    if ((rc = bpr_train(tr.u, tr.i, tr.n, us.n, is.n, &o.b, pool, U, V, &e))) goto fail;
    double secs = (double)(mr_now_ns() - t0) / 1e9;
    if (o.items_out && (rc = ex_write(o.items_out, o.item_col, &is, V, o.b.dim, &e))) goto fail;
    if (o.users_out && (rc = ex_write(o.users_out, o.user_col, &us, U, o.b.dim, &e))) goto fail;
    if (o.store_dir && (rc = ex_store(&o, &is, V, &e))) goto fail;
    json_t *sum = json_pack("{s:s, s:I, s:i, s:i, s:i, s:i, s:I, s:f}", "log", o.log,
                            "interactions", (json_int_t)tr.n, "users", us.n, "items", is.n, "dim",
                            o.b.dim, "epochs", o.b.epochs, "seed", (json_int_t)o.b.seed, "seconds",
                            secs);
    if (o.test) {
        long skip_test = 0;
        if ((rc = ex_read(&o, o.test, &us, &is, 0, &te, &skip_test, &e)) ||
            ex_csr(&tr, us.n, &troff, &tri) || ex_csr(&te, us.n, &teoff, &tei)) {
            if (!rc) mr_err_set(&e, MR_ENOMEM, "out of memory");
            json_decref(sum);
            goto fail;
        }
        double r20 = bpr_recall_at(U, V, us.n, is.n, o.b.dim, 20, troff, tri, teoff, tei);
        json_object_set_new(sum, "recall20", json_real(r20));
        json_object_set_new(sum, "test_interactions", json_integer((json_int_t)te.n));
        json_object_set_new(sum, "test_skipped", json_integer((json_int_t)skip_test));
    }
    ix_print_json(sum, 0); /* full double precision */
    status = 0;
    goto out;
oom:
    mr_err_set(&e, MR_ENOMEM, "out of memory");
fail:
    fprintf(stderr, "moerec index embeddings: %s\n", e.msg);
out:
    mr_pool_free(pool);
    mr_floats_free(U);
    mr_floats_free(V);
    free(tr.u);
    free(tr.i);
    free(te.u);
    free(te.i);
    free(troff);
    free(teoff);
    free(tri);
    free(tei);
    ex_ids_free(&us);
    ex_ids_free(&is);
    return status;
}

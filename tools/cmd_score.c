/* cmd_score.c — `moerec score`: offline batch scoring of a CSV/TSV file.
 *
 * Streams the input in chunks (constant memory whatever the file size):
 * each chunk's rows are parsed into a scorer batch — categorical columns
 * named by the model's features (multi-valued with the feature's
 * separator), numeric columns normalised by the model — and scored in one
 * pass. Chunks are scored on a thread pool, one scorer per worker, and
 * written in input order, so the output does not depend on --threads.
 * Output: the kept input columns, one column per task, then `score` (the
 * model's weighted combination). A summary JSON line goes to stderr (stdout
 * may be the data).
 */
#include <errno.h>
#include <getopt.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/atomic_file.h"
#include "common/clock.h"
#include "index/store/emb_codec.h"
#include "common/csv.h"
#include "common/progress.h"
#include "common/tensor.h"
#include "common/threadpool.h"
#include "moe/metrics.h"
#include "moe/model.h"
#include "moe/scorer.h"
#include "tools/cli.h"
#include "tools/command.h"

#define MAX_COLS 512

typedef struct row {
    char *line; /* owned copy of the cells, col[] point into it */
    size_t cap;
    long lineno; /* input line the record starts on            */
    int ncols;
    char *col[MAX_COLS];
} row;

typedef struct chunk {
    row *rows;
    int n, cap;
    float *tasks, *score; /* (n, T), (n) */
    int rc;
    char err[MR_ERR_MSG_MAX];
} chunk;

typedef struct job {
    const moe_model *m;
    moe_scorer *scorer;
    chunk *c;
    const int *cat_col, *num_col; /* input column of each feature, -1 = absent */
    const mr_csv *in;             /* for the numeric rule and error positions   */
} job;

static void usage(FILE *f) {
    fprintf(f,
            "usage: moerec score --model DIR --data FILE [--out FILE] [options]\n\n"
            "Score every row of a CSV/TSV file (header line; columns named as the model's\n"
            "features) with a trained model, streaming, and write the kept columns, one\n"
            "column per task and the final score.\n\n"
            "  --model DIR     a model version directory, or a model root (newest version)\n"
            "  --data FILE     input CSV/TSV ('-' = stdin; TSV for .tsv/.tab names, or when\n"
            "                  the header has a tab)\n"
            "  --out FILE      output CSV ('-' = stdout, the default); written to a\n"
            "                  temporary beside FILE and renamed over it when complete\n"
            "  --keep COLS     input columns copied to the output, comma-separated\n"
            "                  (default: user_id,item_id when present)\n"
            "  --allow-missing COLS  feature columns that may be absent from the input,\n"
            "                  comma-separated, or 'all' (they take the model's default:\n"
            "                  the fill value, an empty bag); any other absent feature\n"
            "                  column is an error\n"
            "  --auc           also read each task's label column (model.json's tasks[].label)\n"
            "                  and add per-task test metrics to the summary: \"auc\" (binary\n"
            "                  tasks; null when a class is absent) or \"mse\" (regression),\n"
            "                  and \"labelled\" rows; labels follow train's rules (a missing\n"
            "                  cell is no label; a text label needs a positive rule). Holds\n"
            "                  two floats per row and task in memory\n"
            "%s"
            "  --batch N       rows per scorer batch (4096)\n"
            "  --threads N     scoring threads, 0 = all cores (0)\n"
            "  --na LIST       cells of numeric columns read as missing besides the empty\n"
            "                  one, comma-separated (NA; e.g. NA,null)\n"
            "  --quiet         no progress line\n\n"
            "Input rules are train's (docs/operations.md, input files): RFC 4180 quotes (a\n"
            "quoted cell may span lines), UTF-8 BOM and CRLF accepted, a record is at most\n"
            "1 MiB. Missing numeric values (empty, or NA / the --na list) take the model's\n"
            "fill value; a numeric cell that\n"
            "is not a number is an error naming file, line and column; empty categorical\n"
            "cells are empty bags; a multi-valued cell has at most 64 values. Kept cells\n"
            "are re-quoted as needed. A summary JSON line goes to stderr.\n"
            "Exit: 0 ok, 1 failure, 2 usage.\n\n"
            "Example:\n"
            "  moerec score --model models/demo --data rows.csv --out scored.csv --threads 4\n",
            cli_label_usage);
}

/* Copy the reader's current record into r (the reader reuses its buffer). */
static int row_take(row *r, const mr_csv *c) {
    int n = mr_csv_ncols(c);
    size_t need = 0;
    for (int k = 0; k < n; k++) need += mr_csv_cell_len(c, k) + 1;
    if (need > r->cap) {
        char *l = realloc(r->line, need);
        if (!l) return -1;
        r->line = l;
        r->cap = need;
    }
    char *w = r->line;
    for (int k = 0; k < n; k++) {
        size_t len = mr_csv_cell_len(c, k);
        memcpy(w, mr_csv_cell(c, k), len + 1);
        r->col[k] = w;
        w += len + 1;
    }
    r->ncols = n;
    r->lineno = mr_csv_line(c);
    return 0;
}

static void score_chunk(void *arg) {
    job *j = arg;
    chunk *c = j->c;
    const moe_model *m = j->m;
    mr_err e;
    mr_err_clear(&e);
    c->rc = moe_scorer_begin(j->scorer, c->n, &e);
    for (int i = 0; !c->rc && i < c->n; i++) {
        row *r = &c->rows[i];
        for (int f = 0; !c->rc && f < m->n_cat; f++) {
            int col = j->cat_col[f];
            if (col < 0 || col >= r->ncols || !r->col[col][0]) continue;
            const char *vals[64];
            int nv = 0;
            char *cell = r->col[col], sepc = m->cat[f].sep;
            size_t len = strlen(cell);
            if (sepc) { /* split in place; the separators are put back below */
                char *s = cell, *t;
                for (;;) {
                    t = strchr(s, sepc);
                    if (t) *t = '\0';
                    if (*s && nv == 64) {
                        c->rc = mr_err_set(&e, MR_EINVAL,
                                           "%s:%ld: column '%s' has more than 64 values",
                                           mr_csv_name(j->in), r->lineno, m->cat[f].column);
                        break;
                    }
                    if (*s) vals[nv++] = s;
                    if (!t) break;
                    s = t + 1;
                }
            } else {
                vals[nv++] = cell;
            }
            if (!c->rc && (c->rc = moe_scorer_set_cat(j->scorer, i, f, vals, NULL, nv, &e)))
                mr_err_wrap(&e, "%s:%ld", mr_csv_name(j->in), r->lineno);
            for (size_t k = 0; sepc && k < len; k++) /* the cell may be a kept column */
                if (!cell[k]) cell[k] = sepc;
        }
        for (int f = 0; !c->rc && f < m->n_num; f++) {
            int col = j->num_col[f];
            if (col < 0 || col >= r->ncols) continue;
            double v; /* the reader's rule: missing -> the fill; not a finite number -> error */
            int got = mr_csv_double_at(j->in, r->lineno, col, r->col[col], &v, &e);
            if (got < 0 || (got == 0 && fabs(v) > FLT_MAX)) {
                c->rc = got < 0
                            ? got
                            : mr_err_set(&e, MR_EINVAL, "%s:%ld: column '%s': %g is not a float",
                                         mr_csv_name(j->in), r->lineno, m->num[f].column, v);
                break;
            }
            if (got == 0) c->rc = moe_scorer_set_num(j->scorer, i, f, (float)v, &e);
        }
    }
    if (!c->rc) c->rc = moe_scorer_run(j->scorer, c->tasks, c->score, &e);
    if (c->rc) snprintf(c->err, sizeof c->err, "%s", e.msg);
}

/* Labels and predictions of --auc, (n, T) row-major. */
typedef struct evalbuf {
    float *y, *mask, *pred;
    long n, cap;
} evalbuf;

/* The labels of chunk c's rows (label_col per task) appended to b with
 * their predictions. */
static int eval_take(evalbuf *b, const moe_model *m, const mr_csv *in, const int *label_col,
                     const chunk *c, mr_err *e) {
    int T = m->n_tasks;
    if (b->n + c->n > b->cap) {
        long cap = b->cap ? b->cap : 4096;
        while (cap < b->n + c->n) cap *= 2;
        float *y = realloc(b->y, sizeof *y * (size_t)(cap * T));
        if (y) b->y = y;
        float *mk = y ? realloc(b->mask, sizeof *mk * (size_t)(cap * T)) : NULL;
        if (mk) b->mask = mk;
        float *p = mk ? realloc(b->pred, sizeof *p * (size_t)(cap * T)) : NULL;
        if (!p) return mr_err_set(e, MR_ENOMEM, "--auc: out of memory");
        b->pred = p;
        b->cap = cap;
    }
    for (int i = 0; i < c->n; i++) {
        const row *r = &c->rows[i];
        for (int k = 0; k < T; k++) {
            size_t at = (size_t)(b->n * T + k);
            const char *cell = label_col[k] < r->ncols ? r->col[label_col[k]] : "";
            b->pred[at] = c->tasks[(size_t)i * T + k];
            b->y[at] = 0;
            b->mask[at] = 0;
            if (mr_csv_is_missing(in, cell)) continue; /* no label */
            double v = 0;
            mr_err pe;
            mr_err_clear(&pe);
            int has_num = m->tasks[k].has_positive ||
                          mr_csv_double_at(in, r->lineno, label_col[k], cell, &v, &pe) >= 0;
            if (moe_model_label(m, k, cell, has_num, v, &b->y[at], e)) {
                char why[MR_ERR_MSG_MAX];
                snprintf(why, sizeof why, "%s", e->msg);
                return has_num
                           ? mr_err_set(e, MR_EINVAL, "%s:%ld: %s", mr_csv_name(in), r->lineno, why)
                           : mr_err_set(e, MR_EINVAL, "%s (%s)", pe.msg, why);
            }
            b->mask[at] = 1;
        }
        b->n++;
    }
    return MR_OK;
}

/* "auc" / "mse" and "labelled" per task, as JSON members (", ..."). */
static void eval_print(FILE *f, const moe_model *m, const evalbuf *b) {
    int T = m->n_tasks;
    const char *what[2] = {"auc", "mse"};
    for (int pass = 0; pass < 3; pass++) {
        fprintf(f, ",\"%s\":{", pass < 2 ? what[pass] : "labelled");
        int first = 1;
        for (int k = 0; k < T; k++) {
            int binary = m->tasks[k].kind == MOE_TASK_BINARY;
            if (pass < 2 && binary != (pass == 0)) continue;
            long nl = 0, npos = 0;
            float *y = malloc(sizeof *y * (size_t)(b->n ? b->n : 1)),
                  *mk = malloc(sizeof *mk * (size_t)(b->n ? b->n : 1)),
                  *p = malloc(sizeof *p * (size_t)(b->n ? b->n : 1));
            for (long i = 0; y && mk && p && i < b->n; i++) {
                y[i] = b->y[i * T + k];
                mk[i] = b->mask[i * T + k];
                p[i] = b->pred[i * T + k];
                nl += mk[i] != 0;
                npos += mk[i] != 0 && y[i] != 0;
            }
            fprintf(f, "%s\"%s\":", first ? "" : ",", m->tasks[k].name);
            first = 0;
            double x = !y || !mk || !p ? -1
                       : pass == 2     ? (double)nl
                       : pass == 0     ? (npos > 0 && npos < nl ? moe_auc(p, y, mk, b->n) : -1)
                                       : (nl ? moe_mse(p, y, mk, b->n) : -1);
            if (pass == 2) fprintf(f, "%ld", nl);
            else if (x < 0) fprintf(f, "null");
            else fprintf(f, "%.6f", x);
            free(y);
            free(mk);
            free(p);
        }
        fputc('}', f);
    }
}

/* 1 when column col is in the comma-separated list (or the list is "all"). */
static int listed(const char *list, const char *col) {
    if (!list) return 0;
    if (!strcmp(list, "all")) return 1;
    size_t n = strlen(col);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !strncmp(p, col, n)) return 1;
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

/* Tables with "storage": "store" are served from rows encoded in the
 * store (model.json "encoding"): pass this process's in-memory copy
 * through the same encode/decode, so the file's scores equal the server's
 * (fp16 and int8 round; fp32 is exact either way). */
static int store_tables_as_served(moe_model *m, mr_err *e) {
    for (int t = 0; t < m->n_tables; t++) {
        moe_table *tb = &m->tables[t];
        if (tb->storage != MOE_STORAGE_STORE || tb->encoding == MOE_ENC_FP32) continue;
        emb_encoding enc = (emb_encoding)tb->encoding;
        size_t rb = emb_codec_row_bytes(enc, (uint32_t)tb->dim);
        uint8_t *row = malloc(rb);
        if (!row) return mr_err_set(e, MR_ENOMEM, "out of memory");
        int rc = 0;
        for (long r = 0; !rc && r < tb->rows; r++) {
            float *x = tb->data + r * tb->dim;
            if ((rc = emb_codec_check(enc, x, (uint32_t)tb->dim, e))) {
                mr_err_wrap(e, "table '%s' row %ld (encoding %s)", tb->name, r,
                            moe_encoding_name(tb->encoding));
                break;
            }
            emb_codec_encode(enc, x, (uint32_t)tb->dim, 0, row);
            rc = emb_codec_decode(enc, (uint32_t)tb->dim, row, rb, x, NULL, e);
        }
        free(row);
        if (rc) return rc;
    }
    return 0;
}

static int score_main(int argc, char **argv) {
    const char *model_dir = NULL, *data = NULL, *out_path = "-", *keep = NULL,
               *allow_missing = NULL;
    char na[CLI_NA_MAX] = "";
    int batch = 4096, threads = 0, quiet = 0, auc = 0, n_rules = 0, rule_thr[CLI_MAX_LABEL_RULES];
    const char *rule[CLI_MAX_LABEL_RULES];
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"data", required_argument, 0, 'd'},
                                         {"out", required_argument, 0, 'o'},
                                         {"keep", required_argument, 0, 'k'},
                                         {"allow-missing", required_argument, 0, 'a'},
                                         {"batch", required_argument, 0, 'b'},
                                         {"threads", required_argument, 0, 't'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {"na", required_argument, 0, 'n'},
                                         {"auc", no_argument, 0, 'A'},
                                         {"label-positive", required_argument, 0, 'P'},
                                         {"label-threshold", required_argument, 0, 'T'},
                                         {0, 0, 0, 0}};
    mr_err e;
    mr_err_clear(&e);
    optind = 1;
    opterr = 0;
    for (int o; (o = getopt_long(argc, argv, ":h", opts, NULL)) != -1;) {
        int rc = 0;
        switch (o) {
        case 'm': model_dir = optarg; break;
        case 'd': data = optarg; break;
        case 'o': out_path = optarg; break;
        case 'k': keep = optarg; break;
        case 'a': allow_missing = optarg; break;
        case 'b': rc = cli_int("--batch", optarg, 1, MOE_MAX_BATCH, &batch, &e); break;
        case 't': rc = cli_int("--threads", optarg, 0, 256, &threads, &e); break;
        case 'q': quiet = 1; break;
        case 'n': rc = cli_na("--na", optarg, na, sizeof na, &e); break;
        case 'A': auc = 1; break;
        case 'P':
        case 'T':
            if (n_rules == CLI_MAX_LABEL_RULES)
                rc = mr_err_set(&e, MR_EINVAL, "at most %d label rules", CLI_MAX_LABEL_RULES);
            else {
                rule_thr[n_rules] = o == 'T';
                rule[n_rules++] = optarg;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: rc = cli_getopt_error(o, argv, &e); break;
        }
        if (rc) {
            fprintf(stderr, "moerec score: %s (see --help)\n", e.msg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "moerec score: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (!model_dir || !data) {
        fprintf(stderr, "moerec score: --model and --data are required (see --help)\n");
        return 2;
    }
    if (n_rules && !auc) {
        fprintf(stderr,
                "moerec score: --label-positive and --label-threshold need --auc (see --help)\n");
        return 2;
    }
    moe_model *m = NULL;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", model_dir);
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/model.json", model_dir);
    FILE *pf = fopen(probe, "r");
    if (pf) fclose(pf);
    else if (moe_model_latest_version(model_dir, dir, sizeof dir, &e)) {
        fprintf(stderr, "moerec score: --model %s: %s\n", model_dir, e.msg);
        return 1;
    }
    if (moe_model_load(&m, dir, &e)) {
        fprintf(stderr, "moerec score: %s\n", e.msg);
        return 1;
    }
    for (int r = 0; r < n_rules; r++) /* in command-line order: a later rule for a task wins */
        if (moe_model_label_rule(m, rule_thr[r] ? "--label-threshold" : "--label-positive", rule[r],
                                 rule_thr[r], &e)) {
            fprintf(stderr, "moerec score: %s (see --help)\n", e.msg);
            moe_model_free(m);
            return 2;
        }
    if (store_tables_as_served(m, &e)) {
        fprintf(stderr, "moerec score: %s\n", e.msg);
        moe_model_free(m);
        return 1;
    }
    if (m->extra_dim > 0) {
        fprintf(stderr,
                "moerec score: model '%s' takes an extra input block (extra_dim %d, e.g. "
                "SDIM) that a file cannot carry; score it through the server\n",
                m->name, m->extra_dim);
        moe_model_free(m);
        return 1;
    }
    /* A regular file is written beside the target and renamed over it once
     * complete: a failure never leaves partial output under its name (a
     * device or pipe such as /dev/null is written directly). */
    struct stat ost;
    int to_file = strcmp(out_path, "-") != 0;
    int atomic = to_file && (stat(out_path, &ost) != 0 || S_ISREG(ost.st_mode));
    mr_afile af = {0};
    mr_csv *in = NULL;
    mr_csv_opts copts = cli_csv_opts(na);
    copts.max_cols = MAX_COLS;
    if (mr_csv_open(&in, data, &copts, &e)) {
        fprintf(stderr, "moerec score: %s\n", e.msg);
        moe_model_free(m);
        return 1;
    }
    FILE *out = NULL;
    if (atomic) out = mr_afile_open(&af, out_path, &e) ? NULL : af.f;
    else out = to_file ? fopen(out_path, "w") : stdout;
    int status = 1, nthreads = 0, T = m->n_tasks;
    int cat_col[MOE_MAX_FIELDS], num_col[MOE_MAX_FIELDS], keep_col[MAX_COLS], nkeep = 0, nh = 0;
    int label_col[MOE_MAX_TASKS];
    evalbuf eb = {0};
    mr_pool *pool = NULL;
    chunk *chunks = NULL;
    job *jobs = NULL;
    void **args = NULL;
    long total = 0;
    mr_progress prog;
    uint64_t t0 = mr_now_ns();
    if (!out) {
        fprintf(stderr, "moerec score: %s\n", atomic ? e.msg : strerror(errno));
        goto done;
    }
    nh = mr_csv_ncols(in);
    int used = 0;
    for (int f = 0; f < m->n_cat; f++) {
        cat_col[f] = mr_csv_col(in, m->cat[f].column);
        used += cat_col[f] >= 0;
    }
    for (int f = 0; f < m->n_num; f++) {
        num_col[f] = mr_csv_col(in, m->num[f].column);
        used += num_col[f] >= 0;
    }
    if (!used) {
        fprintf(stderr, "moerec score: no column of %s names a feature of model '%s'\n", data,
                m->name);
        goto done;
    }
    /* a feature column the file lacks would silently score with the
     * schema's defaults: an error unless the user says it may be absent */
    for (int f = 0; f < m->n_cat + m->n_num; f++) {
        int missing = f < m->n_cat ? cat_col[f] < 0 : num_col[f - m->n_cat] < 0;
        const char *col = f < m->n_cat ? m->cat[f].column : m->num[f - m->n_cat].column;
        if (missing && !listed(allow_missing, col)) {
            fprintf(stderr,
                    "moerec score: %s has no column '%s' (a feature of model '%s'); pass "
                    "--allow-missing %s to score with the model's default for it\n",
                    data, col, m->name, col);
            goto done;
        }
    }
    for (int k = 0; auc && k < T; k++)
        if ((label_col[k] = mr_csv_col(in, m->tasks[k].label)) < 0) {
            fprintf(stderr, "moerec score: --auc: %s has no label column '%s' (task '%s')\n", data,
                    m->tasks[k].label, m->tasks[k].name);
            goto done;
        }
    /* kept columns */
    if (keep) {
        char *ks = strdup(keep), *tok, *save = NULL;
        for (tok = strtok_r(ks, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            int k = mr_csv_col(in, tok);
            if (k < 0) {
                fprintf(stderr, "moerec score: --keep: no column '%s' in %s\n", tok, data);
                free(ks);
                goto done;
            }
            keep_col[nkeep++] = k;
        }
        free(ks);
    } else {
        for (int k = 0; k < nh; k++)
            if (!strcmp(mr_csv_header(in, k), "user_id") ||
                !strcmp(mr_csv_header(in, k), "item_id"))
                keep_col[nkeep++] = k;
    }
    for (int k = 0; k < nkeep; k++) {
        mr_csv_put_cell(out, mr_csv_header(in, keep_col[k]), ',');
        fputc(',', out);
    }
    for (int t = 0; t < T; t++) fprintf(out, "%s,", m->tasks[t].name);
    fprintf(out, "score\n");

    mr_blas_set_threads(1); /* parallelism comes from chunks on the pool */
    pool = mr_pool_create(threads);
    nthreads = pool ? mr_pool_size(pool) : 1;
    chunks = calloc((size_t)nthreads, sizeof *chunks);
    jobs = calloc((size_t)nthreads, sizeof *jobs);
    args = calloc((size_t)nthreads, sizeof *args);
    if (!pool || !chunks || !jobs || !args) {
        fprintf(stderr, "moerec score: out of memory\n");
        goto done;
    }
    for (int t = 0; t < nthreads; t++) {
        chunks[t].rows = calloc((size_t)batch, sizeof(row));
        chunks[t].tasks = malloc((size_t)batch * (size_t)T * sizeof(float));
        chunks[t].score = malloc((size_t)batch * sizeof(float));
        if (!chunks[t].rows || !chunks[t].tasks || !chunks[t].score ||
            moe_scorer_create(&jobs[t].scorer, m, &e)) {
            fprintf(stderr, "moerec score: out of memory: %s\n", e.msg);
            goto done;
        }
        jobs[t] = (job){m, jobs[t].scorer, &chunks[t], cat_col, num_col, in};
        args[t] = &jobs[t];
    }
    mr_progress_begin(&prog, "score", "rows", 0, !quiet);
    for (int eof = 0; !eof;) {
        int filled = 0;
        for (int t = 0; t < nthreads && !eof; t++) {
            chunk *c = &chunks[t];
            c->n = 0;
            while (c->n < batch) {
                int got = mr_csv_next(in, &e);
                if (got < 0) {
                    fprintf(stderr, "moerec score: %s\n", e.msg);
                    goto done;
                }
                if (!got) {
                    eof = 1;
                    break;
                }
                if (row_take(&c->rows[c->n], in)) {
                    fprintf(stderr, "moerec score: out of memory\n");
                    goto done;
                }
                c->n++;
            }
            if (c->n) filled = t + 1;
        }
        if (!filled) break;
        mr_pool_run(pool, score_chunk, args, filled);
        for (int t = 0; t < filled; t++) {
            chunk *c = &chunks[t];
            if (c->rc) {
                fprintf(stderr, "moerec score: %s\n", c->err);
                goto done;
            }
            if (auc && eval_take(&eb, m, in, label_col, c, &e)) {
                fprintf(stderr, "moerec score: %s\n", e.msg);
                goto done;
            }
            for (int i = 0; i < c->n; i++) {
                row *r = &c->rows[i];
                for (int k = 0; k < nkeep; k++) {
                    mr_csv_put_cell(out, keep_col[k] < r->ncols ? r->col[keep_col[k]] : "", ',');
                    fputc(',', out);
                }
                for (int tk = 0; tk < T; tk++) fprintf(out, "%.9g,", c->tasks[(size_t)i * T + tk]);
                fprintf(out, "%.9g\n", c->score[i]);
            }
            total += c->n;
        }
        mr_progress_update(&prog, (uint64_t)total, NULL);
    }
    if (fflush(out) != 0 || ferror(out)) {
        fprintf(stderr, "moerec score: writing %s: %s\n", out_path, strerror(errno));
        goto done;
    }
    mr_progress_end(&prog, (uint64_t)total, NULL);
    double secs = (double)(mr_now_ns() - t0) / 1e9;
    fprintf(stderr,
            "{\"command\":\"score\",\"model\":\"%s\",\"rows\":%ld,\"tasks\":%d,\"threads\":%d,"
            "\"seconds\":%.3f,\"rows_per_s\":%.0f",
            dir, total, T, nthreads, secs, secs > 0 ? (double)total / secs : 0.0);
    if (auc) eval_print(stderr, m, &eb);
    fprintf(stderr, "}\n");
    status = 0;
done:
    for (int t = 0; chunks && t < nthreads; t++) {
        for (int i = 0; chunks[t].rows && i < batch; i++) free(chunks[t].rows[i].line);
        free(chunks[t].rows);
        free(chunks[t].tasks);
        free(chunks[t].score);
        if (jobs) moe_scorer_free(jobs[t].scorer);
    }
    free(eb.y);
    free(eb.mask);
    free(eb.pred);
    free(chunks);
    free(jobs);
    free(args);
    mr_pool_free(pool);
    mr_csv_close(in);
    if (atomic) { /* the whole output appears under its name, or nothing does */
        if (status == 0 && mr_afile_commit(&af, &e)) {
            fprintf(stderr, "moerec score: %s\n", e.msg);
            status = 1;
        }
        mr_afile_abort(&af);
    } else if (out && out != stdout && fclose(out) != 0 && status == 0) {
        fprintf(stderr, "moerec score: closing %s: %s\n", out_path, strerror(errno));
        status = 1;
    }
    moe_model_free(m);
    return status;
}

MR_COMMAND(score_command, "score", "score a CSV/TSV file offline with a trained model (streaming)",
           score_main)

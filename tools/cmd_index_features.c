/* cmd_index_features.c — `moerec index features`: counting features from
 * an interaction log (moe/featcount.h), as columns for `moerec train` and
 * `moerec score`, and as stored user and item feature rows for serving.
 *
 *   --log FILE --out FILE       each log row with the leak-free feature
 *                               columns appended (past or out-of-fold)
 *   --apply FILE --apply-out F  rows to score (a later period): values from
 *                               every log event, read at each row's time or
 *                               at --as-of
 *
 *   --store DIR                 the values of every user and item of the log,
 *                               read at --as-of T, into the store: the user's
 *                               profile row (replaced) and the item's feature
 *                               row (merged with what UpsertItems wrote), as
 *                               packed moerec.v1.Features numeric entries,
 *                               which Score adds to every request; with
 *                               categories the (user, category) blocks
 *                               too (index_features_store.c)
 *
 * Output rows are the input's cells (re-quoted as needed, in the input's
 * delimiter) plus the values ("%.9g", exact for float; empty = missing), so
 * every input column stays. Logs are read through common/csv.h (the rules
 * of every input file); outputs are written through common/atomic_file.h.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/atomic_file.h"
#include "common/csv.h"
#include "hashing/idhash.h"
#include "index/store/store.h"
#include "moe/featcount.h"
#include "tools/cli.h"
#include "proto/moerec.pb-c.h"
#include "server/backend.h"
#include "tools/index_features.h"
#include "tools/index_features_int.h"

static void fx_usage(FILE *f) {
    fprintf(
        f,
        "usage: moerec index features --log FILE --task NAME:RULE [--task ...] [options]\n\n"
        "Counting features (docs/index-tool.md, \"Counting features\"): per user, per item and\n"
        "per (user, category): log1p(count), smoothed positive rate per task, log1p(seconds\n"
        "since the last event), over each window.\n\n"
        "  --log FILE              interaction log, CSV with a header line\n"
        "  --out FILE              the log's rows + leak-free feature columns (for moerec train)\n"
        "  --apply FILE            rows to score: values from every log event (repeatable)\n"
        "  --apply-out FILE        where each --apply file's rows + columns go (same order)\n"
        "  --user-column NAME      (userId)\n"
        "  --item-column NAME      (movieId)\n"
        "  --time-column NAME      event time, seconds (timestamp)\n"
        "  --category-column NAME  optional multi-valued category column: (user, category) block\n"
        "  --category-separator C  separator inside it (|)\n"
        "  --task NAME:RULE        a label per task: COLUMN (a number: 0/1 gives a rate, other\n"
        "                          values a smoothed mean), COLUMN>=X, or COLUMN=VALUE (positive\n"
        "                          when the cell equals VALUE); an empty cell is no label; a cell\n"
        "                          that is not a number (rules 1, 2) is an error\n"
        "  --windows LIST          comma-separated: all, or a decay time constant Ns, Nm, Nh, Nd\n"
        "                          (all)\n"
        "  --mode past|oof         training rows: strictly earlier events (past), or the other\n"
        "                          folds' rows (oof; all-time windows only) (past)\n"
        "  --folds N               oof folds (5)\n"
        "  --seed N                oof fold seed (1)\n"
        "  --prior-strength A      rate = (positives + A * prior) / (labelled + A) (10)\n"
        "  --no-recency            leave the <p>_recency columns out\n"
        "  --store DIR             write every user's and item's values (read at --as-of T, the\n"
        "                          log's latest time by default) into the store: user profile\n"
        "                          rows (replaced) and item feature rows (merged); Score adds them\n"
        "                          to every request. With --category-column also each user's\n"
        "                          (user, category) blocks and each item's categories; Score\n"
        "                          adds the mean over a candidate's categories. The server must\n"
        "                          not have DIR open.\n"
        "  --as-of row|T           time --apply rows are read at: each row's own time (row, the\n"
        "                          default; not with --store), or T\n"
        "  --na LIST               cells read as missing besides the empty one (NA; e.g.\n"
        "                          NA,null; docs/operations.md, input files)\n"
        "  --quiet                 accepted as by every index subcommand (this one prints no\n"
        "                          progress lines)\n\n"
        "Example:\n"
        "  moerec index features --log train.csv --out train_feat.csv --user-column userId \\\n"
        "      --item-column movieId --time-column timestamp --task 'like:rating>=4' --mode oof\n");
}

static int parse_task(fx_task *t, const char *v) {
    const char *colon = strchr(v, ':');
    if (!colon || colon == v || (size_t)(colon - v) >= sizeof t->name) return -1;
    memset(t, 0, sizeof *t);
    memcpy(t->name, v, (size_t)(colon - v));
    const char *r = colon + 1, *ge = strstr(r, ">="), *eq = strchr(r, '=');
    const char *end = ge ? ge : eq ? eq : r + strlen(r);
    if (end == r || (size_t)(end - r) >= sizeof t->column) return -1;
    memcpy(t->column, r, (size_t)(end - r));
    if (ge) {
        t->rule = 1;
        if (mr_parse_double(ge + 2, &t->threshold)) return -1;
    } else if (eq) {
        t->rule = 2;
        if (snprintf(t->value, sizeof t->value, "%s", eq + 1) >= (int)sizeof t->value || !eq[1])
            return -1;
    }
    return 0;
}

static int parse_windows(fx_opts *o, const char *v) {
    char buf[512];
    if (snprintf(buf, sizeof buf, "%s", v) >= (int)sizeof buf) return -1;
    o->spec.n_windows = 0;
    for (char *s = strtok(buf, ","); s; s = strtok(NULL, ",")) {
        if (o->spec.n_windows == FC_MAX_WINDOWS) return -1;
        int w = o->spec.n_windows++;
        snprintf(o->window_name[w], sizeof o->window_name[w], "%s", s);
        if (!strcmp(s, "all")) {
            o->spec.window[w] = 0;
            continue;
        }
        size_t len = strlen(s);
        char *x = s + (len ? len - 1 : 0); /* the unit letter after the number */
        double n = 0, unit = !strcmp(x, "s")   ? 1
                             : !strcmp(x, "m") ? 60
                             : !strcmp(x, "h") ? 3600
                             : !strcmp(x, "d") ? 86400
                                               : 0;
        *x = 0;
        if (!unit || mr_parse_double(s, &n) || !(n > 0)) return -1;
        o->spec.window[w] = n * unit;
    }
    return o->spec.n_windows ? 0 : -1;
}

static int fx_args(fx_opts *o, int argc, char **argv) {
    enum {
        O_LOG = 256,
        O_OUT,
        O_STORE,
        O_APPLY,
        O_APPLY_OUT,
        O_UCOL,
        O_ICOL,
        O_TCOL,
        O_CCOL,
        O_CSEP,
        O_TASK,
        O_WIN,
        O_MODE,
        O_FOLDS,
        O_SEED,
        O_PRIOR,
        O_ASOF,
        O_NOREC,
        O_QUIET,
        O_NA
    };
    static const struct option opts[] = {
        {"log", required_argument, 0, O_LOG},
        {"out", required_argument, 0, O_OUT},
        {"store", required_argument, 0, O_STORE},
        {"apply", required_argument, 0, O_APPLY},
        {"apply-out", required_argument, 0, O_APPLY_OUT},
        {"user-column", required_argument, 0, O_UCOL},
        {"item-column", required_argument, 0, O_ICOL},
        {"time-column", required_argument, 0, O_TCOL},
        {"category-column", required_argument, 0, O_CCOL},
        {"category-separator", required_argument, 0, O_CSEP},
        {"task", required_argument, 0, O_TASK},
        {"windows", required_argument, 0, O_WIN},
        {"mode", required_argument, 0, O_MODE},
        {"folds", required_argument, 0, O_FOLDS},
        {"seed", required_argument, 0, O_SEED},
        {"prior-strength", required_argument, 0, O_PRIOR},
        {"as-of", required_argument, 0, O_ASOF},
        {"no-recency", no_argument, 0, O_NOREC},
        {"quiet", no_argument, 0,
         O_QUIET}, /* accepted as by every index target; it prints no progress */
        {"na", required_argument, 0, O_NA},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    mr_err e;
    mr_err_clear(&e);
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1;) {
        const char *v = optarg;
        unsigned long long u = 0;
        int rc = 0;
        switch (c) {
        case O_LOG: o->log = v; break;
        case O_OUT: o->out = v; break;
        case O_STORE: o->store_dir = v; break;
        case O_APPLY:
            if (o->n_apply == FX_APPLY_MAX)
                rc = mr_err_set(&e, MR_EINVAL, "--apply: at most %d files", FX_APPLY_MAX);
            else o->apply[o->n_apply++] = v;
            break;
        case O_APPLY_OUT:
            if (o->n_apply_out == FX_APPLY_MAX)
                rc = mr_err_set(&e, MR_EINVAL, "--apply-out: at most %d files", FX_APPLY_MAX);
            else o->apply_out[o->n_apply_out++] = v;
            break;
        case O_UCOL: o->user_col = v; break;
        case O_ICOL: o->item_col = v; break;
        case O_TCOL: o->time_col = v; break;
        case O_CCOL: o->cat_col = v; break;
        case O_CSEP:
            if (strlen(v) != 1)
                rc = mr_err_set(&e, MR_EINVAL, "--category-separator: '%s' is not one character",
                                v);
            else o->cat_sep = v[0];
            break;
        case O_TASK:
            if (o->spec.n_tasks == FC_MAX_TASKS || parse_task(&o->task[o->spec.n_tasks], v))
                rc = mr_err_set(&e, MR_EINVAL,
                                "--task %s (NAME:COLUMN, NAME:COLUMN>=X or NAME:COLUMN=VALUE; "
                                "at most %d)",
                                v, FC_MAX_TASKS);
            else o->spec.n_tasks++;
            break;
        case O_WIN:
            if (parse_windows(o, v))
                rc = mr_err_set(&e, MR_EINVAL, "--windows %s (all, Ns, Nm, Nh, Nd; at most %d)", v,
                                FC_MAX_WINDOWS);
            break;
        case O_MODE:
            if (strcmp(v, "past") && strcmp(v, "oof"))
                rc = mr_err_set(&e, MR_EINVAL, "--mode %s (past, oof)", v);
            o->mode = !strcmp(v, "oof") ? FC_OOF : FC_PAST;
            break;
        case O_FOLDS: rc = cli_int("--folds", v, 2, 64, &o->folds, &e); break;
        case O_SEED:
            if (!(rc = cli_u64("--seed", v, &u, &e))) o->seed = u;
            break;
        case O_PRIOR:
            rc = cli_parse_double("--prior-strength", v, 0, 1e12, &o->spec.prior_strength, &e);
            break;
        case O_ASOF:
            o->as_of_row = !strcmp(v, "row");
            o->as_of_set = 1;
            if (!o->as_of_row && mr_parse_double(v, &o->as_of))
                rc = mr_err_set(&e, MR_EINVAL, "--as-of '%s' is not row or a time", v);
            break;
        case O_NOREC: o->spec.no_recency = 1; break;
        case O_QUIET: break;
        case O_NA: rc = cli_na("--na", v, o->na, sizeof o->na, &e); break;
        case 'h': fx_usage(stdout); return 3;
        default: rc = cli_getopt_error(c, argv, &e); break;
        }
        if (rc) goto bad;
    }
    if (optind < argc) {
        mr_err_set(&e, MR_EINVAL, "unexpected argument '%s'", argv[optind]);
        goto bad;
    }
    if (!o->log || !o->spec.n_tasks || (!o->out && !o->n_apply && !o->store_dir)) {
        fprintf(stderr,
                "moerec index features: --log, at least one --task and one of --out, --apply, "
                "--store are required (see --help)\n");
        return 2;
    }
    if (o->store_dir && o->as_of_row && o->as_of_set) {
        fprintf(stderr,
                "moerec index features: --store needs one time (--as-of T), not --as-of row\n");
        return 2;
    }
    if (o->n_apply != o->n_apply_out) {
        fprintf(stderr, "moerec index features: each --apply needs its --apply-out\n");
        return 2;
    }
    o->spec.use_cats = o->cat_col != NULL;
    return 0;
bad:
    fprintf(stderr, "moerec index features: %s (see --help)\n", e.msg);
    return 2;
}

/* ------------------------------------------------------------ reading */

typedef struct fx_cols {
    int user, item, time, cat, label[FC_MAX_TASKS];
} fx_cols;

static int fx_find_cols(const fx_opts *o, const mr_csv *l, int labels, fx_cols *c, mr_err *e) {
    if (mr_csv_need(l, o->user_col, &c->user, e) || mr_csv_need(l, o->item_col, &c->item, e) ||
        mr_csv_need(l, o->time_col, &c->time, e))
        return MR_EINVAL;
    c->cat = -1;
    if (o->cat_col && mr_csv_need(l, o->cat_col, &c->cat, e)) return MR_EINVAL;
    for (int t = 0; labels && t < o->spec.n_tasks; t++)
        if (mr_csv_need(l, o->task[t].column, &c->label[t], e))
            return mr_err_wrap(e, "task '%s'", o->task[t].name);
    return MR_OK;
}

/* The current record of l as an event (labels when labels). */
static int fx_event(const fx_opts *o, const mr_csv *l, const fx_cols *c, int labels, fc_event *ev,
                    uint64_t *cats, fx_dict *dict, mr_err *e) {
    memset(ev, 0, sizeof *ev);
    int rc = mr_csv_double(l, c->time, &ev->t, e);
    if (rc < 0) return rc;
    if (rc == 1)
        return mr_err_set(e, MR_EINVAL, "%s:%ld: time column '%s' is missing", mr_csv_name(l),
                          mr_csv_line(l), o->time_col);
    const char *user = mr_csv_cell(l, c->user), *item = mr_csv_cell(l, c->item);
    if (!user[0] || !item[0])
        return mr_err_set(e, MR_EINVAL, "%s:%ld: empty user or item id", mr_csv_name(l),
                          mr_csv_line(l));
    ev->user = mr_api_id(user);
    ev->item = mr_api_id(item);
    ev->cats = cats;
    if (c->cat >= 0)
        for (const char *s = mr_csv_cell(l, c->cat); *s;) {
            const char *end = strchr(s, o->cat_sep);
            size_t len = end ? (size_t)(end - s) : strlen(s);
            if (len) {
                if (ev->n_cats == FC_MAX_CATS)
                    return mr_err_set(e, MR_EINVAL, "%s:%ld: more than %d categories",
                                      mr_csv_name(l), mr_csv_line(l), FC_MAX_CATS);
                cats[ev->n_cats] = idhash_bytes(s, len, 0);
                if (dict && fx_dict_add(dict, cats[ev->n_cats], s, len, e)) return MR_ENOMEM;
                ev->n_cats++;
            }
            if (!end) break;
            s = end + 1;
        }
    for (int t = 0; labels && t < o->spec.n_tasks; t++) {
        const fx_task *k = &o->task[t];
        const char *v = mr_csv_cell(l, c->label[t]);
        double y;
        if (mr_csv_is_missing(l, v)) continue; /* no label */
        if (k->rule == 2) {
            ev->has[t] = 1;
            ev->y[t] = !strcmp(v, k->value);
            continue;
        }
        if (mr_csv_double(l, c->label[t], &y, e) < 0) { /* the reader's message, and what to do */
            char why[MR_ERR_MSG_MAX];
            snprintf(why, sizeof why, "%s", e ? e->msg : "");
            return mr_err_set(e, MR_EINVAL, "%s (task '%s': for text labels give COLUMN=VALUE)",
                              why, k->name);
        }
        ev->has[t] = 1;
        ev->y[t] = k->rule == 1 ? y >= k->threshold : (float)y;
    }
    return MR_OK;
}

static int fx_read(const fx_opts *o, const char *path, int labels, fx_rows *r, mr_err *e) {
    mr_csv *l = NULL;
    fx_cols c;
    mr_csv_opts co = cli_csv_opts(o->na);
    int rc = mr_csv_open(&l, path, &co, e);
    if (!rc) rc = fx_find_cols(o, l, labels, &c, e);
    r->t_max = -INFINITY;
    while (!rc && (rc = mr_csv_next(l, e)) == 1) {
        if (r->n == r->cap) {
            size_t cap = r->cap ? 2 * r->cap : 4096;
            fc_event *ev = realloc(r->ev, cap * sizeof *ev);
            if (ev) r->ev = ev;
            uint64_t *cats = ev ? realloc(r->cats, cap * FC_MAX_CATS * sizeof *cats) : NULL;
            if (!cats) {
                rc = mr_err_set(e, MR_ENOMEM, "%s: out of memory", path);
                break;
            }
            r->cats = cats;
            r->cap = cap;
        }
        rc = fx_event(o, l, &c, labels, &r->ev[r->n], r->cats + r->n * FC_MAX_CATS, r->dict, e);
        if (!rc && r->ev[r->n].t > r->t_max) r->t_max = r->ev[r->n].t;
        r->n += rc == 0;
    }
    mr_csv_close(l);
    if (rc < 0) return rc;
    for (size_t i = 0; i < r->n; i++)
        r->ev[i].cats = r->cats + i * FC_MAX_CATS; /* after reallocs */
    return r->n ? MR_OK : mr_err_set(e, MR_EINVAL, "%s: no data rows", path);
}

/* ------------------------------------------------------------ writing */

/* path's records again, through the same reader, to out (atomically, in
 * path's delimiter): every cell (re-quoted as needed), then the values. */
static int fx_write(const fx_opts *o, const char *path, const char *out, const float *vals,
                    size_t n, mr_err *e) {
    int per = fc_row_values(&o->spec), rc;
    mr_csv *in = NULL;
    mr_afile af;
    mr_csv_opts co = cli_csv_opts(o->na);
    if ((rc = mr_csv_open(&in, path, &co, e))) return rc;
    if ((rc = mr_afile_open(&af, out, e))) {
        mr_csv_close(in);
        return rc;
    }
    const char *tasks[FC_MAX_TASKS], *wins[FC_MAX_WINDOWS];
    for (int t = 0; t < o->spec.n_tasks; t++) tasks[t] = o->task[t].name;
    for (int w = 0; w < o->spec.n_windows; w++) wins[w] = o->window_name[w];
    char d = mr_csv_delim(in);
    int nc = mr_csv_ncols(in);
    for (int k = 0; k < nc; k++) {
        if (k) fputc(d, af.f);
        mr_csv_put_cell(af.f, mr_csv_header(in, k), d);
    }
    for (int j = 0; j < per && !rc; j++) {
        char name[128];
        if (!(rc = fc_value_name(&o->spec, j, tasks, wins, name, sizeof name, e))) {
            fputc(d, af.f); /* quoted like any cell: a task name may hold the delimiter */
            mr_csv_put_cell(af.f, name, d);
        }
    }
    fputc('\n', af.f);
    size_t row = 0;
    while (!rc && (rc = mr_csv_next(in, e)) == 1) {
        rc = 0;
        if (row == n) {
            rc = mr_err_set(e, MR_EINTERNAL, "%s changed while it was read", path);
            break;
        }
        for (int k = 0; k < nc; k++) {
            if (k) fputc(d, af.f);
            mr_csv_put_cell(af.f, mr_csv_cell(in, k), d);
        }
        for (int j = 0; j < per; j++) {
            float v = vals[row * (size_t)per + (size_t)j];
            if (isnan(v)) fputc(d, af.f);
            else fprintf(af.f, "%c%.9g", d, (double)v);
        }
        fputc('\n', af.f);
        row++;
    }
    mr_csv_close(in);
    if (!rc && row != n) rc = mr_err_set(e, MR_EINTERNAL, "%s changed while it was read", path);
    if (rc) {
        mr_afile_abort(&af);
        return rc;
    }
    return mr_afile_commit(&af, e);
}

int ix_features(int argc, char **argv) {
    fx_opts o = {.user_col = "userId",
                 .item_col = "movieId",
                 .time_col = "timestamp",
                 .cat_sep = '|',
                 .folds = 5,
                 .seed = 1,
                 .as_of_row = 1,
                 .as_of = NAN};
    o.spec = (fc_spec){.n_windows = 1, .window = {0}, .prior_strength = 10};
    snprintf(o.window_name[0], sizeof o.window_name[0], "all");
    int rc = fx_args(&o, argc, argv);
    if (rc) return rc == 3 ? 0 : rc;
    mr_err e = {0};
    fx_rows log = {0}, ap = {0};
    float *vals = NULL;
    fc_counter *fin = NULL;
    int per = fc_row_values(&o.spec), status = 1;
    fx_dict dict = {0};
    if (o.store_dir && o.cat_col) { /* the store's entries are named by the category text */
        if (u64map_init(&dict.map, 64)) goto oom;
        log.dict = &dict;
    }
    if ((rc = fc_spec_check(&o.spec, &e)) || (rc = fx_read(&o, o.log, 1, &log, &e))) goto fail;
    if (!(vals = malloc(log.n * (size_t)per * sizeof *vals))) goto oom;
    if ((rc = fc_train_values(&o.spec, log.ev, log.n, o.mode, o.folds, o.seed, vals, &fin, &e)))
        goto fail;
    if (o.out && (rc = fx_write(&o, o.log, o.out, vals, log.n, &e))) goto fail;
    json_t *applied = json_array();
    for (int a = 0; a < o.n_apply; a++) {
        free(ap.ev);
        free(ap.cats);
        memset(&ap, 0, sizeof ap);
        if ((rc = fx_read(&o, o.apply[a], 0, &ap, &e))) break;
        float *av = malloc(ap.n * (size_t)per * sizeof *av);
        if (!av) {
            rc = mr_err_set(&e, MR_ENOMEM, "out of memory");
            break;
        }
        double now = isnan(o.as_of) ? log.t_max : o.as_of;
        for (size_t i = 0; i < ap.n; i++)
            fc_read_row(fin, &ap.ev[i], o.as_of_row ? ap.ev[i].t : now, av + i * (size_t)per);
        rc = fx_write(&o, o.apply[a], o.apply_out[a], av, ap.n, &e);
        free(av);
        if (rc) break;
        json_array_append_new(
            applied, json_pack("{s:s, s:I}", "file", o.apply_out[a], "rows", (json_int_t)ap.n));
    }
    if (rc) {
        json_decref(applied);
        goto fail;
    }
    json_t *sum = json_pack("{s:s, s:I, s:i, s:s, s:I, s:I, s:o}", "log", o.log, "rows",
                            (json_int_t)log.n, "columns", per, "mode",
                            o.mode == FC_OOF ? "oof" : "past", "users",
                            (json_int_t)fc_key_count(fin, FC_USER), "items",
                            (json_int_t)fc_key_count(fin, FC_ITEM), "applied", applied);
    if (o.store_dir &&
        (rc = fx_store(&o, &log, fin, isnan(o.as_of) ? log.t_max : o.as_of, sum, &e))) {
        json_decref(sum);
        goto fail;
    }
    ix_print_json(sum, 0); /* full double precision */
    status = 0;
    goto out;
oom:
    mr_err_set(&e, MR_ENOMEM, "out of memory");
fail:
    fprintf(stderr, "moerec index features: %s\n", e.msg);
out:
    fc_free(fin);
    if (log.dict) fx_dict_free(log.dict);
    free(vals);
    free(log.ev);
    free(log.cats);
    free(ap.ev);
    free(ap.cats);
    return status;
}

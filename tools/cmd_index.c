/* cmd_index.c — `moerec index`: build the serving indices of a model
 * version from plain CSV files.
 *
 *   moerec index retrievers  items (id, optional expert column, e0..e{d-1})
 *                            -> a retriever set directory (index/retrieval/retr_set.h):
 *                            one FAISS expert per value of the expert column
 *                            (or one "all" expert), router pilots by k-means
 *                            over each expert's items, optional popularity
 *                            fallback and MinHash expert from an events log;
 *   moerec index graphhash   user x item interactions -> Louvain clusters ->
 *                            the GraphHash mappings file (hashing/graphhash.h).
 *
 * Input files are read with the one CSV/TSV reader (common/csv.h): header
 * line, RFC 4180 quotes, CSV or TSV.
 * Progress goes to stderr; the last line on stdout is one JSON summary.
 * Exit codes: 0 done, 1 failure (bad data, I/O, library error), 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "command.h"
#include "common/clock.h"
#include "common/csv.h"
#include "common/progress.h"
#include "hashing/bigraph.h"
#include "hashing/graphhash.h"
#include "index/retrieval/retr_faiss.h"
#include "index/retrieval/retr_minhash.h"
#include "index/retrieval/retr_pop.h"
#include "index/retrieval/retr_set.h"
#include "tools/index_features.h"

/* ------------------------------------------------------------------ CSV */

/* Ids and times: integers >= 0, never missing (common/csv.h's rules). */
static int ix_id(const mr_csv *c, int col, int64_t *v, mr_err *e) {
    int rc = mr_csv_i64(c, col, v, e);
    if (rc == 0 && *v >= 0) return 0;
    if (rc < 0) return rc;
    return mr_err_set(e, MR_EINVAL, "%s:%ld: column '%s' (%d): '%s' is not an id >= 0",
                      mr_csv_name(c), mr_csv_line(c), mr_csv_header(c, col), col + 1,
                      mr_csv_cell(c, col));
}

/* Vector components: finite numbers, never missing. */
static int ix_cell_float(const mr_csv *c, int col, float *v, mr_err *e) {
    int rc = mr_csv_float(c, col, v, e);
    if (rc != 1) return rc;
    return mr_err_set(e, MR_EINVAL, "%s:%ld: column '%s' (%d) is missing", mr_csv_name(c),
                      mr_csv_line(c), mr_csv_header(c, col), col + 1);
}

/* File size for the progress line (0 for a pipe). */
static uint64_t ix_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
}

/* Grow a malloc'd array to hold n + 1 elements of sz bytes. */
static int ix_grow(void **p, int64_t *cap, int64_t n, size_t sz) {
    if (n < *cap) return 0;
    int64_t nc = *cap ? *cap * 2 : 1024;
    void *q = realloc(*p, (size_t)nc * sz);
    if (!q) return -1;
    *p = q;
    *cap = nc;
    return 0;
}

/* ------------------------------------------------------------- options */

void ix_print_json(json_t *o, int digits) {
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(digits));
    if (s) printf("%s\n", s);
    free(s);
    json_decref(o);
}

/* ------------------------------------------------------------ retrievers */

typedef struct ix_ret_opts {
    const char *items, *out, *expert_col, *id_col, *events, *factory;
    retr_metric metric;
    int pilots, popularity, minhash, ef_search, nprobe, quiet;
    router_config rc;
    char na[CLI_NA_MAX]; /* --na, "" = the reader's default */
} ix_ret_opts;

/* The catalogue: n rows of id, expert and vector. */
typedef struct ix_items {
    int64_t n, cap;
    int dim;
    int64_t *ids; /* (n) */
    int *expert;  /* (n) expert index */
    float *x;     /* (n, dim) */
    char names[ROUTER_MAX_EXPERTS][RETR_NAME_MAX];
    int64_t count[ROUTER_MAX_EXPERTS]; /* rows per expert */
    int n_experts;
} ix_items;

/* Expert "<column>_<value>" ("cluster_7", "genre_Sci-Fi"), named as the
 * server names a live item's expert (retr_set_expert_name). */
static int ix_expert_of(ix_items *it, const char *col, const char *value, int limit, mr_err *e) {
    char name[RETR_NAME_MAX];
    retr_set_expert_name(col, value, name);
    for (int i = 0; i < it->n_experts; i++)
        if (strcmp(it->names[i], name) == 0) return i;
    if (it->n_experts >= limit)
        return mr_err_set(e, MR_EINVAL,
                          "more than %d distinct expert values (a router holds %d experts, "
                          "fallbacks included): use a coarser --expert-column",
                          limit, ROUTER_MAX_EXPERTS);
    strcpy(it->names[it->n_experts], name);
    return it->n_experts++;
}

static int ix_read_items(const ix_ret_opts *o, int limit, ix_items *it, mr_err *e) {
    mr_csv *c = NULL;
    mr_csv_opts co = cli_csv_opts(o->na);
    int rc = mr_csv_open(&c, o->items, &co, e), idc = -1, exc = -1, v0 = -1;
    if (rc) goto out;
    const char *idname = o->id_col ? o->id_col : mr_csv_col(c, "item_id") >= 0 ? "item_id" : "id";
    if ((rc = mr_csv_need(c, idname, &idc, e))) goto out;
    if (o->expert_col && (rc = mr_csv_need(c, o->expert_col, &exc, e))) goto out;
    if ((rc = mr_csv_need(c, "e0", &v0, e))) goto out;
    char nm[16];
    for (it->dim = 1; it->dim < RETR_FAISS_DIM_MAX; it->dim++) {
        snprintf(nm, sizeof nm, "e%d", it->dim);
        if (v0 + it->dim >= mr_csv_ncols(c) || strcmp(mr_csv_header(c, v0 + it->dim), nm)) break;
    }
    if (!o->expert_col) strcpy(it->names[it->n_experts++], "all");
    mr_progress p;
    mr_progress_begin(&p, "read items", "bytes", ix_size(o->items), !o->quiet);
    int64_t xcap = 0, ecap = 0;
    while ((rc = mr_csv_next(c, e)) == 1) {
        if (ix_grow((void **)&it->ids, &it->cap, it->n, sizeof *it->ids) ||
            ix_grow((void **)&it->expert, &ecap, it->n, sizeof *it->expert) ||
            ix_grow((void **)&it->x, &xcap, it->n, sizeof(float) * (size_t)it->dim)) {
            rc = mr_err_set(e, MR_ENOMEM, "out of memory reading %s", o->items);
            goto out;
        }
        if ((rc = ix_id(c, idc, &it->ids[it->n], e))) goto out;
        for (int d = 0; d < it->dim; d++)
            if ((rc = ix_cell_float(c, v0 + d, &it->x[it->n * it->dim + d], e))) goto out;
        int x = exc < 0 ? 0 : ix_expert_of(it, o->expert_col, mr_csv_cell(c, exc), limit, e);
        if ((rc = x < 0 ? x : 0)) goto out;
        it->expert[it->n] = x;
        it->count[x]++;
        it->n++;
        if ((it->n & 4095) == 0) mr_progress_update(&p, (uint64_t)mr_csv_offset(c), NULL);
    }
    mr_progress_end(&p, mr_csv_offset(c), NULL);
    if (!rc && it->n == 0) rc = mr_err_set(e, MR_EINVAL, "%s has no items", o->items);
out:
    mr_csv_close(c);
    return rc < 0 ? rc : 0;
}

static void ix_items_free(ix_items *it) {
    free(it->ids);
    free(it->expert);
    free(it->x);
}

/* One FAISS expert over the rows labelled x. */
static int ix_build_faiss(const ix_ret_opts *o, const ix_items *it, int x, retr_set *set,
                          mr_err *e) {
    int64_t n = it->count[x], j = 0;
    float *v = malloc(sizeof(float) * (size_t)(n * it->dim));
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)n);
    mr_retr *r = NULL;
    int rc = 0;
    if (!v || !ids) {
        rc = mr_err_set(e, MR_ENOMEM, "out of memory for expert %s", it->names[x]);
        goto out;
    }
    for (int64_t i = 0; i < it->n; i++)
        if (it->expert[i] == x) {
            memcpy(v + j * it->dim, it->x + i * it->dim, sizeof(float) * (size_t)it->dim);
            ids[j++] = it->ids[i];
        }
    retr_faiss_config fc = {.name = it->names[x],
                            .dim = it->dim,
                            .factory = o->factory,
                            .metric = o->metric,
                            .ef_search = o->ef_search,
                            .nprobe = o->nprobe};
    if ((rc = retr_faiss_create(&r, &fc, e)) || (rc = retr_faiss_train(r, v, n, e))) goto fail;
    char label[48];
    snprintf(label, sizeof label, "add %.40s", it->names[x]);
    mr_progress p;
    mr_progress_begin(&p, label, "items", (uint64_t)n, !o->quiet);
    for (int64_t at = 0; at < n; at += 8192) {
        int64_t m = n - at < 8192 ? n - at : 8192;
        if ((rc = retr_faiss_add(r, v + at * it->dim, ids + at, m, e))) goto fail;
        mr_progress_update(&p, (uint64_t)(at + m), NULL);
    }
    mr_progress_end(&p, (uint64_t)n, NULL);
    if ((rc = retr_set_add(set, r, o->factory, o->ef_search, o->nprobe, e)) >= 0) {
        rc = 0;
        goto out;
    }
fail:
    mr_err_wrap(e, "expert %s (%" PRId64 " items)", it->names[x], n);
    retr_free(r);
out:
    free(v);
    free(ids);
    return rc;
}

/* Popularity and / or MinHash experts from the events CSV. */
static int ix_build_events(const ix_ret_opts *o, retr_set *set, int64_t *n_events, mr_err *e) {
    mr_csv *c = NULL;
    mr_retr *pop = NULL, *mh = NULL;
    int64_t *u = NULL, *it = NULL, *ts = NULL, cap = 0, ucap = 0, tcap = 0, n = 0;
    int uc = -1, ic = -1, tc = -1;
    mr_csv_opts co = cli_csv_opts(o->na);
    int rc = mr_csv_open(&c, o->events, &co, e);
    if (rc || (rc = mr_csv_need(c, "user_id", &uc, e)) ||
        (rc = mr_csv_need(c, "item_id", &ic, e)) ||
        (o->popularity && (rc = mr_csv_need(c, "ts_ms", &tc, e))))
        goto out;
    retr_pop_config pc = {.name = "popular"};
    retr_minhash_config mc = {.name = "cooc", .seed = 1};
    if ((o->popularity && (rc = retr_pop_create(&pop, &pc, e))) ||
        (o->minhash && (rc = retr_minhash_create(&mh, &mc, e))))
        goto out;
    mr_progress p;
    mr_progress_begin(&p, "read events", "bytes", ix_size(o->events), !o->quiet);
    for (;;) {
        int more = mr_csv_next(c, e);
        if (more < 0) {
            rc = more;
            goto out;
        }
        if (more) {
            if (ix_grow((void **)&u, &ucap, n, 8) || ix_grow((void **)&it, &cap, n, 8) ||
                ix_grow((void **)&ts, &tcap, n, 8)) {
                rc = mr_err_set(e, MR_ENOMEM, "out of memory reading %s", o->events);
                goto out;
            }
            if ((rc = ix_id(c, uc, &u[n], e)) || (rc = ix_id(c, ic, &it[n], e)) ||
                (tc >= 0 && (rc = ix_id(c, tc, &ts[n], e))))
                goto out;
            n++;
        }
        if (n == 65536 || (!more && n)) { /* feed the experts per batch */
            if ((pop && (rc = retr_pop_add_events(pop, it, ts, NULL, n, e))) ||
                (mh && (rc = retr_minhash_add(mh, u, it, n, e))))
                goto out;
            *n_events += n;
            n = 0;
            mr_progress_update(&p, (uint64_t)mr_csv_offset(c), NULL);
        }
        if (!more) break;
    }
    mr_progress_end(&p, mr_csv_offset(c), NULL);
    if (*n_events == 0) {
        rc = mr_err_set(e, MR_EINVAL, "%s has no events", o->events);
        goto out;
    }
    if (mh) {
        if ((rc = retr_set_add(set, mh, NULL, 0, 0, e)) < 0) goto out;
        mh = NULL;
    }
    if (pop) {
        if ((rc = retr_set_add(set, pop, NULL, 0, 0, e)) < 0) goto out;
        pop = NULL;
    }
    rc = 0;
out:
    retr_free(pop);
    retr_free(mh);
    mr_csv_close(c);
    free(u);
    free(it);
    free(ts);
    return rc;
}

/* mkdir -p of path's parent (models/<name>/<version>/ before retrievers/). */
static int ix_mkdir_parents(const char *path, mr_err *e) {
    char b[4096];
    if (snprintf(b, sizeof b, "%s", path) >= (int)sizeof b)
        return mr_err_set(e, MR_EINVAL, "path too long: %s", path);
    char *end = strrchr(b, '/');
    for (char *p = b + 1; end && p < end; p++) {
        if (*p != '/') continue;
        *p = 0;
        int bad = mkdir(b, 0755) && errno != EEXIST;
        *p = '/';
        if (bad)
            return mr_err_set(e, MR_EINTERNAL, "cannot create %.*s: %s", (int)(p - b), b,
                              strerror(errno));
    }
    if (end && end > b) {
        *end = 0;
        if (mkdir(b, 0755) && errno != EEXIST)
            return mr_err_set(e, MR_EINTERNAL, "cannot create %s: %s", b, strerror(errno));
    }
    return 0;
}

/* Reload the saved set and run one query: what the server will do. */
static int ix_verify(const ix_ret_opts *o, const ix_items *it, int *n_found, mr_err *e) {
    retr_set *s = NULL;
    int rc = retr_set_load(&s, o->out, NULL, 0, e);
    if (rc) return mr_err_wrap(e, "reloading the saved set");
    mr_arena a;
    mr_arena_init(&a, 1 << 16, 0);
    router_query q = {.n_spaces = 1, .vecs = {it->x}, .dims = {it->dim}};
    retr_user u = {it->ids, 1};
    router_options opt = {0};
    router_result res;
    rc = router_retrieve(retr_set_router(s), &q, &u, 10, NULL, 0, &opt, &a, &res, e);
    if (rc) mr_err_wrap(e, "test query on the saved set");
    else *n_found = res.n;
    mr_arena_free(&a);
    retr_set_free(s);
    return rc;
}

static void ix_ret_usage(FILE *f) {
    fprintf(f,
            "usage: moerec index retrievers --items FILE --out DIR [options]\n\n"
            "Build a retriever set (DIR/retrievers.json, one file per expert, router pilots):\n"
            "one FAISS expert per value of --expert-column (or one expert \"all\"), pilots by\n"
            "k-means over each expert's items, optional popularity fallback / MinHash expert.\n\n"
            "  --items FILE          CSV: id column, optional expert column, e0..e{d-1}\n"
            "  --out DIR             the set directory (replaced atomically if present)\n"
            "  --id-column NAME      item id column (item_id, else id)\n"
            "  --expert-column NAME  one expert per value (e.g. cluster, genre)\n"
            "  --factory STR         FAISS factory string (\"IDMap,Flat\")\n"
            "  --metric ip|l2        (ip)\n"
            "  --ef-search N         HNSW efSearch (FAISS default)\n"
            "  --nprobe N            IVF nprobe (FAISS default)\n"
            "  --pilots K            pilots per expert, k-means (8)\n"
            "  --events FILE         CSV user_id,item_id,ts_ms for --popularity / --minhash\n"
            "  --popularity          add expert \"popular\" (decayed counts) as the fallback\n"
            "  --minhash             add expert \"cooc\" (MinHash item co-occurrence)\n"
            "  --top-p P             routing top-p (0.6)\n"
            "  --temperature T       routing softmax temperature (0.05)\n"
            "  --max-experts N       routed experts at most (3)\n"
            "  --merge norm|rrf|raw  candidate merge (norm)\n"
            "  --na LIST             cells read as missing besides the empty one (NA;\n"
            "                        e.g. NA,null; docs/operations.md, input files)\n"
            "  --quiet               no progress lines\n\n"
            "Prints one JSON summary line on stdout. Exit: 0 ok, 1 failure, 2 usage.\n\n"
            "Example:\n"
            "  moerec index retrievers --items item_vectors.csv --expert-column genre \\\n"
            "      --events events.csv --popularity --out models/shop/1/retrievers\n");
}

/* 0 parsed, 2 usage error, 3 --help shown. */
static int ix_ret_args(int argc, char **argv, ix_ret_opts *o) {
    enum {
        O_ITEMS = 256,
        O_OUT,
        O_IDCOL,
        O_EXCOL,
        O_FACTORY,
        O_EVENTS,
        O_METRIC,
        O_MERGE,
        O_PILOTS,
        O_EF,
        O_NPROBE,
        O_MAXEXP,
        O_TOPP,
        O_TEMP,
        O_POP,
        O_MH,
        O_QUIET,
        O_NA
    };
    static const struct option opts[] = {{"items", required_argument, 0, O_ITEMS},
                                         {"out", required_argument, 0, O_OUT},
                                         {"id-column", required_argument, 0, O_IDCOL},
                                         {"expert-column", required_argument, 0, O_EXCOL},
                                         {"factory", required_argument, 0, O_FACTORY},
                                         {"events", required_argument, 0, O_EVENTS},
                                         {"metric", required_argument, 0, O_METRIC},
                                         {"merge", required_argument, 0, O_MERGE},
                                         {"pilots", required_argument, 0, O_PILOTS},
                                         {"ef-search", required_argument, 0, O_EF},
                                         {"nprobe", required_argument, 0, O_NPROBE},
                                         {"max-experts", required_argument, 0, O_MAXEXP},
                                         {"top-p", required_argument, 0, O_TOPP},
                                         {"temperature", required_argument, 0, O_TEMP},
                                         {"popularity", no_argument, 0, O_POP},
                                         {"minhash", no_argument, 0, O_MH},
                                         {"quiet", no_argument, 0, O_QUIET},
                                         {"na", required_argument, 0, O_NA},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *cmd = "moerec index retrievers";
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1;) {
        mr_err e;
        mr_err_clear(&e);
        int rc = 0, m;
        switch (c) {
        case O_ITEMS: o->items = optarg; break;
        case O_OUT: o->out = optarg; break;
        case O_IDCOL: o->id_col = optarg; break;
        case O_EXCOL: o->expert_col = optarg; break;
        case O_FACTORY: o->factory = optarg; break;
        case O_EVENTS: o->events = optarg; break;
        case O_METRIC:
            if (strcmp(optarg, "ip") && strcmp(optarg, "l2"))
                rc = mr_err_set(&e, MR_EINVAL, "--metric: '%s' is not ip or l2", optarg);
            o->metric = strcmp(optarg, "ip") ? RETR_METRIC_L2 : RETR_METRIC_IP;
            break;
        case O_MERGE:
            if ((m = retr_set_merge_parse(optarg)) < 0)
                rc = mr_err_set(&e, MR_EINVAL, "--merge: '%s' is not norm, rrf or raw", optarg);
            else o->rc.merge = (router_merge)m;
            break;
        case O_PILOTS: rc = cli_int("--pilots", optarg, 1, 4096, &o->pilots, &e); break;
        case O_EF: rc = cli_int("--ef-search", optarg, 1, 1 << 20, &o->ef_search, &e); break;
        case O_NPROBE: rc = cli_int("--nprobe", optarg, 1, 1 << 20, &o->nprobe, &e); break;
        case O_MAXEXP:
            rc = cli_int("--max-experts", optarg, 1, ROUTER_MAX_EXPERTS, &o->rc.max_experts, &e);
            break;
        case O_TOPP: rc = cli_float_gt("--top-p", optarg, 0, 1, &o->rc.top_p, &e); break;
        case O_TEMP:
            rc = cli_float_gt("--temperature", optarg, 0, 1e6, &o->rc.temperature, &e);
            break;
        case O_POP: o->popularity = 1; break;
        case O_MH: o->minhash = 1; break;
        case O_QUIET: o->quiet = 1; break;
        case O_NA: rc = cli_na("--na", optarg, o->na, sizeof o->na, &e); break;
        case 'h': return ix_ret_usage(stdout), 3;
        default: rc = cli_getopt_error(c, argv, &e); break;
        }
        if (rc) {
            fprintf(stderr, "%s: %s (see --help)\n", cmd, e.msg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", cmd, argv[optind]);
        return 2;
    }
    if (!o->items || !o->out) {
        fprintf(stderr, "%s: --items and --out are required\n\n", cmd);
        ix_ret_usage(stderr);
        return 2;
    }
    if (!!o->events != (o->popularity || o->minhash)) {
        fprintf(stderr, "%s: --events goes with --popularity and/or --minhash\n", cmd);
        return 2;
    }
    return 0;
}

static int ix_retrievers(int argc, char **argv) {
    ix_ret_opts o = {.factory = "IDMap,Flat", .pilots = 8};
    int rc = ix_ret_args(argc, argv, &o);
    if (rc) return rc == 3 ? 0 : rc;
    uint64_t t0 = mr_now_ns();
    mr_err e = {0};
    ix_items it = {0};
    retr_set *set = NULL;
    int64_t n_events = 0;
    int found = 0, limit = ROUTER_MAX_EXPERTS - o.popularity - o.minhash;
    if ((rc = ix_read_items(&o, limit, &it, &e))) goto out;
    retr_set_config sc = {
        .dim = it.dim, .metric = o.metric, .router = o.rc, .expert_column = o.expert_col};
    sc.router.fallback = o.popularity ? "popular" : NULL;
    if ((rc = retr_set_create(&set, &sc, NULL, &e))) goto out;
    for (int x = 0; x < it.n_experts && !rc; x++) rc = ix_build_faiss(&o, &it, x, set, &e);
    if (!rc && o.events) rc = ix_build_events(&o, set, &n_events, &e);
    if (!rc) {
        if (!o.quiet) fprintf(stderr, "pilots: k-means, %d per expert\n", o.pilots);
        if ((rc = router_build_pilots(retr_set_router(set), it.x, it.expert, it.n, o.pilots, &e)))
            mr_err_wrap(&e, "pilots");
    }
    if (!rc && !(rc = ix_mkdir_parents(o.out, &e)) && !(rc = retr_set_save(set, o.out, &e)))
        rc = ix_verify(&o, &it, &found, &e);
    if (rc) goto out;
    json_t *ex = json_array();
    for (int i = 0; i < retr_set_n_experts(set); i++) {
        const retr_set_expert_info *in = retr_set_info(set, i);
        json_array_append_new(ex, json_pack("{s:s, s:s, s:I, s:i, s:s}", "name", in->name, "kind",
                                            retr_kind_name(in->kind), "items",
                                            (json_int_t)retr_size(retr_set_expert_at(set, i)),
                                            "pilots", router_n_pilots(retr_set_router(set), i),
                                            "file", in->file));
    }
    const router_config *c = retr_set_router_config(set);
    ix_print_json(
        json_pack("{s:s, s:s, s:I, s:i, s:s, s:o, s:o, s:I, s:f, s:f, s:i, s:s, s:i, s:f}",
                  "command", "index retrievers", "out", o.out, "items", (json_int_t)it.n, "dim",
                  it.dim, "metric", o.metric == RETR_METRIC_L2 ? "l2" : "ip", "experts", ex,
                  "fallback", c->fallback ? json_string(c->fallback) : json_null(), "events",
                  (json_int_t)n_events, "top_p", (double)c->top_p, "temperature",
                  (double)c->temperature, "max_experts", c->max_experts, "merge",
                  retr_set_merge_name(c->merge), "verify_candidates", found, "seconds",
                  (double)(mr_now_ns() - t0) / 1e9),
        6);
out:
    if (rc) fprintf(stderr, "moerec index retrievers: %s\n", e.msg);
    retr_set_free(set);
    ix_items_free(&it);
    return rc ? 1 : 0;
}

/* ------------------------------------------------------------- graphhash */

typedef struct ix_gh_opts {
    const char *in, *out, *ucol, *icol;
    double resolution;
    uint64_t seed;
    int quiet;
    char na[CLI_NA_MAX]; /* --na, "" = the reader's default */
} ix_gh_opts;

static void ix_gh_usage(FILE *f) {
    fprintf(f, "usage: moerec index graphhash --interactions FILE --out FILE [options]\n\n"
               "Cluster the user x item graph with Louvain and write the GraphHash mappings file\n"
               "(id -> embedding row per side; hashing/graphhash.h).\n\n"
               "  --interactions FILE  CSV with a user and an item column (repeats are summed)\n"
               "  --out FILE           mappings file (written atomically)\n"
               "  --user-column NAME   (user_id)\n"
               "  --item-column NAME   (item_id)\n"
               "  --resolution R       Louvain resolution gamma > 0 (1)\n"
               "  --seed S             Louvain order and fallback hash seed (1)\n"
               "  --na LIST            cells read as missing besides the empty one (NA;\n"
               "                       e.g. NA,null; docs/operations.md, input files)\n"
               "  --quiet              no progress lines\n\n"
               "Prints modularity per level, then one JSON summary line on stdout.\n"
               "Exit: 0 ok, 1 failure, 2 usage.\n\n"
               "Example:\n"
               "  moerec index graphhash --interactions clicks.csv --out graph.map\n");
}

static void ix_gh_level(int level, const louvain_level *lv, void *ctx) {
    if (!*(const int *)ctx)
        fprintf(stderr, "louvain level %d: modularity %.4f, %d communities, %d passes, %.2f s\n",
                level, lv->modularity, lv->ncomm, lv->passes, lv->seconds);
}

static int ix_gh_args(int argc, char **argv, ix_gh_opts *o) {
    enum { O_IN = 256, O_OUT, O_UCOL, O_ICOL, O_RES, O_SEED, O_QUIET, O_NA };
    static const struct option opts[] = {{"interactions", required_argument, 0, O_IN},
                                         {"out", required_argument, 0, O_OUT},
                                         {"user-column", required_argument, 0, O_UCOL},
                                         {"item-column", required_argument, 0, O_ICOL},
                                         {"resolution", required_argument, 0, O_RES},
                                         {"seed", required_argument, 0, O_SEED},
                                         {"quiet", no_argument, 0, O_QUIET},
                                         {"na", required_argument, 0, O_NA},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *cmd = "moerec index graphhash";
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1;) {
        mr_err e;
        mr_err_clear(&e);
        int rc = 0;
        unsigned long long u = 0;
        switch (c) {
        case O_IN: o->in = optarg; break;
        case O_OUT: o->out = optarg; break;
        case O_UCOL: o->ucol = optarg; break;
        case O_ICOL: o->icol = optarg; break;
        case O_RES:
            rc = cli_parse_double("--resolution", optarg, 1e-12, 1e6, &o->resolution, &e);
            break;
        case O_SEED:
            if (!(rc = cli_u64("--seed", optarg, &u, &e))) o->seed = u;
            break;
        case O_QUIET: o->quiet = 1; break;
        case O_NA: rc = cli_na("--na", optarg, o->na, sizeof o->na, &e); break;
        case 'h': return ix_gh_usage(stdout), 3;
        default: rc = cli_getopt_error(c, argv, &e); break;
        }
        if (rc) {
            fprintf(stderr, "%s: %s (see --help)\n", cmd, e.msg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", cmd, argv[optind]);
        return 2;
    }
    if (!o->in || !o->out) {
        fprintf(stderr, "%s: --interactions and --out are required\n\n", cmd);
        ix_gh_usage(stderr);
        return 2;
    }
    return 0;
}

static int ix_graphhash(int argc, char **argv) {
    ix_gh_opts o = {.ucol = "user_id", .icol = "item_id", .resolution = 1, .seed = 1};
    int rc = ix_gh_args(argc, argv, &o);
    if (rc) return rc == 3 ? 0 : rc;
    uint64_t t0 = mr_now_ns();
    mr_err e = {0};
    mr_csv *c = NULL;
    uint64_t *u = NULL, *it = NULL;
    int64_t n = 0, ucap = 0, icap = 0, x = 0;
    int uc = -1, ic = -1;
    bigraph *g = NULL;
    graphhash_map *m = NULL;
    louvain_result rep = {0};
    mr_csv_opts co = cli_csv_opts(o.na);
    if ((rc = mr_csv_open(&c, o.in, &co, &e)) || (rc = mr_csv_need(c, o.ucol, &uc, &e)) ||
        (rc = mr_csv_need(c, o.icol, &ic, &e)))
        goto out;
    mr_progress p;
    mr_progress_begin(&p, "read interactions", "bytes", ix_size(o.in), !o.quiet);
    while ((rc = mr_csv_next(c, &e)) == 1) {
        if (ix_grow((void **)&u, &ucap, n, 8) || ix_grow((void **)&it, &icap, n, 8)) {
            rc = mr_err_set(&e, MR_ENOMEM, "out of memory reading %s", o.in);
            goto out;
        }
        if ((rc = ix_id(c, uc, &x, &e))) goto out;
        u[n] = (uint64_t)x;
        if ((rc = ix_id(c, ic, &x, &e))) goto out;
        it[n++] = (uint64_t)x;
        if ((n & 65535) == 0) mr_progress_update(&p, (uint64_t)mr_csv_offset(c), NULL);
    }
    if (rc) goto out;
    mr_progress_end(&p, mr_csv_offset(c), NULL);
    if (n == 0) {
        rc = mr_err_set(&e, MR_EINVAL, "%s has no interactions", o.in);
        goto out;
    }
    if ((rc = bigraph_build_ids(&g, u, it, NULL, (size_t)n, BIGRAPH_MERGE_DUPLICATES, &e)))
        goto out;
    if (!o.quiet)
        fprintf(stderr, "graph: %d users, %d items, %" PRId64 " edges; clustering\n", g->nu, g->ni,
                g->nedges);
    louvain_params lp = {
        .resolution = o.resolution, .seed = o.seed, .on_level = ix_gh_level, .ctx = &o.quiet};
    if ((rc = graphhash_build(&m, g, &lp, o.seed, &rep, &e)) ||
        (rc = graphhash_map_save(m, o.out, &e)))
        goto out;
    json_t *lv = json_array();
    for (int l = 0; l < rep.nlevels; l++)
        json_array_append_new(lv, json_pack("{s:f, s:i, s:i}", "modularity",
                                            rep.level[l].modularity, "communities",
                                            rep.level[l].ncomm, "passes", rep.level[l].passes));
    ix_print_json(
        json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:i, s:i, s:f, s:i, s:o, s:I, s:I, s:f, s:f}",
                  "command", "index graphhash", "out", o.out, "interactions", (json_int_t)n,
                  "edges", (json_int_t)g->nedges, "users",
                  (json_int_t)graphhash_map_size(m, GRAPHHASH_USERS), "items",
                  (json_int_t)graphhash_map_size(m, GRAPHHASH_ITEMS), "user_rows",
                  (int)graphhash_map_rows(m, GRAPHHASH_USERS), "item_rows",
                  (int)graphhash_map_rows(m, GRAPHHASH_ITEMS), "modularity", rep.modularity,
                  "communities", rep.ncomm, "levels", lv, "cluster_size_max",
                  (json_int_t)rep.size_max, "singletons", (json_int_t)rep.singletons, "resolution",
                  o.resolution, "seconds", (double)(mr_now_ns() - t0) / 1e9),
        6);
out:
    if (rc) fprintf(stderr, "moerec index graphhash: %s\n", e.msg);
    louvain_result_free(&rep);
    graphhash_map_free(m);
    bigraph_free(g);
    mr_csv_close(c);
    free(u);
    free(it);
    return rc ? 1 : 0;
}

/* ------------------------------------------------------------- dispatch */

int ix_tables(int argc, char **argv); /* cmd_index_tables.c */

static void ix_usage(FILE *f) {
    fprintf(f,
            "usage: moerec index retrievers|graphhash|tables|features|embeddings [options]\n\n"
            "  retrievers  items CSV -> retriever set directory (FAISS experts, router pilots,\n"
            "              popularity fallback); models/<name>/<version>/retrievers/\n"
            "  graphhash   interactions CSV -> GraphHash mappings file (Louvain clusters)\n"
            "  tables      model.json + training CSV -> the mappings of its frequency, graph,\n"
            "              double_graph and lsh tables\n"
            "  features    interaction log -> counting-feature columns (counts, smoothed rates,\n"
            "              recency per user, item, user x category; leak-free for training rows)\n"
            "  embeddings  interaction log -> user and item vectors (BPR matrix factorisation):\n"
            "              the items file retrievers reads, the store's item table\n\n"
            "'moerec index TARGET --help' for options.\n\n"
            "Example:\n"
            "  moerec index retrievers --items item_vectors.csv --out models/shop/1/retrievers\n");
}

static int index_main(int argc, char **argv) {
    if (argc < 2) {
        ix_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        ix_usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "retrievers")) return ix_retrievers(argc - 1, argv + 1);
    if (!strcmp(argv[1], "graphhash")) return ix_graphhash(argc - 1, argv + 1);
    if (!strcmp(argv[1], "tables")) return ix_tables(argc - 1, argv + 1);
    if (!strcmp(argv[1], "features")) return ix_features(argc - 1, argv + 1);
    if (!strcmp(argv[1], "embeddings")) return ix_embeddings(argc - 1, argv + 1);
    fprintf(stderr, "moerec index: unknown target '%s'\n\n", argv[1]);
    ix_usage(stderr);
    return 2;
}

MR_COMMAND(
    cmd_index, "index",
    "build retriever sets, GraphHash mappings, counting features and embeddings from CSV logs",
    index_main)

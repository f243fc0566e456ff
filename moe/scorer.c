/* scorer.c — per-call scoring state over a shared read-only model (see
 * scorer.h). Embedding bags are summed straight into the input matrix as
 * features are set (a broadcast field is summed once and copied), so a
 * request's only large buffers are x (n, in_dim) and the pass's arena,
 * both reused across calls on the same scorer.
 *
 * Tables whose rows are fetched (moe_table.fetch: rows in the store, not
 * in memory) are deferred instead: set_cat records the field's rows and
 * row range, and run fetches every such table's distinct rows of the
 * whole batch with ONE call (one batched cached multi-get for all
 * candidates), then builds each bag with the same additions in the same
 * order as the in-memory path, so fp32 rows give bit-identical inputs.
 *
 * In-memory tables, one row at a time (a candidate's features), are
 * deferred too, more lightly: set_cat hashes the values and records the
 * table rows' addresses; the bags are summed into x when the input is next
 * needed (run, moe_scorer_input, a broadcast set_cat), in call order, with
 * the rows of the field a few calls ahead prefetched. A server profile of
 * 500-candidate Scores had 9.8% of its CPU in set_cat, 93% of it waiting
 * on the embedding rows (10,000 random 64-byte rows of 20 tables, more
 * than the core's L2); summed as they arrived, each row's miss was paid
 * alone. The additions and their order are those of the immediate path.
 */
#include "moe/scorer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tensor.h"
#include "moe/layers.h"

/* One deferred set_cat: field f's bag for rows [lo, hi) is the sum (or
 * mean) of table rows prow[first .. first + n). */
typedef struct moe_pending {
    int f, lo, hi;
    uint32_t first, n;
} moe_pending;

struct moe_scorer {
    const moe_model *m;
    int n, cap;
    float *x;   /* (cap, in_dim) */
    float *bag; /* (max table dim) */
    moe_pass pass;
    int ran;                          /* pass holds this batch's gates (moe_scorer_run)     */
    int n_parts;                      /* part passes initialised                          */
    moe_pass part[MOE_SPLIT_MAX - 1]; /* parts 1.. of a split run          */
    moe_pending *pend;                /* (npend) deferred fields of the batch, in call order */
    int npend;
    size_t pend_cap;
    uint64_t *prow; /* (nprow) their rows */
    size_t nprow, prow_cap;
    uint64_t *uniq; /* (nprow) a table's distinct rows, sorted */
    size_t uniq_cap;
    float *fetched; /* (nprow, dim) their vectors */
    size_t fetched_cap;
    moe_pending *mpend; /* (nmpend) deferred in-memory fields of one row each */
    int nmpend;
    size_t mpend_cap;
    const float **mrow; /* (nmrow) their table rows */
    size_t nmrow, mrow_cap;
};

int moe_scorer_create(moe_scorer **out, const moe_model *m, mr_err *e) {
    *out = NULL;
    moe_scorer *s = calloc(1, sizeof *s);
    int maxd = 1;
    for (int i = 0; i < m->n_tables; i++) maxd = m->tables[i].dim > maxd ? m->tables[i].dim : maxd;
    if (s) s->bag = mr_floats_alloc((size_t)maxd);
    if (!s || !s->bag) {
        free(s);
        return mr_err_set(e, MR_ENOMEM, "moe_scorer: out of memory");
    }
    s->m = m;
    moe_pass_init(&s->pass);
    *out = s;
    return 0;
}

void moe_scorer_free(moe_scorer *s) {
    if (!s) return;
    moe_pass_free(&s->pass);
    for (int i = 0; i < s->n_parts; i++) moe_pass_free(&s->part[i]);
    free(s->pend);
    free(s->prow);
    free(s->uniq);
    free(s->mpend);
    free(s->mrow);
    mr_floats_free(s->fetched);
    mr_floats_free(s->x);
    mr_floats_free(s->bag);
    free(s);
}

/* p (an array of *cap items of elem bytes) grown to hold need items,
 * doubling from first: the new array (*cap updated), p when it holds
 * them, NULL without memory (p unchanged). */
static void *reserve(void *p, size_t *cap, size_t need, size_t elem, size_t first) {
    if (need <= *cap) return p;
    size_t c = *cap ? 2 * *cap : first;
    while (c < need) c *= 2;
    void *q = realloc(p, elem * c);
    if (q) *cap = c;
    return q;
}

/* Rows of the in-memory field this many deferred calls ahead are
 * prefetched (a candidate's 10-20 fields: about one candidate ahead). */
#define MPEND_AHEAD 8

static void prefetch_rows(const moe_scorer *s, const moe_pending *pd) {
    size_t bytes = sizeof(float) * (size_t)s->m->tables[s->m->cat[pd->f].table].dim;
    for (uint32_t j = 0; j < pd->n; j++) {
        const char *r = (const char *)s->mrow[pd->first + j];
        for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(r + o);
        __builtin_prefetch(r + bytes - 1);
    }
}

/* Sum the deferred in-memory bags into x, in call order. */
static void flush_mem(moe_scorer *s) {
    const moe_model *m = s->m;
    for (int p = 0; p < s->nmpend && p < MPEND_AHEAD; p++) prefetch_rows(s, &s->mpend[p]);
    for (int p = 0; p < s->nmpend; p++) {
        if (p + MPEND_AHEAD < s->nmpend) prefetch_rows(s, &s->mpend[p + MPEND_AHEAD]);
        const moe_pending *pd = &s->mpend[p];
        const moe_cat_field *c = &m->cat[pd->f];
        int D = m->tables[c->table].dim;
        float *bag = s->x + (long)pd->lo * m->in_dim + c->offset;
        memset(bag, 0, sizeof(float) * (size_t)D);
        for (uint32_t j = 0; j < pd->n; j++) {
            const float *er = s->mrow[pd->first + j];
            for (int d = 0; d < D; d++) bag[d] += er[d];
        }
        if (c->mean && pd->n > 1) {
            float inv = 1.0f / (float)pd->n;
            for (int d = 0; d < D; d++) bag[d] *= inv;
        }
    }
    s->nmpend = 0;
    s->nmrow = 0;
}

/* Record row's field f (in-memory table t) for flush_mem; 1 when there was
 * no memory to grow the lists (the caller sums it at once instead). */
static int defer_mem(moe_scorer *s, int row, int f, const moe_table *t, const char *const *values,
                     const size_t *lens, int nvalues) {
    moe_pending *p = reserve(s->mpend, &s->mpend_cap, (size_t)s->nmpend + 1, sizeof *p, 256);
    if (!p) return 1;
    s->mpend = p;
    const float **r = reserve(s->mrow, &s->mrow_cap, s->nmrow + (size_t)nvalues * IDHASH_MAX_ROWS,
                              sizeof *r, 1024);
    if (!r) return 1;
    s->mrow = r;
    moe_pending *pd = &s->mpend[s->nmpend++];
    pd->f = f;
    pd->lo = row;
    pd->hi = row + 1;
    pd->first = (uint32_t)s->nmrow;
    for (int i = 0; i < nvalues; i++) {
        uint64_t rows[IDHASH_MAX_ROWS];
        int nr = moe_model_value_rows(s->m, f, values[i], lens ? lens[i] : strlen(values[i]), rows);
        for (int j = 0; j < nr; j++) s->mrow[s->nmrow++] = t->data + (long)rows[j] * t->dim;
    }
    pd->n = (uint32_t)(s->nmrow - pd->first);
    return 0;
}

float *moe_scorer_input(moe_scorer *s) {
    flush_mem(s);
    return s->x;
}

int moe_scorer_begin(moe_scorer *s, int n, mr_err *e) {
    const moe_model *m = s->m;
    if (n < 1 || n > MOE_MAX_BATCH)
        return mr_err_set(e, MR_EINVAL, "batch of %d candidates (1..%d)", n, MOE_MAX_BATCH);
    if (n > s->cap) {
        float *x = mr_floats_alloc((size_t)n * (size_t)m->in_dim);
        if (!x) return mr_err_set(e, MR_ENOMEM, "cannot allocate a batch of %d x %d", n, m->in_dim);
        mr_floats_free(s->x);
        s->x = x;
        s->cap = n;
    }
    s->n = n;
    s->npend = 0;
    s->nprow = 0;
    s->nmpend = 0;
    s->nmrow = 0;
    s->ran = 0;
    memset(s->x, 0, sizeof(float) * (size_t)n * (size_t)m->in_dim);
    for (int f = 0; f < m->n_num; f++) {
        float v = (m->num[f].fill - m->num[f].mean) / m->num[f].std;
        for (int r = 0; r < n; r++) s->x[(long)r * m->in_dim + m->num[f].offset] = v;
    }
    return 0;
}

/* set_cat of a fetched table: record the rows, build the bag in run. */
static int defer_cat(moe_scorer *s, int row, int f, const char *const *values, const size_t *lens,
                     int nvalues, mr_err *e) {
    size_t need = s->nprow + (size_t)nvalues * IDHASH_MAX_ROWS;
    moe_pending *p = reserve(s->pend, &s->pend_cap, (size_t)s->npend + 1, sizeof *p, 64);
    if (p) s->pend = p;
    uint64_t *r = p ? reserve(s->prow, &s->prow_cap, need, sizeof *r, 1024) : NULL;
    if (r) s->prow = r;
    uint64_t *u = r ? reserve(s->uniq, &s->uniq_cap, need, sizeof *u, 1024) : NULL;
    if (!u) return mr_err_set(e, MR_ENOMEM, "moe_scorer: out of memory");
    s->uniq = u;
    moe_pending *pd = &s->pend[s->npend++];
    pd->f = f;
    pd->lo = row == MOE_ALL_ROWS ? 0 : row;
    pd->hi = row == MOE_ALL_ROWS ? s->n : row + 1;
    pd->first = (uint32_t)s->nprow;
    for (int i = 0; i < nvalues; i++)
        s->nprow += (size_t)moe_model_value_rows(
            s->m, f, values[i], lens ? lens[i] : strlen(values[i]), s->prow + s->nprow);
    pd->n = (uint32_t)(s->nprow - pd->first);
    return 0;
}

static int u64_cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Fetch each fetched table's distinct rows of the batch (one call per
 * table) and write the deferred bags into x, in call order: a later
 * set_cat of the same field and row replaces an earlier one, as in memory. */
static int resolve_pending(moe_scorer *s, mr_err *e) {
    const moe_model *m = s->m;
    for (int ti = 0; ti < m->n_tables && s->npend; ti++) {
        const moe_table *t = &m->tables[ti];
        if (!t->fetch) continue;
        size_t nu = 0;
        for (int p = 0; p < s->npend; p++)
            if (m->cat[s->pend[p].f].table == ti)
                for (uint32_t j = 0; j < s->pend[p].n; j++)
                    s->uniq[nu++] = s->prow[s->pend[p].first + j];
        if (nu == 0) {
            for (int p = 0; p < s->npend; p++) /* only empty bags: zero the slices */
                if (m->cat[s->pend[p].f].table == ti)
                    for (int r = s->pend[p].lo; r < s->pend[p].hi; r++)
                        memset(s->x + (long)r * m->in_dim + m->cat[s->pend[p].f].offset, 0,
                               sizeof(float) * (size_t)t->dim);
            continue;
        }
        qsort(s->uniq, nu, sizeof *s->uniq, u64_cmp);
        size_t k = 1;
        for (size_t j = 1; j < nu; j++)
            if (s->uniq[j] != s->uniq[k - 1]) s->uniq[k++] = s->uniq[j];
        nu = k;
        if (nu * (size_t)t->dim > s->fetched_cap) {
            mr_floats_free(s->fetched);
            s->fetched_cap = nu * (size_t)t->dim;
            if (!(s->fetched = mr_floats_alloc(s->fetched_cap))) {
                s->fetched_cap = 0;
                return mr_err_set(e, MR_ENOMEM, "moe_scorer: cannot hold %zu rows of table '%s'",
                                  nu, t->name);
            }
        }
        int rc = t->fetch(t->fetch_ctx, ti, s->uniq, nu, s->fetched, e);
        if (rc) return mr_err_wrap(e, "table '%s'", t->name);
        for (int p = 0; p < s->npend; p++) {
            const moe_pending *pd = &s->pend[p];
            const moe_cat_field *c = &m->cat[pd->f];
            if (c->table != ti) continue;
            int D = t->dim; /* the same additions, in the same order, as set_cat's in-memory path */
            memset(s->bag, 0, sizeof(float) * (size_t)D);
            for (uint32_t j = 0; j < pd->n; j++) {
                const uint64_t *hit = bsearch(&s->prow[pd->first + j], s->uniq, nu, sizeof *s->uniq,
                                              u64_cmp);
                const float *er = s->fetched + (size_t)(hit - s->uniq) * (size_t)D;
                for (int d = 0; d < D; d++) s->bag[d] += er[d];
            }
            if (c->mean && pd->n > 1) {
                float inv = 1.0f / (float)pd->n;
                for (int d = 0; d < D; d++) s->bag[d] *= inv;
            }
            for (int r = pd->lo; r < pd->hi; r++)
                memcpy(s->x + (long)r * m->in_dim + c->offset, s->bag,
                       sizeof(float) * (size_t)t->dim);
        }
    }
    s->npend = 0;
    s->nprow = 0;
    return 0;
}

static int check_row(const moe_scorer *s, int row, mr_err *e) {
    if (row != MOE_ALL_ROWS && (row < 0 || row >= s->n))
        return mr_err_set(e, MR_EINVAL, "row %d outside the batch of %d", row, s->n);
    return 0;
}

int moe_scorer_set_cat(moe_scorer *s, int row, int f, const char *const *values, const size_t *lens,
                       int nvalues, mr_err *e) {
    const moe_model *m = s->m;
    int rc = check_row(s, row, e);
    if (rc) return rc;
    if (f < 0 || f >= m->n_cat) return mr_err_set(e, MR_EINVAL, "categorical field %d unknown", f);
    if (nvalues < 0 || nvalues > 64)
        return mr_err_set(e, MR_EINVAL, "feature '%s': %d values (0..64)", m->cat[f].name, nvalues);
    const moe_cat_field *c = &m->cat[f];
    const moe_table *t = &m->tables[c->table];
    if (t->fetch) return defer_cat(s, row, f, values, lens, nvalues, e);
    if (row != MOE_ALL_ROWS && !defer_mem(s, row, f, t, values, lens, nvalues)) return 0;
    flush_mem(s); /* a broadcast (or no memory to defer) after the deferred ones */
    int D = t->dim;
    /* one row: pool straight into x; every row: pool once, then copy */
    float *bag = row == MOE_ALL_ROWS ? s->bag : s->x + (long)row * m->in_dim + c->offset;
    memset(bag, 0, sizeof(float) * (size_t)D);
    int cnt = 0;
    for (int i = 0; i < nvalues; i++) {
        uint64_t rows[IDHASH_MAX_ROWS];
        int nr = moe_model_value_rows(m, f, values[i], lens ? lens[i] : strlen(values[i]), rows);
        for (int j = 0; j < nr; j++) { /* a 16-float row: a loop, not a BLAS call per row */
            const float *er = t->data + (long)rows[j] * D;
            for (int d = 0; d < D; d++) bag[d] += er[d];
        }
        cnt += nr; /* mean over rows, as moe_embbag_forward in training */
    }
    if (c->mean && cnt > 1) {
        float inv = 1.0f / (float)cnt;
        for (int d = 0; d < D; d++) bag[d] *= inv;
    }
    if (row == MOE_ALL_ROWS)
        for (int r = 0; r < s->n; r++)
            memcpy(s->x + (long)r * m->in_dim + c->offset, bag, sizeof(float) * (size_t)D);
    return 0;
}

int moe_scorer_set_num(moe_scorer *s, int row, int f, float value, mr_err *e) {
    const moe_model *m = s->m;
    int rc = check_row(s, row, e);
    if (rc) return rc;
    if (f < 0 || f >= m->n_num) return mr_err_set(e, MR_EINVAL, "numeric field %d unknown", f);
    if (!mr_all_finite(&value, 1))
        return mr_err_set(e, MR_EINVAL, "feature '%s': value is not finite", m->num[f].name);
    float v = (value - m->num[f].mean) / m->num[f].std;
    int r0 = row == MOE_ALL_ROWS ? 0 : row, r1 = row == MOE_ALL_ROWS ? s->n : row + 1;
    for (int r = r0; r < r1; r++) s->x[(long)r * m->in_dim + m->num[f].offset] = v;
    return 0;
}

int moe_scorer_set_extra(moe_scorer *s, int row, const float *v, int n, mr_err *e) {
    const moe_model *m = s->m;
    int rc = check_row(s, row, e);
    if (rc) return rc;
    if (n != m->extra_dim)
        return mr_err_set(e, MR_EINVAL, "extra input of %d floats, model takes %d", n,
                          m->extra_dim);
    if (!mr_all_finite(v, (size_t)n)) return mr_err_set(e, MR_EINVAL, "extra input is not finite");
    int off = m->in_dim - m->extra_dim;
    int r0 = row == MOE_ALL_ROWS ? 0 : row, r1 = row == MOE_ALL_ROWS ? s->n : row + 1;
    for (int r = r0; r < r1; r++)
        memcpy(s->x + (long)r * m->in_dim + off, v, sizeof(float) * (size_t)n);
    return 0;
}

/* tasks/score of rows [r0, r0 + p->B) from a pass over those rows. */
static void outputs(const moe_model *m, const moe_pass *p, int r0, float *tasks, float *score) {
    int T = m->n_tasks;
    for (int b = 0; b < p->B; b++) {
        long r = r0 + b;
        double sc = 0;
        for (int k = 0; k < T; k++) {
            float z = p->logit[k][b];
            float v = m->tasks[k].kind == MOE_TASK_BINARY ? moe_sigmoidf(z) : z;
            if (tasks) tasks[r * T + k] = v;
            sc += m->tasks[k].weight * v;
        }
        if (score) score[r] = (float)sc;
    }
}

int moe_scorer_run(moe_scorer *s, float *tasks, float *score, mr_err *e) {
    const moe_model *m = s->m;
    if (s->n < 1)
        return mr_err_set(e, MR_ESTATE, "moe_scorer_run: no batch (call moe_scorer_begin)");
    flush_mem(s);
    int rc = resolve_pending(s, e);
    if (rc) return rc;
    rc = moe_net_forward(&s->pass, m->net, s->x, s->n, 0, NULL, e);
    if (rc) return rc;
    s->ran = 1;
    outputs(m, &s->pass, 0, tasks, score);
    return 0;
}

typedef struct part_job {
    moe_scorer *s;
    moe_pass *pass;
    int r0, rows, rc;
    float *tasks, *score;
    mr_err err;
} part_job;

static void part_run(void *arg) {
    part_job *j = arg;
    const moe_model *m = j->s->m;
    j->rc = moe_net_forward(j->pass, m->net, j->s->x + (long)j->r0 * m->in_dim, j->rows, 0, NULL,
                            &j->err);
    if (!j->rc) outputs(m, j->pass, j->r0, j->tasks, j->score);
}

int moe_scorer_run_split(moe_scorer *s, float *tasks, float *score, mr_pool *pool, int parts,
                         mr_err *e) {
    if (parts > MOE_SPLIT_MAX) parts = MOE_SPLIT_MAX;
    if (!pool || parts < 2 || s->n < 2 * parts) return moe_scorer_run(s, tasks, score, e);
    flush_mem(s);
    int rc = resolve_pending(s, e); /* one fetch for the whole batch, before it is split */
    if (rc) return rc;
    while (s->n_parts < parts - 1) moe_pass_init(&s->part[s->n_parts++]);
    part_job jobs[MOE_SPLIT_MAX];
    void *args[MOE_SPLIT_MAX];
    for (int k = 0; k < parts; k++) { /* contiguous, sizes differing by at most one row */
        int r0 = (int)((long)s->n * k / parts), r1 = (int)((long)s->n * (k + 1) / parts);
        jobs[k] = (part_job){.s = s,
                             .pass = k ? &s->part[k - 1] : &s->pass,
                             .r0 = r0,
                             .rows = r1 - r0,
                             .tasks = tasks,
                             .score = score};
        args[k] = &jobs[k];
    }
    s->ran = 0; /* no single pass holds the batch's gates */
    if (mr_pool_run(pool, part_run, args, parts))
        return mr_err_set(e, MR_ENOMEM, "moe_scorer_run_split: pool");
    for (int k = 0; k < parts; k++)
        if (jobs[k].rc) return mr_err_set(e, jobs[k].rc, "%s", jobs[k].err.msg);
    return 0;
}

double moe_scorer_active_fraction(const moe_scorer *s) {
    long rows = s->pass.expert_rows, dense = s->pass.expert_rows_dense;
    for (int i = 0; !s->ran && i < s->n_parts; i++) {
        rows += s->part[i].expert_rows;
        dense += s->part[i].expert_rows_dense;
    }
    return dense ? (double)rows / (double)dense : 1.0;
}

static void report_one(moe_gate_report *o, const char *name, int level, const moe_gate *g,
                       const moe_gate_cache *gc, int B) {
    memset(o, 0, sizeof *o);
    snprintf(o->gate, sizeof o->gate, "%s", name);
    o->n = g->n_choice;
    double kept = 0;
    for (int c = 0; c < g->n_choice; c++) {
        snprintf(o->expert[c], sizeof o->expert[c], "l%d.e%d", level, g->choice[c]);
        double w = 0;
        for (int b = 0; b < B; b++) w += gc->weight[(long)b * g->n_choice + c];
        o->weight[c] = (float)(w / B);
        if (c >= g->spec.n_always)
            for (int b = 0; b < B; b++) kept += gc->weight[(long)b * g->n_choice + c] != 0.0f;
    }
    o->active_fraction = g->n_routed ? (float)(kept / ((double)B * g->n_routed)) : 1.0f;
}

int moe_scorer_gate_report(const moe_scorer *s, moe_gate_report *out, int max) {
    const moe_net *n = s->m->net;
    int cnt = 0;
    for (int j = 0; j < n->n_levels; j++) {
        const moe_level *lv = &n->levels[j];
        for (int sl = 0; sl <= lv->n_slots; sl++) {
            if (sl == lv->n_slots && !lv->has_sgate) break;
            if (s->ran && cnt < max) {
                char name[MOE_NAME_MAX];
                int tasks_slots = lv->n_slots == s->m->n_tasks && lv->n_slots > 1;
                if (sl == lv->n_slots) snprintf(name, sizeof name, "level%d/shared", j);
                else if (tasks_slots)
                    snprintf(name, sizeof name, "level%d/task:%.40s", j, s->m->tasks[sl].name);
                else if (lv->n_slots == 1) snprintf(name, sizeof name, "level%d/all", j);
                else snprintf(name, sizeof name, "level%d/group:%d", j, sl);
                report_one(&out[cnt], name, j, sl < lv->n_slots ? &lv->gates[sl] : &lv->sgate,
                           sl < lv->n_slots ? &s->pass.lv[j].gc[sl] : &s->pass.lv[j].sgc, s->n);
            }
            cnt++;
        }
    }
    return cnt;
}

/* scorer.c — per-call scoring state over a shared read-only model (see
 * scorer.h). Embedding bags are summed straight into the input matrix as
 * features are set (a broadcast field is summed once and copied), so a
 * request's only large buffers are x (n, in_dim) and the pass's arena,
 * both reused across calls on the same scorer.
 */
#include "moe/scorer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tensor.h"
#include "moe/layers.h"

struct moe_scorer {
    const moe_model *m;
    int n, cap;
    float *x;          /* (cap, in_dim) */
    float *bag;        /* (max table dim) */
    moe_pass pass;
    int ran;
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
    mr_floats_free(s->x);
    mr_floats_free(s->bag);
    free(s);
}

float *moe_scorer_input(moe_scorer *s) { return s->x; }

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
    s->ran = 0;
    memset(s->x, 0, sizeof(float) * (size_t)n * (size_t)m->in_dim);
    for (int f = 0; f < m->n_num; f++) {
        float v = (m->num[f].fill - m->num[f].mean) / m->num[f].std;
        for (int r = 0; r < n; r++) s->x[(long)r * m->in_dim + m->num[f].offset] = v;
    }
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
        for (int r = 0; r < s->n; r++) memcpy(s->x + (long)r * m->in_dim + c->offset, bag, sizeof(float) * (size_t)D);
    return 0;
}

int moe_scorer_set_num(moe_scorer *s, int row, int f, float value, mr_err *e) {
    const moe_model *m = s->m;
    int rc = check_row(s, row, e);
    if (rc) return rc;
    if (f < 0 || f >= m->n_num) return mr_err_set(e, MR_EINVAL, "numeric field %d unknown", f);
    if (!mr_all_finite(&value, 1)) return mr_err_set(e, MR_EINVAL, "feature '%s': value is not finite", m->num[f].name);
    float v = (value - m->num[f].mean) / m->num[f].std;
    int r0 = row == MOE_ALL_ROWS ? 0 : row, r1 = row == MOE_ALL_ROWS ? s->n : row + 1;
    for (int r = r0; r < r1; r++) s->x[(long)r * m->in_dim + m->num[f].offset] = v;
    return 0;
}

int moe_scorer_set_extra(moe_scorer *s, int row, const float *v, int n, mr_err *e) {
    const moe_model *m = s->m;
    int rc = check_row(s, row, e);
    if (rc) return rc;
    if (n != m->extra_dim) return mr_err_set(e, MR_EINVAL, "extra input of %d floats, model takes %d", n, m->extra_dim);
    if (!mr_all_finite(v, (size_t)n)) return mr_err_set(e, MR_EINVAL, "extra input is not finite");
    int off = m->in_dim - m->extra_dim;
    int r0 = row == MOE_ALL_ROWS ? 0 : row, r1 = row == MOE_ALL_ROWS ? s->n : row + 1;
    for (int r = r0; r < r1; r++) memcpy(s->x + (long)r * m->in_dim + off, v, sizeof(float) * (size_t)n);
    return 0;
}

int moe_scorer_run(moe_scorer *s, float *tasks, float *score, mr_err *e) {
    const moe_model *m = s->m;
    if (s->n < 1) return mr_err_set(e, MR_ESTATE, "moe_scorer_run: no batch (call moe_scorer_begin)");
    int rc = moe_net_forward(&s->pass, m->net, s->x, s->n, 0, NULL, e);
    if (rc) return rc;
    s->ran = 1;
    int T = m->n_tasks;
    for (int r = 0; r < s->n; r++) {
        double sc = 0;
        for (int k = 0; k < T; k++) {
            float z = s->pass.logit[k][r];
            float v = m->tasks[k].kind == MOE_TASK_BINARY ? moe_sigmoidf(z) : z;
            if (tasks) tasks[(long)r * T + k] = v;
            sc += m->tasks[k].weight * v;
        }
        if (score) score[r] = (float)sc;
    }
    return 0;
}

double moe_scorer_active_fraction(const moe_scorer *s) { return moe_pass_active_fraction(&s->pass); }

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
                else if (tasks_slots) snprintf(name, sizeof name, "level%d/task:%.40s", j, s->m->tasks[sl].name);
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

/* train.c — the training loop (see train.h).
 *
 * One step: assemble the batch (embedding bags straight from the dataset
 * CSR), forward with train buffers, masked multi-task loss, backward to the
 * dense gradients and to dx, split dx into per-field bag gradients and
 * scatter them into table-shaped gradient buffers for the rows touched,
 * clip by the global norm, then Adam on the dense weights and a sparse
 * update of the touched rows only. Touched rows are tracked with a flag per
 * table row and a list, so a step costs O(batch) on the tables, never
 * O(table size).
 */
#include "moe/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/progress.h"
#include "common/rng.h"
#include "common/tensor.h"
#include "moe/layers.h"
#include "moe/loss.h"
#include "moe/metrics.h"

void moe_train_defaults(moe_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->epochs = 10;
    o->batch = 256;
    o->lr = 1e-3f;
    o->emb_lr = 1e-3f;
    o->emb_opt = MOE_OPT_ADAM;
    o->clip = 10.0f;
    o->seed = 1;
    o->patience = 2;
}

typedef struct table_state {
    float *g, *m, *v; /* (rows, dim) each */
    uint8_t *touched; /* (rows) */
    uint32_t *list;   /* touched rows this step */
    long nlist;
} table_state;

typedef struct trainer {
    moe_model *m;
    const moe_dataset *d;
    const moe_train_opts *o;
    mr_pool *pool;
    int B;
    float *x, *dx, *y, *mask, *dl[MOE_MAX_TASKS];
    float *grads, *am, *av;
    uint32_t *brows[MOE_MAX_FIELDS], *boffs[MOE_MAX_FIELDS];
    float *drows;
    long max_nnz;
    table_state ts[MOE_MAX_TABLES];
    moe_pass pass;
    moe_adam adam, emb_adam;
} trainer;

static void trainer_free(trainer *t) {
    mr_floats_free(t->x);
    mr_floats_free(t->dx);
    mr_floats_free(t->y);
    mr_floats_free(t->mask);
    for (int k = 0; k < MOE_MAX_TASKS; k++) mr_floats_free(t->dl[k]);
    mr_floats_free(t->grads);
    mr_floats_free(t->am);
    mr_floats_free(t->av);
    for (int f = 0; f < MOE_MAX_FIELDS; f++) {
        free(t->brows[f]);
        free(t->boffs[f]);
    }
    mr_floats_free(t->drows);
    for (int i = 0; i < MOE_MAX_TABLES; i++) {
        mr_floats_free(t->ts[i].g);
        mr_floats_free(t->ts[i].m);
        mr_floats_free(t->ts[i].v);
        free(t->ts[i].touched);
        free(t->ts[i].list);
    }
    moe_pass_free(&t->pass);
}

static int trainer_init(trainer *t, mr_err *e) {
    moe_model *m = t->m;
    const moe_dataset *d = t->d;
    int B = t->B, ok = 1;
    t->x = mr_floats_alloc((size_t)B * (size_t)m->in_dim);
    t->dx = mr_floats_alloc((size_t)B * (size_t)m->in_dim);
    t->y = mr_floats_alloc((size_t)B * (size_t)m->n_tasks);
    t->mask = mr_floats_alloc((size_t)B * (size_t)m->n_tasks);
    for (int k = 0; k < m->n_tasks; k++) ok &= (t->dl[k] = mr_floats_alloc((size_t)B)) != NULL;
    size_t np = (size_t)m->net->n_params;
    t->grads = mr_floats_alloc(np);
    t->am = mr_floats_alloc(np);
    t->av = mr_floats_alloc(np);
    ok &= t->x && t->dx && t->y && t->mask && t->grads && t->am && t->av;
    int maxdim = 1;
    for (int f = 0; f < d->n_cat; f++) {
        long nnz = moe_dataset_max_bag(d, f) * B + 1;
        t->brows[f] = malloc(sizeof(uint32_t) * (size_t)nnz);
        t->boffs[f] = malloc(sizeof(uint32_t) * (size_t)(B + 1));
        ok &= t->brows[f] && t->boffs[f];
        t->max_nnz = nnz > t->max_nnz ? nnz : t->max_nnz;
        int dim = m->tables[m->cat[f].table].dim;
        maxdim = dim > maxdim ? dim : maxdim;
    }
    t->drows = mr_floats_alloc((size_t)(t->max_nnz + 1) * (size_t)maxdim);
    ok &= t->drows != NULL;
    for (int i = 0; ok && i < m->n_tables; i++) {
        size_t n = (size_t)m->tables[i].rows * (size_t)m->tables[i].dim;
        t->ts[i].g = mr_floats_alloc(n);
        t->ts[i].m = mr_floats_alloc(n);
        t->ts[i].v = mr_floats_alloc(n);
        t->ts[i].touched = calloc((size_t)m->tables[i].rows, 1);
        t->ts[i].list = malloc(sizeof(uint32_t) * (size_t)m->tables[i].rows);
        ok &= t->ts[i].g && t->ts[i].m && t->ts[i].v && t->ts[i].touched && t->ts[i].list;
    }
    moe_pass_init(&t->pass);
    if (!ok) return mr_err_set(e, MR_ENOMEM, "train: cannot allocate training state");
    t->adam = (moe_adam){.lr = t->o->lr,
                         .beta1 = 0.9f,
                         .beta2 = 0.999f,
                         .eps = 1e-8f,
                         .weight_decay = t->o->weight_decay};
    t->emb_adam = (moe_adam){.lr = t->o->emb_lr, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    return 0;
}

static int train_step(trainer *t, const long *idx, int B, int epoch, double *loss_out, mr_err *e) {
    moe_model *m = t->m;
    const moe_dataset *d = t->d;
    int D = m->in_dim, T = m->n_tasks;
    moe_dataset_batch(d, m, idx, B, t->x, t->y, t->mask, t->brows, t->boffs);
    int rc = moe_net_forward(&t->pass, m->net, t->x, B, 1, t->pool, e);
    if (rc) return rc;
    float lw[MOE_MAX_TASKS];
    for (int k = 0; k < T; k++) lw[k] = moe_model_loss_weight(m, k, epoch);
    moe_loss l;
    moe_net_loss(&l, t->dl, &t->pass, m->net, t->y, t->mask, lw);
    *loss_out = l.total;
    memset(t->grads, 0, sizeof(float) * (size_t)m->net->n_params);
    memset(t->dx, 0, sizeof(float) * (size_t)B * (size_t)D);
    rc = moe_net_backward(&t->pass, m->net, t->grads, d->n_cat ? t->dx : NULL, t->dl, t->pool, e);
    if (rc) return rc;
    /* embedding gradients: dx's bag slices -> per-lookup rows -> table rows */
    for (int f = 0; f < d->n_cat; f++) {
        const moe_cat_field *c = &m->cat[f];
        const moe_table *tb = &m->tables[c->table];
        table_state *s = &t->ts[c->table];
        moe_embbag_backward(t->drows, t->dx + c->offset, D, t->boffs[f], B, tb->dim, c->mean);
        for (uint32_t j = 0; j < t->boffs[f][B]; j++) {
            uint32_t r = t->brows[f][j];
            if (!s->touched[r]) {
                s->touched[r] = 1;
                s->list[s->nlist++] = r;
            }
            float *g = s->g + (long)r * tb->dim;
            const float *dr = t->drows + (long)j * tb->dim;
            for (int k = 0; k < tb->dim; k++) g[k] += dr[k];
        }
    }
    double sq = 0;
    for (long i = 0; i < m->net->n_params; i++) sq += (double)t->grads[i] * t->grads[i];
    for (int i = 0; i < m->n_tables; i++)
        for (long j = 0; j < t->ts[i].nlist; j++) {
            const float *g = t->ts[i].g + (long)t->ts[i].list[j] * m->tables[i].dim;
            for (int k = 0; k < m->tables[i].dim; k++) sq += (double)g[k] * g[k];
        }
    if (!isfinite(sq))
        return mr_err_set(e, MR_EINTERNAL,
                          "train: gradient is not finite (lower the learning rate?)");
    float sc = moe_clip_scale(sq, t->o->clip);
    if (sc != 1.0f) {
        for (long i = 0; i < m->net->n_params; i++) t->grads[i] *= sc;
        for (int i = 0; i < m->n_tables; i++)
            for (long j = 0; j < t->ts[i].nlist; j++) {
                float *g = t->ts[i].g + (long)t->ts[i].list[j] * m->tables[i].dim;
                for (int k = 0; k < m->tables[i].dim; k++) g[k] *= sc;
            }
    }
    t->adam.step++;
    t->emb_adam.step = t->adam.step;
    moe_adam_update(m->net->params, t->grads, t->am, t->av, m->net->n_params, &t->adam);
    for (int i = 0; i < m->n_tables; i++) {
        table_state *s = &t->ts[i];
        int dim = m->tables[i].dim;
        moe_sparse_update(m->tables[i].data, s->g, s->m, s->v, s->list, s->nlist, dim,
                          t->o->emb_opt, &t->emb_adam);
        for (long j = 0; j < s->nlist; j++) {
            memset(s->g + (long)s->list[j] * dim, 0, sizeof(float) * (size_t)dim);
            s->touched[s->list[j]] = 0;
        }
        s->nlist = 0;
    }
    return 0;
}

int moe_evaluate(const moe_model *m, const moe_dataset *d, const long *idx, long n, int batch,
                 mr_pool *pool, moe_eval *out, mr_err *e) {
    memset(out, 0, sizeof *out);
    int T = m->n_tasks, B = batch > 0 ? batch : 1024;
    float *x = mr_floats_alloc((size_t)B * (size_t)m->in_dim),
          *y = mr_floats_alloc((size_t)B * (size_t)T), *mk = mr_floats_alloc((size_t)B * (size_t)T);
    float *pred = mr_floats_alloc((size_t)n * (size_t)T + 1),
          *ly = mr_floats_alloc((size_t)n * (size_t)T + 1),
          *lm = mr_floats_alloc((size_t)n * (size_t)T + 1);
    moe_pass p;
    moe_pass_init(&p);
    int rc = 0;
    long rows = 0, rows_dense = 0;
    if (!x || !y || !mk || !pred || !ly || !lm) {
        rc = mr_err_set(e, MR_ENOMEM, "evaluate: out of memory for %ld rows", n);
        goto done;
    }
    for (long s = 0; s < n; s += B) {
        int b = (int)(n - s < B ? n - s : B);
        moe_dataset_batch(d, m, idx + s, b, x, y, mk, NULL, NULL);
        if ((rc = moe_net_forward(&p, m->net, x, b, 0, pool, e))) goto done;
        rows += p.expert_rows;
        rows_dense += p.expert_rows_dense;
        for (int k = 0; k < T; k++)
            for (int r = 0; r < b; r++) {
                float z = p.logit[k][r];
                pred[(long)k * n + s + r] = m->tasks[k].kind == MOE_TASK_BINARY ? moe_sigmoidf(z)
                                                                                : z;
                ly[(long)k * n + s + r] = y[(long)k * b + r];
                lm[(long)k * n + s + r] = mk[(long)k * b + r];
            }
    }
    out->n = n;
    out->active_fraction = rows_dense ? (double)rows / (double)rows_dense : 1.0;
    for (int k = 0; k < T; k++) {
        const float *pk = pred + (long)k * n, *yk = ly + (long)k * n, *mk2 = lm + (long)k * n;
        for (long i = 0; i < n; i++) out->count[k] += mk2[i] != 0.0f;
        if (m->tasks[k].kind == MOE_TASK_BINARY) {
            out->auc[k] = moe_auc(pk, yk, mk2, n);
            out->logloss[k] = moe_logloss(pk, yk, mk2, n);
            out->loss += m->tasks[k].loss_weight * out->logloss[k];
        } else {
            out->mse[k] = moe_mse(pk, yk, mk2, n);
            out->loss += m->tasks[k].loss_weight * out->mse[k];
        }
    }
done:
    moe_pass_free(&p);
    mr_floats_free(x);
    mr_floats_free(y);
    mr_floats_free(mk);
    mr_floats_free(pred);
    mr_floats_free(ly);
    mr_floats_free(lm);
    return rc;
}

/* Best-epoch snapshot of every weight. */
static float **snapshot_alloc(const moe_model *m) {
    float **s = calloc((size_t)m->n_tables + 1, sizeof *s);
    if (!s) return NULL;
    s[0] = mr_floats_alloc((size_t)m->net->n_params);
    for (int i = 0; i < m->n_tables; i++)
        s[i + 1] = mr_floats_alloc((size_t)(m->tables[i].rows * m->tables[i].dim));
    for (int i = 0; i <= m->n_tables; i++)
        if (!s[i]) {
            for (int j = 0; j <= m->n_tables; j++) mr_floats_free(s[j]);
            free(s);
            return NULL;
        }
    return s;
}

static void snapshot_copy(const moe_model *m, float **s, int save) {
    size_t n = sizeof(float) * (size_t)m->net->n_params;
    if (save) memcpy(s[0], m->net->params, n);
    else memcpy(m->net->params, s[0], n);
    for (int i = 0; i < m->n_tables; i++) {
        size_t tn = sizeof(float) * (size_t)(m->tables[i].rows * m->tables[i].dim);
        if (save) memcpy(s[i + 1], m->tables[i].data, tn);
        else memcpy(m->tables[i].data, s[i + 1], tn);
    }
}

int moe_train(moe_model *m, const moe_dataset *d, const long *tr, long ntr, const long *va,
              long nva, const moe_train_opts *o, moe_train_result *res, mr_err *e) {
    memset(res, 0, sizeof *res);
    if (ntr < 1) return mr_err_set(e, MR_EINVAL, "train: no training rows");
    if (o->batch < 1 || o->epochs < 1)
        return mr_err_set(e, MR_EINVAL, "train: batch and epochs must be >= 1");
    trainer t = {.m = m, .d = d, .o = o, .B = (int)(o->batch < ntr ? o->batch : ntr)};
    long *order = malloc(sizeof(long) * (size_t)ntr);
    float **best = nva ? snapshot_alloc(m) : NULL;
    int rc = trainer_init(&t, e);
    if (!rc && (!order || (nva && !best))) rc = mr_err_set(e, MR_ENOMEM, "train: out of memory");
    /* the calling thread works too, so N threads = a pool of N - 1 */
    long nthreads = o->threads > 0 ? o->threads : sysconf(_SC_NPROCESSORS_ONLN);
    if (!rc && nthreads > 1 && !(t.pool = mr_pool_create((int)nthreads - 1)))
        rc = mr_err_set(e, MR_ENOMEM, "train: cannot start threads");
    if (rc) goto done;
    memcpy(order, tr, sizeof(long) * (size_t)ntr);
    mr_rng rng;
    mr_rng_seed(&rng, o->seed);
    double best_loss = INFINITY, secs = 0;
    int since_best = 0;
    for (int ep = 1; ep <= o->epochs; ep++) {
        for (long i = ntr - 1; i > 0; i--) {
            long j = (long)mr_rng_below(&rng, (uint64_t)i + 1), tmp = order[i];
            order[i] = order[j];
            order[j] = tmp;
        }
        mr_progress pg;
        char label[48], suffix[64];
        snprintf(label, sizeof label, "train epoch %d/%d", ep, o->epochs);
        mr_progress_begin(&pg, label, "samples", (uint64_t)ntr, o->progress);
        uint64_t t0 = mr_now_ns();
        double sum = 0;
        long steps = 0;
        for (long s = 0; s < ntr; s += t.B) {
            int b = (int)(ntr - s < t.B ? ntr - s : t.B);
            double l;
            if ((rc = train_step(&t, order + s, b, ep - 1, &l, e))) goto done;
            sum += l;
            steps++;
            snprintf(suffix, sizeof suffix, "loss %.4f", sum / (double)steps);
            mr_progress_update(&pg, (uint64_t)(s + b), suffix);
        }
        secs += (double)(mr_now_ns() - t0) / 1e9;
        mr_progress_end(&pg, (uint64_t)ntr, suffix);
        res->epochs_run = ep;
        res->train_loss = sum / (double)steps;
        if (!nva) {
            res->best_epoch = ep;
            continue;
        }
        moe_eval ev;
        if ((rc = moe_evaluate(m, d, va, nva, 1024, t.pool, &ev, e))) goto done;
        if (ev.loss < best_loss - 1e-6) {
            best_loss = ev.loss;
            res->best = ev;
            res->best_epoch = ep;
            snapshot_copy(m, best, 1);
            since_best = 0;
        } else if (++since_best >= o->patience) {
            break;
        }
    }
    if (nva && res->best_epoch) snapshot_copy(m, best, 0);
    res->seconds = secs;
    res->samples_per_s = secs > 0 ? (double)ntr * res->epochs_run / secs : 0;
done:
    if (best)
        for (int i = 0; i <= m->n_tables; i++) mr_floats_free(best[i]);
    free(best);
    free(order);
    mr_pool_free(t.pool);
    trainer_free(&t);
    return rc;
}

/* bpr.c — BPR matrix factorisation (see bpr.h for the update and the
 * deterministic parallel scheme). */
#include "moe/bpr.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "common/tensor.h"

void bpr_defaults(bpr_opts *o) {
    memset(o, 0, sizeof *o);
    o->dim = 32;
    o->epochs = 20;
    o->blocks = 20;
    o->lr = 0.05f;
    o->reg = 0.0025f;
    o->init_std = 0.1f;
    o->seed = 1;
}

typedef struct bpr_job {
    const int32_t *user, *item;
    const uint32_t *order; /* the epoch's shuffled positives            */
    long begin, end;       /* this block's range of order               */
    int shard, n_items, dim;
    const bpr_opts *o;
    float *U;         /* in place: this shard's users only         */
    const float *V;   /* frozen during the block                   */
    float *dV;        /* (n_items, dim) this shard's item deltas   */
    uint8_t *touched; /* (n_items) rows of dV in use               */
    uint64_t seed;
    double loss;
    long steps;
} bpr_job;

static void bpr_block(void *arg) {
    bpr_job *j = arg;
    const int dim = j->dim;
    const float lr = j->o->lr, reg = j->o->reg;
    mr_rng rng;
    mr_rng_seed(&rng, j->seed);
    float diff[1024];
    j->loss = 0;
    j->steps = 0;
    for (long t = j->begin; t < j->end; t++) {
        long k = j->order[t];
        int u = j->user[k];
        if (u % BPR_SHARDS != j->shard) continue;
        int i = j->item[k], n;
        do n = (int)mr_rng_below(&rng, (uint64_t)j->n_items);
        while (n == i);
        float *w = j->U + (size_t)u * dim;
        const float *vi = j->V + (size_t)i * dim, *vn = j->V + (size_t)n * dim;
        float *di = j->dV + (size_t)i * dim, *dn = j->dV + (size_t)n * dim;
        /* the block's view of an item: its start value plus this shard's deltas */
        float x = 0;
        for (int c = 0; c < dim; c++) {
            diff[c] = (vi[c] + di[c]) - (vn[c] + dn[c]);
            x += w[c] * diff[c];
        }
        float g = 1.0f / (1.0f + expf(x)); /* sigma(-x) */
        j->loss += x > 0 ? log1p(exp(-(double)x)) : -(double)x + log1p(exp((double)x));
        j->steps++;
        for (int c = 0; c < dim; c++) {
            float uc = w[c];
            w[c] += lr * (g * diff[c] - reg * uc);
            di[c] += lr * (g * uc - reg * (vi[c] + di[c]));
            dn[c] += lr * (-g * uc - reg * (vn[c] + dn[c]));
        }
        j->touched[i] = j->touched[n] = 1;
    }
}

int bpr_train(const int32_t *user, const int32_t *item, long n, int n_users, int n_items,
              const bpr_opts *o, mr_pool *pool, float *U, float *V, mr_err *e) {
    if (o->dim < 1 || o->dim > 1024 || o->epochs < 0 || o->blocks < 1 || !(o->lr > 0) ||
        !(o->reg >= 0))
        return mr_err_set(e, MR_EINVAL,
                          "bpr: dim 1..1024, epochs >= 0, blocks >= 1, lr > 0, reg >= 0");
    if (n < 1 || n > UINT32_MAX || n_users < 1 || n_items < 2)
        return mr_err_set(e, MR_EINVAL, "bpr: %ld positives, %d users, %d items (>= 1, >= 1, >= 2)",
                          n, n_users, n_items);
    for (long k = 0; k < n; k++)
        if (user[k] < 0 || user[k] >= n_users || item[k] < 0 || item[k] >= n_items)
            return mr_err_set(e, MR_EINVAL, "bpr: positive %ld (%d, %d) out of range", k, user[k],
                              item[k]);
    const int dim = o->dim;
    const size_t vsz = (size_t)n_items * (size_t)dim;
    float *dV = calloc((size_t)BPR_SHARDS * vsz, sizeof *dV);
    uint8_t *touched = calloc((size_t)BPR_SHARDS * (size_t)n_items, 1);
    uint32_t *order = malloc((size_t)n * sizeof *order);
    bpr_job job[BPR_SHARDS];
    void *args[BPR_SHARDS];
    if (!dV || !touched || !order) {
        free(dV);
        free(touched);
        free(order);
        return mr_err_set(e, MR_ENOMEM, "bpr: out of memory (%d shards x %d items x %d dim)",
                          BPR_SHARDS, n_items, dim);
    }
    mr_rng rng;
    mr_rng_seed(&rng, o->seed);
    mr_rng_fill_normal(&rng, U, (long)n_users * dim, o->init_std);
    mr_rng_fill_normal(&rng, V, (long)n_items * dim, o->init_std);
    for (long k = 0; k < n; k++) order[k] = (uint32_t)k;
    int rc = MR_OK;
    for (int ep = 0; ep < o->epochs && !rc; ep++) {
        mr_rng_shuffle(&rng, order, n);
        double loss = 0;
        long steps = 0;
        for (int b = 0; b < o->blocks && !rc; b++) {
            long lo = n * b / o->blocks, hi = n * (b + 1) / o->blocks;
            for (int s = 0; s < BPR_SHARDS; s++) {
                job[s] = (bpr_job){
                    .user = user,
                    .item = item,
                    .order = order,
                    .begin = lo,
                    .end = hi,
                    .shard = s,
                    .n_items = n_items,
                    .dim = dim,
                    .o = o,
                    .U = U,
                    .V = V,
                    .dV = dV + (size_t)s * vsz,
                    .touched = touched + (size_t)s * (size_t)n_items,
                    .seed = o->seed ^ (0x9e3779b97f4a7c15ull *
                                       (uint64_t)(((ep * o->blocks) + b) * BPR_SHARDS + s + 1))};
                args[s] = &job[s];
            }
            if (pool) rc = mr_pool_run(pool, bpr_block, args, BPR_SHARDS);
            else
                for (int s = 0; s < BPR_SHARDS; s++) bpr_block(&job[s]);
            if (rc) {
                mr_err_set(e, rc, "bpr: thread pool failed");
                break;
            }
            for (int s = 0; s < BPR_SHARDS; s++) { /* apply deltas in shard order: deterministic */
                float *d = dV + (size_t)s * vsz;
                uint8_t *t = touched + (size_t)s * (size_t)n_items;
                for (int i = 0; i < n_items; i++) {
                    if (!t[i]) continue;
                    mr_axpy(dim, 1.0f, d + (size_t)i * dim, V + (size_t)i * dim);
                    memset(d + (size_t)i * dim, 0, sizeof(float) * (size_t)dim);
                    t[i] = 0;
                }
                loss += job[s].loss;
                steps += job[s].steps;
            }
        }
        if (!rc && o->progress) o->progress(ep + 1, steps ? loss / (double)steps : 0, o->ctx);
    }
    free(dV);
    free(touched);
    free(order);
    return rc;
}

int bpr_topk(const float *s, int n, int k, int *top, float *topv) {
    int nt = 0;
    for (int i = 0; i < n && k > 0; i++) { /* insertion into a small sorted array */
        if (nt == k && !(s[i] > topv[k - 1])) continue;
        int p = nt < k ? nt++ : k - 1;
        while (p > 0 && topv[p - 1] < s[i]) {
            topv[p] = topv[p - 1];
            top[p] = top[p - 1];
            p--;
        }
        topv[p] = s[i];
        top[p] = i;
    }
    return nt;
}

double bpr_recall_at(const float *U, const float *V, int n_users, int n_items, int dim, int k,
                     const int64_t *train_off, const int32_t *train_items, const int64_t *test_off,
                     const int32_t *test_items) {
    float *s = malloc(sizeof(float) * (size_t)n_items);
    int *top = malloc(sizeof(int) * (size_t)(k > 0 ? k : 1));
    float *topv = malloc(sizeof(float) * (size_t)(k > 0 ? k : 1));
    double sum = 0;
    int users = 0;
    for (int u = 0; s && top && topv && k > 0 && u < n_users; u++) {
        if (test_off[u + 1] == test_off[u]) continue;
        mr_sgemm(0, 1, 1, n_items, dim, 1.0f, U + (size_t)u * dim, V, 0.0f, s);
        for (int64_t t = train_off[u]; t < train_off[u + 1]; t++) s[train_items[t]] = -INFINITY;
        int nt = bpr_topk(s, n_items, k, top, topv);
        int hits = 0;
        for (int64_t t = test_off[u]; t < test_off[u + 1]; t++)
            for (int r = 0; r < nt; r++) hits += top[r] == test_items[t];
        sum += (double)hits / (double)(test_off[u + 1] - test_off[u]);
        users++;
    }
    free(s);
    free(top);
    free(topv);
    return users ? sum / users : 0;
}

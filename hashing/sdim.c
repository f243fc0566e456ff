/* sdim.c — SDIM signature hashing and bucket-table helpers (see sdim.h).
 *
 * Signatures reuse SimHash's projections: bit j of the m sign bits goes to
 * signature j / tau as its (j % tau)-th bit. The table helpers are plain
 * index arithmetic over one block of 4-byte cells so the store can keep a
 * table as one RocksDB value and the ranker can read it in place.
 */
#include "hashing/sdim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/tensor.h"

int sdim_layout_init(sdim_layout *l, int d, int m, int tau, mr_err *e) {
    if (d < 1 || d > SIMHASH_MAX_DIM)
        return mr_err_set(e, MR_EINVAL, "sdim: dimension %d out of range [1, %d]", d,
                          SIMHASH_MAX_DIM);
    if (tau < 0 || tau > SDIM_MAX_TAU)
        return mr_err_set(e, MR_EINVAL, "sdim: tau %d out of range [0, %d]", tau, SDIM_MAX_TAU);
    if (tau > 0 && (m < tau || m % tau != 0 || m > SIMHASH_MAX_BITS))
        return mr_err_set(e, MR_EINVAL,
                          "sdim: m = %d projections must be a positive multiple of tau = %d "
                          "(at most %d)",
                          m, tau, SIMHASH_MAX_BITS);
    l->d = d;
    l->nsig = tau == 0 ? 1 : m / tau;
    l->nbuckets = 1 << tau;
    if ((double)l->nsig * l->nbuckets * (d + 1) * 4.0 > (double)(1ull << 32))
        return mr_err_set(e, MR_EINVAL, "sdim: table of %d x %d x %d floats is over 4 GiB", l->nsig,
                          l->nbuckets, d);
    return 0;
}

int sdim_hasher_create(sdim_hasher **out, int d, int m, int tau, uint64_t seed, mr_err *e) {
    *out = NULL;
    sdim_layout l;
    int rc = sdim_layout_init(&l, d, m, tau, e);
    if (rc) return rc;
    sdim_hasher *h = calloc(1, sizeof *h);
    if (!h) return mr_err_set(e, MR_ENOMEM, "sdim: out of memory");
    h->d = d;
    h->m = tau == 0 ? 0 : m;
    h->tau = tau;
    h->layout = l;
    if (tau > 0 && (rc = simhash_create(&h->sh, d, m, seed, e)) != 0) {
        free(h);
        mr_err_wrap(e, "sdim"); /* returns 0 when e is NULL: return rc */
        return rc;
    }
    *out = h;
    return 0;
}

void sdim_hasher_free(sdim_hasher *h) {
    if (!h) return;
    simhash_free(h->sh);
    free(h);
}

/* Group the m sign bits into nsig tau-bit bucket ids. */
static void sdim_group_bits(const uint64_t *bits, int nsig, int tau, uint32_t *sig) {
    for (int i = 0; i < nsig; i++) {
        uint32_t v = 0;
        for (int b = 0; b < tau; b++) {
            int j = i * tau + b;
            v |= (uint32_t)((bits[j >> 6] >> (j & 63)) & 1u) << b;
        }
        sig[i] = v;
    }
}

void sdim_signatures(const sdim_hasher *h, const float *x, uint32_t *sig) {
    if (h->tau == 0) {
        sig[0] = 0;
        return;
    }
    uint64_t bits[SIMHASH_MAX_BITS / 64];
    simhash_sign(h->sh, x, bits);
    sdim_group_bits(bits, h->layout.nsig, h->tau, sig);
}

int sdim_signatures_batch(const sdim_hasher *h, const float *X, int n, uint32_t *sig,
                          float *scratch, mr_err *e) {
    if (n < 0) return mr_err_set(e, MR_EINVAL, "sdim: negative batch %d", n);
    int nsig = h->layout.nsig;
    if (h->tau == 0) {
        for (int i = 0; i < n; i++) sig[i] = 0;
        return 0;
    }
    if (n == 0) return 0;
    float *p = scratch ? scratch : mr_floats_alloc((size_t)n * (size_t)h->m);
    if (!p) return mr_err_set(e, MR_ENOMEM, "sdim: out of memory for a batch of %d", n);
    simhash_project(h->sh, X, n, p); /* p (n, m) */
    uint64_t bits[SIMHASH_MAX_BITS / 64];
    for (int i = 0; i < n; i++) {
        simhash_bits_from_proj(p + (size_t)i * h->m, h->m, bits);
        sdim_group_bits(bits, nsig, h->tau, sig + (size_t)i * nsig);
    }
    if (!scratch) mr_floats_free(p);
    return 0;
}

size_t sdim_table_cells(const sdim_layout *l) {
    return (size_t)l->nsig * (size_t)l->nbuckets * ((size_t)l->d + 1);
}

size_t sdim_table_bytes(const sdim_layout *l) { return sdim_table_cells(l) * 4; }

size_t sdim_table_sum_offset(const sdim_layout *l, int sig, uint32_t bucket) {
    return ((size_t)sig * (size_t)l->nbuckets + bucket) * (size_t)l->d;
}

size_t sdim_table_count_offset(const sdim_layout *l, int sig, uint32_t bucket) {
    return (size_t)l->nsig * (size_t)l->nbuckets * (size_t)l->d +
           (size_t)sig * (size_t)l->nbuckets + bucket;
}

float *sdim_table_sum(const sdim_layout *l, void *table, int sig, uint32_t bucket) {
    return (float *)table + sdim_table_sum_offset(l, sig, bucket);
}

const float *sdim_table_sum_c(const sdim_layout *l, const void *table, int sig, uint32_t bucket) {
    return (const float *)table + sdim_table_sum_offset(l, sig, bucket);
}

static uint32_t *sdim_count_ptr(const sdim_layout *l, const void *table, int sig, uint32_t bucket) {
    return (uint32_t *)table + sdim_table_count_offset(l, sig, bucket);
}

uint32_t sdim_table_count(const sdim_layout *l, const void *table, int sig, uint32_t bucket) {
    return *sdim_count_ptr(l, table, sig, bucket);
}

void sdim_table_clear(const sdim_layout *l, void *table) { memset(table, 0, sdim_table_bytes(l)); }

static int sdim_check_sig(const sdim_layout *l, const uint32_t *sig, mr_err *e) {
    for (int i = 0; i < l->nsig; i++)
        if (sig[i] >= (uint32_t)l->nbuckets)
            return mr_err_set(e, MR_EINVAL, "sdim: signature %d value %u out of range [0, %d)", i,
                              sig[i], l->nbuckets);
    return 0;
}

int sdim_table_add(const sdim_layout *l, void *table, const uint32_t *sig, const float *x,
                   mr_err *e) {
    int rc = sdim_check_sig(l, sig, e);
    if (rc) return rc;
    for (int i = 0; i < l->nsig; i++) {
        mr_axpy(l->d, 1.0f, x, sdim_table_sum(l, table, i, sig[i]));
        (*sdim_count_ptr(l, table, i, sig[i]))++;
    }
    return 0;
}

int sdim_table_sub(const sdim_layout *l, void *table, const uint32_t *sig, const float *x,
                   mr_err *e) {
    int rc = sdim_check_sig(l, sig, e);
    if (rc) return rc;
    for (int i = 0; i < l->nsig; i++)
        if (*sdim_count_ptr(l, table, i, sig[i]) == 0)
            return mr_err_set(e, MR_ESTATE,
                              "sdim: removing an item from empty bucket %u of signature %d", sig[i],
                              i);
    for (int i = 0; i < l->nsig; i++) {
        float *s = sdim_table_sum(l, table, i, sig[i]);
        uint32_t *c = sdim_count_ptr(l, table, i, sig[i]);
        if (--*c == 0) memset(s, 0, (size_t)l->d * sizeof *s);
        else mr_axpy(l->d, -1.0f, x, s);
    }
    return 0;
}

void sdim_table_interest(const sdim_layout *l, const void *table, const uint32_t *qsig,
                         sdim_pool pool, float *out) {
    int d = l->d;
    memset(out, 0, (size_t)d * sizeof *out);
    for (int i = 0; i < l->nsig; i++) {
        uint32_t b = qsig[i] & (uint32_t)(l->nbuckets - 1);
        uint32_t c = sdim_table_count(l, table, i, b);
        if (c == 0) continue;
        const float *s = sdim_table_sum_c(l, table, i, b);
        float scale = 1.0f;
        if (pool == SDIM_POOL_MEAN) scale = 1.0f / (float)c;
        else if (pool == SDIM_POOL_L2) {
            float nrm = mr_l2norm(s, d);
            scale = nrm > 0.0f ? 1.0f / nrm : 0.0f;
        }
        mr_axpy(d, scale, s, out);
    }
    float inv = 1.0f / (float)l->nsig;
    for (int k = 0; k < d; k++) out[k] *= inv;
}

void sdim_table_interest_batch(const sdim_layout *l, const void *table, const uint32_t *qsig, int n,
                               sdim_pool pool, float *out) {
    for (int j = 0; j < n; j++)
        sdim_table_interest(l, table, qsig + (size_t)j * l->nsig, pool, out + (size_t)j * l->d);
}

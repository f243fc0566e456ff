/* test_retr_faiss.c — the FAISS expert retriever: exact recall on Flat
 * (IP and L2), updates and deletes (removable indexes and HNSW tombstones,
 * automatic rebuild), per-retriever search parameters, bad input, and
 * searches running while another thread adds and deletes (run this file
 * under ThreadSanitizer with -DMOEREC_TSAN=ON). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>

#include "common/clock.h"
#include "index/retrieval/retr_faiss.h"
#include "test_retr_util.h"

#define D 16

static mr_retr *make(const char *factory, retr_metric m, float thr) {
    retr_faiss_config c = {.name = "t",
                           .dim = D,
                           .factory = factory,
                           .metric = m,
                           .ef_search = strstr(factory, "HNSW") ? 64 : 0,
                           .rebuild_threshold = thr};
    mr_retr *r = NULL;
    mr_err e = {0};
    int rc = retr_faiss_create(&r, &c, &e);
    if (rc) fprintf(stderr, "%s\n", e.msg);
    assert_int_equal(rc, 0);
    return r;
}

static void check_exact(mr_retr *r, const float *x, const unsigned char *live, int64_t n,
                        retr_metric m, uint64_t seed) {
    enum { NQ = 20, K = 10 };
    float *q = tr_randn(seed, NQ, D);
    int64_t ids[NQ * K], want[K];
    float sc[NQ * K], wsc[K];
    mr_err e = {0};
    assert_int_equal(retr_search(r, q, D, NQ, K, NULL, ids, sc, &e), 0);
    for (int i = 0; i < NQ; i++) {
        tr_brute(x, NULL, live, n, D, q + i * D, m, K, want, wsc);
        for (int j = 0; j < K; j++) {
            assert_int_equal(ids[i * K + j], want[j]);
            assert_true(fabsf(sc[i * K + j] - wsc[j]) <= 1e-3f * (1 + fabsf(wsc[j])));
        }
    }
    mr_floats_free(q);
}

static int64_t *iota(int64_t n) {
    int64_t *ids = malloc((size_t)n * sizeof *ids);
    for (int64_t i = 0; i < n; i++) ids[i] = i;
    return ids;
}

static void test_flat_exact_recall(void **s) {
    (void)s;
    const int64_t n = 2000;
    float *x = tr_randn(1, n, D);
    int64_t *ids = iota(n);
    for (int m = 0; m < 2; m++) {
        mr_retr *r = make("IDMap,Flat", (retr_metric)m, 0);
        mr_err e = {0};
        assert_int_equal(retr_faiss_add(r, x, ids, n, &e), 0);
        assert_int_equal(retr_size(r), n);
        check_exact(r, x, NULL, n, (retr_metric)m, 2);
        retr_free(r);
    }
    /* IVF with nprobe = nlist scans everything: exact as well. */
    retr_faiss_config c = {
        .name = "ivf", .dim = D, .factory = "IVF8,Flat", .metric = RETR_METRIC_L2, .nprobe = 8};
    mr_retr *r = NULL;
    mr_err e = {0};
    assert_int_equal(retr_faiss_create(&r, &c, &e), 0);
    assert_int_equal(retr_faiss_add(r, x, ids, n, &e), MR_ESTATE); /* untrained */
    assert_non_null(strstr(e.msg, "trained"));
    assert_int_equal(retr_faiss_train(r, x, n, &e), 0);
    assert_int_equal(retr_faiss_add(r, x, ids, n, &e), 0);
    check_exact(r, x, NULL, n, RETR_METRIC_L2, 3);
    retr_free(r);
    /* IVF behind an IDMap: nprobe goes through the parameter space */
    retr_faiss_config c2 = {.name = "ivf2",
                            .dim = D,
                            .factory = "IDMap,IVF4,Flat",
                            .metric = RETR_METRIC_IP,
                            .nprobe = 4};
    assert_int_equal(retr_faiss_create(&r, &c2, &e), 0);
    assert_int_equal(retr_faiss_train(r, x, n, &e), 0);
    assert_int_equal(retr_faiss_add(r, x, ids, n, &e), 0);
    check_exact(r, x, NULL, n, RETR_METRIC_IP, 4);
    retr_faiss_stats st;
    assert_int_equal(retr_faiss_stats_get(r, &st, &e), 0);
    assert_int_equal(st.tombstones, 0);
    assert_int_equal(st.is_trained, 1);
    retr_free(r);
    free(ids);
    mr_floats_free(x);
}

static void test_missing_results_when_k_exceeds_items(void **s) {
    (void)s;
    float *x = tr_randn(4, 5, D);
    int64_t ids[5] = {10, 11, 12, 13, 14}, out[8];
    float sc[8];
    mr_retr *r = make("IDMap,Flat", RETR_METRIC_IP, 0);
    assert_int_equal(retr_faiss_add(r, x, ids, 5, NULL), 0);
    assert_int_equal(retr_search(r, x, D, 1, 8, NULL, out, sc, NULL), 0);
    for (int j = 0; j < 5; j++) assert_true(out[j] >= 10 && out[j] <= 14);
    for (int j = 5; j < 8; j++) {
        assert_int_equal(out[j], -1);
        assert_true(isinf(sc[j]) && sc[j] < 0);
    }
    for (int j = 1; j < 5; j++) assert_true(sc[j - 1] >= sc[j]);
    retr_free(r);
    mr_floats_free(x);
}

/* Shared by Flat (removes from FAISS) and HNSW (tombstones). */
static void check_update_delete(const char *factory, int expect_tomb) {
    const int64_t n = 1000;
    float *x = tr_randn(5, n, D);
    int64_t *ids = iota(n);
    mr_retr *r = make(factory, RETR_METRIC_L2, 0.5f);
    mr_err e = {0};
    assert_int_equal(retr_faiss_add(r, x, ids, n, &e), 0);
    retr_faiss_stats st;
    assert_int_equal(retr_faiss_stats_get(r, &st, &e), 0);
    assert_int_equal(st.tombstones, expect_tomb);

    /* delete every 10th item (100 of them): never returned again */
    int64_t del[100], nrem = 0;
    unsigned char *live = malloc((size_t)n);
    memset(live, 1, (size_t)n);
    for (int i = 0; i < 100; i++) {
        del[i] = i * 10;
        live[i * 10] = 0;
    }
    assert_int_equal(retr_faiss_remove(r, del, 100, &nrem, &e), 0);
    assert_int_equal(nrem, 100);
    int64_t again = 0;
    assert_int_equal(retr_faiss_remove(r, del, 10, &again, &e), 0); /* unknown now: skipped */
    assert_int_equal(again, 0);
    assert_int_equal(retr_size(r), n - 100);
    assert_int_equal(retr_faiss_stats_get(r, &st, &e), 0);
    assert_int_equal(st.n_dead, expect_tomb ? 100 : 0);
    assert_int_equal(st.ntotal, expect_tomb ? n : n - 100);
    enum { K = 10 };
    int64_t out[K], want[K];
    float sc[K], wsc[K];
    double rec = 0;
    for (int i = 0; i < 100; i++) { /* query = a deleted vector itself */
        const float *q = x + (size_t)del[i] * D;
        assert_int_equal(retr_search(r, q, D, 1, K, NULL, out, sc, &e), 0);
        for (int j = 0; j < K; j++) {
            assert_true(out[j] >= 0); /* still k live results */
            assert_true(live[out[j]]);
        }
        tr_brute(x, NULL, live, n, D, q, RETR_METRIC_L2, K, want, wsc);
        rec += tr_overlap(out, want, K);
    }
    assert_true(rec / 100 >= (expect_tomb ? 0.9 : 1.0));

    /* update: id 3 moves onto a new point, searching it returns 3 first */
    float *nv = tr_randn(77, 1, D);
    for (int t = 0; t < D; t++) nv[t] *= 10;
    int64_t id3 = 3;
    assert_int_equal(retr_faiss_add(r, nv, &id3, 1, &e), 0);
    assert_int_equal(retr_size(r), n - 100);
    assert_int_equal(retr_search(r, nv, D, 1, K, NULL, out, sc, &e), 0);
    assert_int_equal(out[0], 3);
    assert_true(fabsf(sc[0]) < 1e-3f);
    for (int j = 1; j < K; j++) assert_true(out[j] != 3); /* the old vector is gone */
    assert_int_equal(retr_search(r, x + 3 * D, D, 1, K, NULL, out, sc, &e), 0);
    assert_true(out[0] != 3);

    /* a repeated id within one add keeps the last vector */
    int64_t dup[2] = {4, 4};
    float two[2 * D];
    memcpy(two, x + 500 * D, sizeof(float) * D);
    memcpy(two + D, nv, sizeof(float) * D);
    for (int t = 0; t < D; t++) two[D + t] = -two[D + t];
    assert_int_equal(retr_faiss_add(r, two, dup, 2, &e), 0);
    assert_int_equal(retr_size(r), n - 100);
    assert_int_equal(retr_search(r, two + D, D, 1, 1, NULL, out, sc, &e), 0);
    assert_int_equal(out[0], 4);

    /* rebuild drops tombstones and keeps answers */
    assert_int_equal(retr_faiss_rebuild(r, &e), 0);
    assert_int_equal(retr_faiss_stats_get(r, &st, &e), 0);
    assert_int_equal(st.n_dead, 0);
    assert_int_equal(st.ntotal, n - 100);
    assert_int_equal(st.n_rebuilds, expect_tomb ? 1u : 0u);
    assert_int_equal(retr_search(r, nv, D, 1, K, NULL, out, sc, &e), 0);
    assert_int_equal(out[0], 3);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(retr_search(r, x + (size_t)del[i] * D, D, 1, K, NULL, out, sc, &e), 0);
        for (int j = 0; j < K; j++) assert_true(out[j] >= 0 && live[out[j]]);
    }
    retr_free(r);
    mr_floats_free(nv);
    free(live);
    free(ids);
    mr_floats_free(x);
}

static void test_flat_update_delete(void **s) {
    (void)s;
    check_update_delete("IDMap,Flat", 0);
}

static void test_hnsw_tombstones(void **s) {
    (void)s;
    check_update_delete("IDMap,HNSW32", 1);
}

static void test_hnsw_auto_rebuild(void **s) {
    (void)s;
    const int64_t n = 600;
    float *x = tr_randn(8, n, D);
    int64_t *ids = iota(n);
    mr_retr *r = make("IDMap,HNSW16", RETR_METRIC_IP, 0.1f);
    mr_err e = {0};
    assert_int_equal(retr_faiss_add(r, x, ids, n, &e), 0);
    retr_faiss_stats st;
    assert_int_equal(retr_faiss_remove(r, ids, 50, NULL, &e), 0); /* 8.3%: below */
    assert_int_equal(retr_faiss_stats_get(r, &st, &e), 0);
    assert_int_equal(st.n_rebuilds, 0);
    assert_int_equal(st.n_dead, 50);
    assert_int_equal(retr_faiss_remove(r, ids + 50, 20, NULL, &e), 0); /* 11.7%: above */
    assert_int_equal(retr_faiss_stats_get(r, &st, &e), 0);
    assert_int_equal(st.n_rebuilds, 1);
    assert_int_equal(st.n_dead, 0);
    assert_int_equal(st.n_live, n - 70);
    assert_int_equal(st.ntotal, n - 70);
    retr_free(r);
    free(ids);
    mr_floats_free(x);
}

/* Tombstones clustered around the query (more than k of them, still under
 * the rebuild threshold) must not leave the answer short: every result is
 * live and there are k of them, the exact live top-k (Flat-like recall at
 * this size with efSearch 64). */
static void test_hnsw_dead_neighbours_do_not_shorten_results(void **s) {
    (void)s;
    enum { K = 10, NDEAD = 150 };
    const int64_t n = 1000;
    float *x = tr_randn(21, n, D);
    int64_t *ids = iota(n);
    mr_retr *r = make("IDMap,HNSW32", RETR_METRIC_L2, 0.2f); /* 150 / 1000 < 0.2: no rebuild */
    mr_err e = {0};
    assert_int_equal(retr_faiss_add(r, x, ids, n, &e), 0);
    const float *q = x; /* item 0 itself: its NDEAD nearest (itself included) are deleted */
    int64_t dead[NDEAD], got[K];
    float sc[NDEAD], gsc[K];
    tr_brute(x, NULL, NULL, n, D, q, RETR_METRIC_L2, NDEAD, dead, sc);
    assert_int_equal(retr_faiss_remove(r, dead, NDEAD, NULL, &e), 0);
    retr_faiss_stats st;
    assert_int_equal(retr_faiss_stats_get(r, &st, &e), 0);
    assert_int_equal(st.n_rebuilds, 0);
    assert_int_equal(st.n_dead, NDEAD);
    unsigned char *live = malloc((size_t)n);
    memset(live, 1, (size_t)n);
    for (int i = 0; i < NDEAD; i++) live[dead[i]] = 0;
    int64_t want[K];
    float wsc[K];
    tr_brute(x, NULL, live, n, D, q, RETR_METRIC_L2, K, want, wsc);
    assert_int_equal(retr_search(r, q, D, 1, K, NULL, got, gsc, &e), 0);
    int hit = 0;
    for (int j = 0; j < K; j++) {
        assert_true(got[j] >= 0);
        assert_int_equal(live[got[j]], 1);
        for (int t = 0; t < K; t++) hit += got[j] == want[t];
    }
    assert_true(hit >= K - 1); /* HNSW is approximate: allow one miss */
    free(live);
    retr_free(r);
    free(ids);
    mr_floats_free(x);
}

static void test_search_params(void **s) {
    (void)s;
    mr_err e = {0};
    mr_retr *h = make("IDMap,HNSW32", RETR_METRIC_L2, 0);
    assert_int_equal(retr_faiss_set_params(h, 128, 0, &e), 0);
    mr_retr *f = make("IDMap,Flat", RETR_METRIC_L2, 0);
    assert_int_equal(retr_faiss_set_params(f, 0, 4, &e), MR_EINVAL); /* no nprobe on Flat */
    assert_non_null(strstr(e.msg, "nprobe"));
    assert_int_equal(retr_faiss_set_params(f, -1, 0, &e), MR_EINVAL);
    retr_faiss_config c = {.name = "x", .dim = D, .factory = "IDMap,Flat", .ef_search = 16};
    mr_retr *r = NULL;
    assert_int_equal(retr_faiss_create(&r, &c, &e), MR_EINVAL); /* efSearch on Flat */
    assert_null(r);
    retr_free(h);
    retr_free(f);
}

static void test_bad_input(void **s) {
    (void)s;
    mr_err e = {0};
    mr_retr *r = make("IDMap,Flat", RETR_METRIC_IP, 0);
    float *x = tr_randn(9, 10, D);
    int64_t ids[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, out[RETR_FETCH_MAX + 1];
    float sc[RETR_FETCH_MAX + 1];
    assert_int_equal(retr_faiss_add(r, x, ids, 10, &e), 0);
    assert_int_equal(retr_search(r, x, D + 1, 1, 5, NULL, out, sc, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "dimension"));
    assert_int_equal(retr_search(r, x, D, 1, 0, NULL, out, sc, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "k = 0"));
    assert_int_equal(retr_search(r, x, D, 1, RETR_FETCH_MAX + 1, NULL, out, sc, &e), MR_EINVAL);
    assert_int_equal(retr_search(r, x, D, 0, 5, NULL, out, sc, &e), MR_EINVAL);
    assert_int_equal(retr_search(r, NULL, D, 1, 5, NULL, out, sc, &e), MR_EINVAL);
    float q[D];
    memcpy(q, x, sizeof q);
    q[7] = NAN;
    assert_int_equal(retr_search(r, q, D, 1, 5, NULL, out, sc, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "NaN"));
    assert_int_equal(retr_faiss_add(r, q, ids, 1, &e), MR_EINVAL);
    int64_t neg = -5;
    assert_int_equal(retr_faiss_add(r, x, &neg, 1, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "negative"));
    assert_int_equal(retr_faiss_add(r, x, ids, 0, &e), MR_EINVAL);
    assert_int_equal(retr_faiss_remove(r, NULL, 3, NULL, &e), MR_EINVAL);
    assert_int_equal(retr_size(r), 10); /* nothing above changed the index */
    retr_free(r);

    mr_retr *bad = NULL;
    retr_faiss_config c = {.name = "b", .dim = D, .factory = "NoSuchIndex42"};
    assert_int_equal(retr_faiss_create(&bad, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "factory"));
    c.factory = "HNSW32"; /* cannot add with ids: clear advice */
    assert_int_equal(retr_faiss_create(&bad, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "IDMap,HNSW32"));
    c.factory = "IDMap,Flat";
    c.dim = 0;
    assert_int_equal(retr_faiss_create(&bad, &c, &e), MR_EINVAL);
    c.dim = D;
    c.name = "bad name!";
    assert_int_equal(retr_faiss_create(&bad, &c, &e), MR_EINVAL);
    c.name = "ok";
    c.metric = (retr_metric)7;
    assert_int_equal(retr_faiss_create(&bad, &c, &e), MR_EINVAL);
    c.metric = RETR_METRIC_IP;
    c.rebuild_threshold = 1.5f;
    assert_int_equal(retr_faiss_create(&bad, &c, &e), MR_EINVAL);
    assert_null(bad);
    mr_floats_free(x);
}

/* ---- concurrent searches while a writer adds, updates and deletes ---- */

#define CN 3000
typedef struct conc {
    mr_retr *r;
    const float *x;
    atomic_int stop;
    atomic_int bad;
    atomic_long searches;
} conc;

static void *conc_reader(void *arg) {
    conc *c = arg;
    enum { K = 10 };
    int64_t out[4 * K];
    float sc[4 * K];
    long i = 0;
    while (!atomic_load(&c->stop) || i < 20) {
        const float *q = c->x + (size_t)((i * 7) % (CN - 4)) * D;
        mr_err e = {0};
        if (retr_search(c->r, q, D, 4, K, NULL, out, sc, &e)) {
            fprintf(stderr, "search failed: %s\n", e.msg);
            atomic_store(&c->bad, 1);
        }
        for (int j = 0; j < 4 * K; j++) {
            if (out[j] < -1 || out[j] >= CN) atomic_store(&c->bad, 2);
            if (j % K && out[j] >= 0 && sc[j] > sc[j - 1]) atomic_store(&c->bad, 3);
        }
        i++;
        atomic_fetch_add(&c->searches, 1);
    }
    return NULL;
}

static void check_concurrent(const char *factory) {
    float *x = tr_randn(11, CN, D);
    int64_t *ids = iota(CN);
    retr_faiss_config cfg = {.name = "c",
                             .dim = D,
                             .factory = factory,
                             .metric = RETR_METRIC_L2,
                             .add_batch = 64,
                             .rebuild_threshold = 0.05f};
    mr_retr *r = NULL;
    mr_err e = {0};
    assert_int_equal(retr_faiss_create(&r, &cfg, &e), 0);
    assert_int_equal(retr_faiss_add(r, x, ids, 500, &e), 0);
    conc c = {.r = r, .x = x};
    pthread_t th[3];
    for (int t = 0; t < 3; t++) pthread_create(&th[t], NULL, conc_reader, &c);
    for (int64_t at = 500; at < CN; at += 250) /* add in chunks while readers run */
        assert_int_equal(retr_faiss_add(r, x + at * D, ids + at, 250, &e), 0);
    assert_int_equal(retr_faiss_add(r, x, ids, 200, &e), 0);             /* updates */
    assert_int_equal(retr_faiss_remove(r, ids + 200, 300, NULL, &e), 0); /* forces a rebuild */
    atomic_store(&c.stop, 1);
    for (int t = 0; t < 3; t++) pthread_join(th[t], NULL);
    assert_int_equal(atomic_load(&c.bad), 0);
    assert_true(atomic_load(&c.searches) >= 60);
    assert_int_equal(retr_size(r), CN - 300);
    retr_faiss_stats st;
    retr_faiss_stats_get(r, &st, &e);
    if (st.tombstones) assert_true(st.n_rebuilds >= 1);
    retr_free(r);
    free(ids);
    mr_floats_free(x);
}

static void test_concurrent_flat(void **s) {
    (void)s;
    check_concurrent("IDMap,Flat");
}

static void test_concurrent_hnsw(void **s) {
    (void)s;
    check_concurrent("IDMap,HNSW16");
}

/* A long add must not hold readers off: the writer takes the write lock
 * per add_batch vectors, so the longest single search during the add is a
 * small fraction of the whole add (coarse locking would make it ~all). */
typedef struct stall {
    mr_retr *r;
    const float *q;
    atomic_int stop;
    double worst_s;
    long n;
} stall;

static void *stall_reader(void *arg) {
    stall *st = arg;
    int64_t out[5];
    float sc[5];
    while (!atomic_load(&st->stop)) {
        uint64_t t = mr_now_ns();
        retr_search(st->r, st->q, D, 1, 5, NULL, out, sc, NULL);
        double s = (mr_now_ns() - t) / 1e9;
        if (s > st->worst_s) st->worst_s = s;
        st->n++;
    }
    return NULL;
}

static void test_writer_does_not_block_readers(void **s) {
    (void)s;
    enum { N = 12000 };
    float *x = tr_randn(31, N, D);
    int64_t *ids = iota(N);
    retr_faiss_config c = {.name = "w",
                           .dim = D,
                           .factory = "IDMap,HNSW16",
                           .metric = RETR_METRIC_L2,
                           .add_batch = 128};
    mr_retr *r = NULL;
    assert_int_equal(retr_faiss_create(&r, &c, NULL), 0);
    assert_int_equal(retr_faiss_add(r, x, ids, 100, NULL), 0);
    stall st = {.r = r, .q = x};
    pthread_t th;
    pthread_create(&th, NULL, stall_reader, &st);
    uint64_t t0 = mr_now_ns();
    assert_int_equal(retr_faiss_add(r, x + 100 * D, ids + 100, N - 100, NULL), 0);
    double add_s = (mr_now_ns() - t0) / 1e9;
    atomic_store(&st.stop, 1);
    pthread_join(th, NULL);
    assert_true(st.n >= 10);
    assert_true(st.worst_s < add_s / 4);
    retr_free(r);
    free(ids);
    mr_floats_free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flat_exact_recall),
        cmocka_unit_test(test_missing_results_when_k_exceeds_items),
        cmocka_unit_test(test_flat_update_delete),
        cmocka_unit_test(test_hnsw_tombstones),
        cmocka_unit_test(test_hnsw_auto_rebuild),
        cmocka_unit_test(test_hnsw_dead_neighbours_do_not_shorten_results),
        cmocka_unit_test(test_search_params),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_concurrent_flat),
        cmocka_unit_test(test_concurrent_hnsw),
        cmocka_unit_test(test_writer_does_not_block_readers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

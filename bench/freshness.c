/* freshness — time from UpsertItems ack to Retrieve returning the item, and Retrieve QPS under 1,000 upserts/s
 *
 * Run by bench/freshness.sh, which builds the demo world (demo-data,
 * train, index retrievers with one FAISS expert per genre), starts
 * `moerec serve` and passes its target:
 *   bench_freshness --target HOST:PORT [--seconds S] [--clients N] [--rate R] [--pool P]
 * First a pool of P live items is upserted (so the index has the same
 * size in both phases); then N reader threads send Retrieve (a random
 * query vector, k = 100) for S seconds without writes and S seconds while
 * one writer re-upserts pool items at R items/s (batches of 10 every
 * 10 ms, each with a fresh vector; its genre, and so its expert, stays
 * that of its id, or with --move is drawn anew each time, so items move
 * between experts). After every batch's ack the writer asks Retrieve with
 * the first item's new vector, from the expert of its new genre, until the
 * item comes back: that time is the visibility latency. One JSON line
 * last.
 */
#include <grpc/grpc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/rng.h"
#include "proto/moerec.pb-c.h"
#include "tests/integration/grpc_client.h"

#define DIM 16
#define BATCH 10
#define MAX_SAMPLES 100000
#define ID0 900000000LL

static const char *k_genres[] = {"action",  "comedy", "drama",       "horror",
                                 "romance", "scifi",  "documentary", "animation"};

static const char *g_target;
static double g_seconds = 5;
static double g_slice = 1; /* phases alternate in slices of this many seconds */
static int g_move;         /* 1: every upsert draws a new genre (items move between experts) */

static grpc_channel *open_channel(void) {
    test_server ts;
    memset(&ts, 0, sizeof ts);
    snprintf(ts.target, sizeof ts.target, "%s", g_target);
    return test_channel(&ts);
}

static void randn(mr_rng *r, float *v, float scale) {
    for (int j = 0; j < DIM; j++) v[j] = (float)mr_rng_normal(r) * scale;
}

/* Retrieve(query_vector = q, k, from `expert` only unless NULL); returns
 * 1 if `want` (or any, want < 0) is among the items, 0 if not, -1 on
 * error. */
static int retrieve(grpc_channel *ch, float *q, int k, const char *expert, long long want) {
    Moerec__V1__RetrieveRequest r = MOEREC__V1__RETRIEVE_REQUEST__INIT;
    r.query_vector = q;
    r.n_query_vector = DIM;
    r.k = (uint32_t)k;
    char *names[1] = {(char *)expert};
    if (expert) {
        r.retrievers = names;
        r.n_retrievers = 1;
    }
    call_result res;
    ProtobufCMessage *resp = NULL;
    if (test_unary(ch, "/moerec.v1.Recommender/Retrieve", &r.base,
                   &moerec__v1__retrieve_response__descriptor, 10, &resp, &res) ||
        res.status != GRPC_STATUS_OK) {
        fprintf(stderr, "freshness: Retrieve failed: %d %s\n", (int)res.status, res.details);
        call_result_free(&res);
        return -1;
    }
    Moerec__V1__RetrieveResponse *out = (void *)resp;
    int found = want < 0 && out->n_items > 0;
    char w[24];
    snprintf(w, sizeof w, "%lld", want);
    for (size_t i = 0; !found && i < out->n_items; i++) found = !strcmp(out->items[i]->item_id, w);
    protobuf_c_message_free_unpacked(resp, NULL);
    call_result_free(&res);
    return found;
}

/* Upsert ids[0..n) with vectors v (n, DIM) and random genres; *genre0
 * (may be NULL) gets item 0's. */
static int upsert(grpc_channel *ch, const long long *ids, float *v, int n, const char **genre0,
                  mr_rng *rng) {
    Moerec__V1__Item it[BATCH * 10], *ip[BATCH * 10];
    Moerec__V1__Features f[BATCH * 10];
    Moerec__V1__CategoricalFeature c[BATCH * 10], *cp[BATCH * 10][1];
    char idb[BATCH * 10][24], *gv[BATCH * 10][1];
    for (int i = 0; i < n; i++) {
        moerec__v1__item__init(&it[i]);
        snprintf(idb[i], sizeof idb[i], "%lld", ids[i]);
        it[i].item_id = idb[i];
        it[i].embedding = v + (size_t)i * DIM;
        it[i].n_embedding = DIM;
        moerec__v1__features__init(&f[i]);
        moerec__v1__categorical_feature__init(&c[i]);
        c[i].name = "genre";
        gv[i][0] = (char *)k_genres[g_move ? mr_rng_below(rng, 8) : (uint64_t)(ids[i] % 8)];
        c[i].values = gv[i];
        c[i].n_values = 1;
        cp[i][0] = &c[i];
        f[i].categorical = cp[i];
        f[i].n_categorical = 1;
        it[i].features = &f[i];
        if (i == 0 && genre0) *genre0 = gv[i][0];
        ip[i] = &it[i];
    }
    Moerec__V1__UpsertItemsRequest r = MOEREC__V1__UPSERT_ITEMS_REQUEST__INIT;
    r.items = ip;
    r.n_items = (size_t)n;
    call_result res;
    ProtobufCMessage *resp = NULL;
    int rc = test_unary(ch, "/moerec.v1.Recommender/UpsertItems", &r.base,
                        &moerec__v1__upsert_items_response__descriptor, 10, &resp, &res);
    if (rc || res.status != GRPC_STATUS_OK) {
        fprintf(stderr, "freshness: UpsertItems failed: %d %s\n", (int)res.status, res.details);
        rc = -1;
    }
    if (resp) protobuf_c_message_free_unpacked(resp, NULL);
    call_result_free(&res);
    return rc;
}

typedef struct reader {
    uint64_t seed;
    long n, errors;

} reader;

static void *reader_main(void *arg) {
    reader *c = arg;
    grpc_channel *ch = open_channel();
    mr_rng rng;
    mr_rng_seed(&rng, c->seed);
    float q[DIM];
    uint64_t end = mr_now_ns() + (uint64_t)(g_slice * 1e9);
    while (mr_now_ns() < end) {
        randn(&rng, q, 1.0f);
        if (retrieve(ch, q, 100, NULL, -1) < 0) c->errors++;
        else c->n++;
    }
    grpc_channel_destroy(ch);
    return NULL;
}

typedef struct writer {
    int rate, pool;
    long upserted, errors, nsamples;
    long first_try;     /* samples found by the first Retrieve after the ack */
    double *visible_ms; /* (MAX_SAMPLES) */
} writer;

static void sleep_until(uint64_t t_ns) {
    uint64_t now = mr_now_ns();
    if (t_ns <= now) return;
    struct timespec ts = {(time_t)((t_ns - now) / 1000000000u), (long)((t_ns - now) % 1000000000u)};
    nanosleep(&ts, NULL);
}

static void *writer_main(void *arg) {
    writer *w = arg;
    grpc_channel *ch = open_channel();
    mr_rng rng;
    mr_rng_seed(&rng, 99 + (uint64_t)w->upserted);
    long long ids[BATCH];
    float v[BATCH * DIM];
    uint64_t start = mr_now_ns(), end = start + (uint64_t)(g_slice * 1e9);
    uint64_t period = (uint64_t)(1e9 * BATCH / w->rate);
    for (long b = 0;; b++) {
        uint64_t slot = start + (uint64_t)b * period;
        if (slot >= end) break;
        sleep_until(slot);
        for (int i = 0; i < BATCH; i++)
            ids[i] = ID0 + (long long)mr_rng_below(&rng, (uint64_t)w->pool);
        /* a fresh, long vector: IP with itself beats every other item */
        randn(&rng, v, 4.0f);
        for (int i = 1; i < BATCH; i++) randn(&rng, v + i * DIM, 1.0f);
        for (int i = 1; i < BATCH; i++)
            if (ids[i] == ids[0]) ids[i] = ID0 + w->pool + i; /* keep v0 */
        const char *g0 = NULL;
        char expert[64];
        if (upsert(ch, ids, v, BATCH, &g0, &rng)) {
            w->errors++;
            continue;
        }
        uint64_t acked = mr_now_ns();
        w->upserted += BATCH;
        snprintf(expert, sizeof expert, "genre_%s", g0);
        int found = 0, tries = 0;
        while (tries < 1000 && found == 0) {
            found = retrieve(ch, v, 10, expert, ids[0]);
            tries++;
        }
        w->first_try += found == 1 && tries == 1;
        if (found == 1 && w->nsamples < MAX_SAMPLES)
            w->visible_ms[w->nsamples++] = (double)(mr_now_ns() - acked) / 1e6;
        else w->errors++;
    }
    grpc_channel_destroy(ch);
    return NULL;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *v, long n, double p) {
    if (n == 0) return -1;
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    long i = (long)(p * (double)(n - 1) + 0.5);
    return v[i];
}

/* Reader calls over one slice (with a writer when w != NULL). */
static long run_slice(int clients, writer *w, long *errors) {
    pthread_t th[64], wt;
    reader rd[64];
    for (int i = 0; i < clients; i++) {
        rd[i] = (reader){.seed = 1000 + (uint64_t)i};
        pthread_create(&th[i], NULL, reader_main, &rd[i]);
    }
    if (w) pthread_create(&wt, NULL, writer_main, w);
    long n = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(th[i], NULL);
        n += rd[i].n;
        *errors += rd[i].errors;
    }
    if (w) pthread_join(wt, NULL);
    return n;
}

int main(int argc, char **argv) {
    int clients = 2, rate = 1000, pool = 2000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--target") && i + 1 < argc) g_target = argv[++i];
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) g_seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--clients") && i + 1 < argc) clients = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rate") && i + 1 < argc) rate = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--pool") && i + 1 < argc) pool = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--move")) g_move = 1;
        else {
            fprintf(stderr, "usage: bench_freshness --target HOST:PORT [--seconds S] [--clients N] "
                            "[--rate ITEMS_PER_S] [--pool N] [--move]\n");
            return 2;
        }
    }
    if (!g_target || clients < 1 || clients > 64 || rate < BATCH || pool < BATCH ||
        g_seconds <= 0) {
        fprintf(stderr, "freshness: --target is required; clients 1..64, rate >= %d, pool >= %d\n",
                BATCH, BATCH);
        return 2;
    }
    grpc_init();
    grpc_channel *ch = open_channel();
    mr_rng rng;
    mr_rng_seed(&rng, 7);
    long long ids[BATCH * 10];
    float v[BATCH * 10 * DIM];
    for (int at = 0; at < pool; at += BATCH * 10) { /* the live pool, before measuring */
        int n = pool - at < BATCH * 10 ? pool - at : BATCH * 10;
        for (int i = 0; i < n; i++) ids[i] = ID0 + at + i;
        for (int i = 0; i < n; i++) randn(&rng, v + i * DIM, 1.0f);
        if (upsert(ch, ids, v, n, NULL, &rng)) return 1;
    }
    grpc_channel_destroy(ch);
    /* Without and with writes alternate slice by slice, so the load of a
     * shared machine drifts over both phases alike. */
    long err_a = 0, err_b = 0, n_a = 0, n_b = 0;
    writer w = {.rate = rate, .pool = pool, .visible_ms = malloc(MAX_SAMPLES * sizeof(double))};
    int slices = (int)(g_seconds / g_slice + 0.5);
    if (slices < 1) slices = 1;
    for (int t = 0; t < slices; t++) {
        n_a += run_slice(clients, NULL, &err_a);
        n_b += run_slice(clients, &w, &err_b);
    }
    double qps_a = (double)n_a / (slices * g_slice), qps_b = (double)n_b / (slices * g_slice);
    double p50 = pct(w.visible_ms, w.nsamples, 0.5), p99 = pct(w.visible_ms, w.nsamples, 0.99);
    double achieved = (double)w.upserted / (slices * g_slice);
    fprintf(
        stderr,
        "freshness: %d clients, Retrieve k=100: %.0f req/s without writes, %.0f with "
        "%.0f upserts/s (ratio %.3f); visible after ack: p50 %.3f ms, p99 %.3f ms (%ld samples)\n",
        clients, qps_a, qps_b, achieved, qps_b / qps_a, p50, p99, w.nsamples);
    printf("{\"bench\":\"freshness\",\"clients\":%d,\"seconds\":%g,\"pool\":%d,\"move\":%d,"
           "\"upserts_per_s_target\":%d,\"upserts_per_s\":%.0f,\"qps_no_writes\":%.1f,"
           "\"qps_under_writes\":%.1f,\"qps_ratio_under_writes\":%.3f,\"visible_p50_ms\":%.3f,"
           "\"visible_p99_ms\":%.3f,\"visible_first_try\":%.4f,\"samples\":%ld,\"errors\":%ld,"
           "\"targets\":{\"visible_p99_ms_below\":10,\"qps_ratio_at_least\":0.8}}\n",
           clients, g_seconds, pool, g_move, rate, achieved, qps_a, qps_b, qps_b / qps_a, p50, p99,
           w.nsamples ? (double)w.first_try / (double)w.nsamples : 0.0, w.nsamples,
           err_a + err_b + w.errors);
    free(w.visible_ms);
    grpc_shutdown();
    return 0;
}

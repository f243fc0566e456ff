/* bench_serve: Score and Recommend through the real gRPC server vs the
 * same ranking in process — requests/s and p50/p99 latency with C clients on
 * loopback, and the server's overhead over the in-process scorer (the
 * bound) on identical requests.
 *
 * Run by bench/serve.sh, which builds the demo world (moerec demo-data,
 * train, index retrievers), starts `moerec serve` and passes its target:
 *   bench_serve --target HOST:PORT --model DIR --demo DIR [--seconds S] [--clients N]
 */
#include <grpc/grpc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/rng.h"
#include "common/tensor.h"
#include "moe/model.h"
#include "moe/scorer.h"
#include "proto/moerec.pb-c.h"
#include "tests/integration/grpc_client.h"

#define NCAND 100
#define MAX_ITEMS 100000
#define MAX_LAT 2000000

typedef struct world {
    int nitems, nusers;
    char (*item)[16];
    char (*genre)[16];
    float *price;
} world;

static world W;

static int load_world(const char *dir) {
    char p[4096], line[256];
    snprintf(p, sizeof p, "%s/items.csv", dir);
    FILE *f = fopen(p, "r");
    if (!f) return -1;
    W.item = calloc(MAX_ITEMS, sizeof *W.item);
    W.genre = calloc(MAX_ITEMS, sizeof *W.genre);
    W.price = calloc(MAX_ITEMS, sizeof *W.price);
    if (!fgets(line, sizeof line, f)) return -1;
    while (W.nitems < MAX_ITEMS && fgets(line, sizeof line, f))
        if (sscanf(line, "%15[^,],%15[^,],%f", W.item[W.nitems], W.genre[W.nitems],
                   &W.price[W.nitems]) == 3)
            W.nitems++;
    fclose(f);
    W.nusers = 300;
    return W.nitems > NCAND ? 0 : -1;
}

/* One Score request: user u, NCAND items from seed. */
typedef struct req {
    Moerec__V1__ScoreRequest r;
    Moerec__V1__Candidate c[NCAND], *cp[NCAND];
    Moerec__V1__Features f[NCAND];
    Moerec__V1__CategoricalFeature g[NCAND], *gp[NCAND][1];
    Moerec__V1__NumericFeature pr[NCAND], *prp[NCAND][1];
    char *gv[NCAND][1];
    char user[16];
    int idx[NCAND];
} req;

static void make_req(req *q, mr_rng *rng) {
    moerec__v1__score_request__init(&q->r);
    snprintf(q->user, sizeof q->user, "%d", 1 + (int)mr_rng_below(rng, (uint64_t)W.nusers));
    q->r.user_id = q->user;
    for (int i = 0; i < NCAND; i++) {
        int k = (int)mr_rng_below(rng, (uint64_t)W.nitems);
        q->idx[i] = k;
        moerec__v1__candidate__init(&q->c[i]);
        q->c[i].item_id = W.item[k];
        moerec__v1__features__init(&q->f[i]);
        moerec__v1__categorical_feature__init(&q->g[i]);
        q->g[i].name = "genre";
        q->gv[i][0] = W.genre[k];
        q->g[i].values = q->gv[i];
        q->g[i].n_values = 1;
        q->gp[i][0] = &q->g[i];
        moerec__v1__numeric_feature__init(&q->pr[i]);
        q->pr[i].name = "price";
        q->pr[i].value = W.price[k];
        q->prp[i][0] = &q->pr[i];
        q->f[i].categorical = q->gp[i];
        q->f[i].n_categorical = 1;
        q->f[i].numeric = q->prp[i];
        q->f[i].n_numeric = 1;
        q->c[i].features = &q->f[i];
        q->cp[i] = &q->c[i];
    }
    q->r.candidates = q->cp;
    q->r.n_candidates = NCAND;
}

typedef struct client {
    const char *target;
    int recommend;
    double seconds;
    uint64_t seed;
    long n, errors;
    double *lat_us;
} client;

static void *client_main(void *arg) {
    client *c = arg;
    test_server ts;
    memset(&ts, 0, sizeof ts);
    snprintf(ts.target, sizeof ts.target, "%s", c->target);
    grpc_channel *ch = test_channel(&ts);
    mr_rng rng;
    mr_rng_seed(&rng, c->seed);
    req *q = malloc(sizeof *q);
    uint64_t end = mr_now_ns() + (uint64_t)(c->seconds * 1e9);
    while (mr_now_ns() < end && c->n < MAX_LAT) {
        call_result res;
        ProtobufCMessage *resp;
        uint64_t t0 = mr_now_ns();
        int rc;
        if (c->recommend) {
            Moerec__V1__RecommendRequest r = MOEREC__V1__RECOMMEND_REQUEST__INIT;
            char u[16];
            snprintf(u, sizeof u, "%d", 1 + (int)mr_rng_below(&rng, 50)); /* users with events */
            r.user_id = u;
            r.k = 10;
            rc = test_unary(ch, "/moerec.v1.Recommender/Recommend", &r.base,
                            &moerec__v1__recommend_response__descriptor, 10, &resp, &res);
        } else {
            make_req(q, &rng);
            rc = test_unary(ch, "/moerec.v1.Recommender/Score", &q->r.base,
                            &moerec__v1__score_response__descriptor, 10, &resp, &res);
        }
        double us = (double)(mr_now_ns() - t0) / 1e3;
        if (rc || res.status != GRPC_STATUS_OK || !resp) c->errors++;
        if (resp) protobuf_c_message_free_unpacked(resp, NULL);
        call_result_free(&res);
        c->lat_us[c->n++] = us;
    }
    free(q);
    grpc_channel_destroy(ch);
    return NULL;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct run_result {
    double qps, p50, p99;
    long n, errors;
} run_result;

static run_result run(const char *target, int recommend, int nclients, double seconds) {
    client *cs = calloc((size_t)nclients, sizeof *cs);
    pthread_t *th = calloc((size_t)nclients, sizeof *th);
    uint64_t t0 = mr_now_ns();
    for (int i = 0; i < nclients; i++) {
        cs[i] = (client){
            target, recommend, seconds, 100 + (uint64_t)i, 0, 0, malloc(MAX_LAT * sizeof(double))};
        pthread_create(&th[i], NULL, client_main, &cs[i]);
    }
    long n = 0, err = 0;
    for (int i = 0; i < nclients; i++) {
        pthread_join(th[i], NULL);
        n += cs[i].n;
        err += cs[i].errors;
    }
    double el = (double)(mr_now_ns() - t0) / 1e9;
    double *all = malloc((size_t)(n ? n : 1) * sizeof *all);
    long k = 0;
    for (int i = 0; i < nclients; i++) {
        memcpy(all + k, cs[i].lat_us, (size_t)cs[i].n * sizeof *all);
        k += cs[i].n;
        free(cs[i].lat_us);
    }
    qsort(all, (size_t)n, sizeof *all, cmp_d);
    run_result r = {n / el, n ? all[n / 2] : 0, n ? all[(long)(n * 0.99)] : 0, n, err};
    free(all);
    free(cs);
    free(th);
    return r;
}

/* The same Score requests in process, one thread: the bound. */
static double inprocess_us(const char *model_dir, double seconds) {
    moe_model *m;
    mr_err e;
    if (moe_model_load(&m, model_dir, &e)) {
        fprintf(stderr, "bench_serve: %s\n", e.msg);
        return -1;
    }
    moe_scorer *s;
    moe_scorer_create(&s, m, &e);
    int num, fu = moe_model_field(m, "user_id", &num), fi = moe_model_field(m, "item_id", &num),
             fg = moe_model_field(m, "genre", &num), fp = moe_model_field(m, "price", &num);
    mr_rng rng;
    mr_rng_seed(&rng, 100);
    req *q = malloc(sizeof *q);
    float tasks[NCAND * 4], score[NCAND];
    long n = 0;
    uint64_t t0 = mr_now_ns(), end = t0 + (uint64_t)(seconds * 1e9);
    while (mr_now_ns() < end) {
        make_req(q, &rng);
        moe_scorer_begin(s, NCAND, &e);
        const char *u[] = {q->user};
        moe_scorer_set_cat(s, MOE_ALL_ROWS, fu, u, NULL, 1, &e);
        for (int i = 0; i < NCAND; i++) {
            const char *it[] = {W.item[q->idx[i]]}, *g[] = {W.genre[q->idx[i]]};
            moe_scorer_set_cat(s, i, fi, it, NULL, 1, &e);
            moe_scorer_set_cat(s, i, fg, g, NULL, 1, &e);
            moe_scorer_set_num(s, i, fp, W.price[q->idx[i]], &e);
        }
        moe_scorer_run(s, tasks, score, &e);
        n++;
    }
    double us = (double)(mr_now_ns() - t0) / 1e3 / (double)n;
    free(q);
    moe_scorer_free(s);
    moe_model_free(m);
    return us;
}

int main(int argc, char **argv) {
    const char *target = NULL, *model = NULL, *demo = NULL;
    double seconds = 5;
    int clients = 4;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--target")) target = argv[i + 1];
        else if (!strcmp(argv[i], "--model")) model = argv[i + 1];
        else if (!strcmp(argv[i], "--demo")) demo = argv[i + 1];
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--clients")) clients = atoi(argv[i + 1]);
    }
    if (!target || !model || !demo || load_world(demo)) {
        fprintf(stderr, "usage: bench_serve --target HOST:PORT --model DIR --demo DIR "
                        "[--seconds S] [--clients N] (bench/serve.sh runs it)\n");
        return 2;
    }
    mr_blas_set_threads(1);
    grpc_init();
    double bound = inprocess_us(model, seconds / 2);
    run_result one = run(target, 0, 1, seconds);
    run_result many = run(target, 0, clients, seconds);
    run_result rec = run(target, 1, clients, seconds);
    fprintf(stderr, "in-process Score of %d candidates: %.1f us/request (1 thread)\n", NCAND,
            bound);
    fprintf(stderr,
            "gRPC Score, 1 client:  %.0f req/s, p50 %.0f us, p99 %.0f us (%ld, %ld errors)\n",
            one.qps, one.p50, one.p99, one.n, one.errors);
    fprintf(stderr,
            "gRPC Score, %d clients: %.0f req/s, p50 %.0f us, p99 %.0f us (%ld, %ld errors)\n",
            clients, many.qps, many.p50, many.p99, many.n, many.errors);
    fprintf(stderr,
            "gRPC Recommend (retrieve 200 + rank, top 10), %d clients: %.0f req/s, p50 %.0f us, "
            "p99 %.0f us (%ld, %ld errors)\n",
            clients, rec.qps, rec.p50, rec.p99, rec.n, rec.errors);
    printf("{\"bench\":\"serve\",\"candidates\":%d,\"inprocess_score_us\":%.1f,"
           "\"score_1client\":{\"qps\":%.0f,\"p50_us\":%.0f,\"p99_us\":%.0f,\"errors\":%ld},"
           "\"score_%dclients\":{\"qps\":%.0f,\"p50_us\":%.0f,\"p99_us\":%.0f,\"errors\":%ld},"
           "\"recommend_%dclients\":{\"qps\":%.0f,\"p50_us\":%.0f,\"p99_us\":%.0f,\"errors\":%ld},"
           "\"server_overhead_us_p50\":%.0f,\"ratio_p50_vs_inprocess\":%.2f}\n",
           NCAND, bound, one.qps, one.p50, one.p99, one.errors, clients, many.qps, many.p50,
           many.p99, many.errors, clients, rec.qps, rec.p50, rec.p99, rec.errors, one.p50 - bound,
           bound > 0 ? one.p50 / bound : 0);
    grpc_shutdown();
    return one.errors + many.errors + rec.errors ? 1 : 0;
}

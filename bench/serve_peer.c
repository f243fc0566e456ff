/* bench_serve_peer: the load client of bench/serve_peer.sh — Score calls of
 * the moe_speed-shaped model against one gRPC server on loopback.
 *
 *   bench_serve_peer --make-model DIR
 *       write the model (bench/speed_model.h, seed 7) to DIR
 *   bench_serve_peer --target HOST:PORT --candidates N --clients C
 *                    [--seconds S] [--pid PID] [--seed K]
 *       C threads, one channel each, every thread one call in flight, for S
 *       seconds; prints one JSON line: qps, p50_ms, p99_ms, calls, errors
 *       and cpu (cores the server process PID used over the run, from
 *       /proc/PID/stat utime + stime).
 *
 * A request: user_id, user_features c0..c9 and n0..n15, N candidates each
 * with item_id, c10..c19 and n16..n31; values random (seed, thread). The
 * same seed gives the same request sequence to every server. Requests are
 * packed before the timed run (a pool of 16 per thread), so the client's
 * cost per call is the gRPC call alone. A call counts as an error unless
 * its status is OK and the response decodes with N items.
 */
#include <grpc/grpc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/rng.h"
#include "moe/model.h"
#include "proto/moerec.pb-c.h"
#include "speed_model.h"
#include "tests/integration/grpc_client.h"

#define POOL 16
#define MAX_LAT 4000000
#define MAX_CANDS 5000

typedef struct packed {
    unsigned char *buf;
    size_t len;
} packed;

static const char *const cat_names[SPEED_NCAT] = {"c0",  "c1",  "c2",  "c3",  "c4",  "c5",  "c6",
                                                  "c7",  "c8",  "c9",  "c10", "c11", "c12", "c13",
                                                  "c14", "c15", "c16", "c17", "c18", "c19"};
static char num_names[SPEED_NNUM][8]; /* "n0".."n31", written by main before any thread */

/* Build and pack one request of n candidates. */
static packed make_request(mr_rng *rng, int n) {
    char ids[SPEED_NCAT][16], *vals[SPEED_NCAT], uid[24];
    Moerec__V1__ScoreRequest r = MOEREC__V1__SCORE_REQUEST__INIT;
    Moerec__V1__CategoricalFeature cf[SPEED_NCAT], *cfp[SPEED_NCAT];
    Moerec__V1__NumericFeature nf[SPEED_NNUM], *nfp[SPEED_NNUM];
    Moerec__V1__Features uf = MOEREC__V1__FEATURES__INIT;
    Moerec__V1__Candidate *c = calloc((size_t)n, sizeof *c), **cp = calloc((size_t)n, sizeof *cp);
    Moerec__V1__Features *f = calloc((size_t)n, sizeof *f);
    Moerec__V1__CategoricalFeature *ccf = calloc((size_t)n * 10, sizeof *ccf);
    Moerec__V1__CategoricalFeature **ccfp = calloc((size_t)n * 10, sizeof *ccfp);
    Moerec__V1__NumericFeature *cnf = calloc((size_t)n * 16, sizeof *cnf);
    Moerec__V1__NumericFeature **cnfp = calloc((size_t)n * 16, sizeof *cnfp);
    char(*cval)[16] = calloc((size_t)n * 10, 16), **cvalp = calloc((size_t)n * 10, sizeof *cvalp);
    char(*iid)[16] = calloc((size_t)n, 16);
    snprintf(uid, sizeof uid, "u%d", (int)mr_rng_below(rng, 100000));
    r.user_id = uid;
    for (int k = 0; k < 10; k++) {
        moerec__v1__categorical_feature__init(&cf[k]);
        cf[k].name = (char *)cat_names[k];
        snprintf(ids[k], sizeof ids[k], "v%d", (int)mr_rng_below(rng, 100000));
        vals[k] = ids[k];
        cf[k].values = &vals[k];
        cf[k].n_values = 1;
        cfp[k] = &cf[k];
    }
    for (int k = 0; k < 16; k++) {
        moerec__v1__numeric_feature__init(&nf[k]);
        nf[k].name = num_names[k];
        nf[k].value = (float)mr_rng_normal(rng);
        nfp[k] = &nf[k];
    }
    uf.categorical = cfp;
    uf.n_categorical = 10;
    uf.numeric = nfp;
    uf.n_numeric = 16;
    r.user_features = &uf;
    for (int i = 0; i < n; i++) {
        moerec__v1__candidate__init(&c[i]);
        snprintf(iid[i], 16, "i%d", (int)mr_rng_below(rng, 1000000));
        c[i].item_id = iid[i];
        moerec__v1__features__init(&f[i]);
        for (int k = 0; k < 10; k++) {
            size_t j = (size_t)i * 10 + (size_t)k;
            moerec__v1__categorical_feature__init(&ccf[j]);
            ccf[j].name = (char *)cat_names[10 + k];
            snprintf(cval[j], 16, "v%d", (int)mr_rng_below(rng, 100000));
            cvalp[j] = cval[j];
            ccf[j].values = &cvalp[j];
            ccf[j].n_values = 1;
            ccfp[j] = &ccf[j];
        }
        for (int k = 0; k < 16; k++) {
            size_t j = (size_t)i * 16 + (size_t)k;
            moerec__v1__numeric_feature__init(&cnf[j]);
            cnf[j].name = num_names[16 + k];
            cnf[j].value = (float)mr_rng_normal(rng);
            cnfp[j] = &cnf[j];
        }
        f[i].categorical = &ccfp[(size_t)i * 10];
        f[i].n_categorical = 10;
        f[i].numeric = &cnfp[(size_t)i * 16];
        f[i].n_numeric = 16;
        c[i].features = &f[i];
        cp[i] = &c[i];
    }
    r.candidates = cp;
    r.n_candidates = (size_t)n;
    packed p;
    p.len = protobuf_c_message_get_packed_size(&r.base);
    p.buf = malloc(p.len);
    protobuf_c_message_pack(&r.base, p.buf);
    free(c), free(cp), free(f), free(ccf), free(ccfp), free(cnf), free(cnfp), free(cval);
    free(cvalp), free(iid);
    return p;
}

typedef struct client {
    const char *target;
    int ncand;
    double seconds;
    uint64_t seed;
    long n, errors;
    double *lat_ms;
} client;

static void *client_main(void *arg) {
    client *c = arg;
    test_server ts;
    memset(&ts, 0, sizeof ts);
    snprintf(ts.target, sizeof ts.target, "%s", c->target);
    grpc_channel *ch = test_channel(&ts);
    mr_rng rng;
    mr_rng_seed(&rng, c->seed);
    packed pool[POOL];
    for (int i = 0; i < POOL; i++) pool[i] = make_request(&rng, c->ncand);
    uint64_t end = mr_now_ns() + (uint64_t)(c->seconds * 1e9);
    while (mr_now_ns() < end && c->n < MAX_LAT) {
        call_result res;
        const packed *p = &pool[c->n % POOL];
        uint64_t t0 = mr_now_ns();
        int rc = test_unary_raw(ch, "/moerec.v1.Recommender/Score", p->buf, p->len, 30, &res);
        double ms = (double)(mr_now_ns() - t0) / 1e6;
        int ok = rc == 0 && res.status == GRPC_STATUS_OK;
        if (ok) {
            Moerec__V1__ScoreResponse *s = moerec__v1__score_response__unpack(NULL, res.len,
                                                                              res.body);
            ok = s && s->n_items == (size_t)c->ncand;
            if (s) moerec__v1__score_response__free_unpacked(s, NULL);
        } else if (c->errors == 0) {
            fprintf(stderr, "bench_serve_peer: %s: status %d %s\n", c->target, (int)res.status,
                    res.details);
        }
        if (!ok) c->errors++;
        call_result_free(&res);
        c->lat_ms[c->n++] = ms;
    }
    for (int i = 0; i < POOL; i++) free(pool[i].buf);
    grpc_channel_destroy(ch);
    return NULL;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* utime + stime of pid in clock ticks, -1 when unreadable. */
static long long cpu_ticks(int pid) {
    char p[64], buf[2048];
    snprintf(p, sizeof p, "/proc/%d/stat", pid);
    FILE *f = fopen(p, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *s = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long ut = 0, st = 0;
    if (!s || sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}

int main(int argc, char **argv) {
    const char *target = NULL, *make = NULL;
    double seconds = 5;
    int clients = 1, ncand = 500, pid = 0;
    uint64_t seed = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--target")) target = argv[i + 1];
        else if (!strcmp(argv[i], "--make-model")) make = argv[i + 1];
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--clients")) clients = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--candidates")) ncand = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--pid")) pid = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed")) seed = (uint64_t)atoll(argv[i + 1]);
    }
    if (make) {
        char js[16384];
        speed_model_json(js, sizeof js, "dense");
        moe_model *m;
        mr_err e;
        if (moe_model_from_json(&m, js, SPEED_MODEL_SEED, &e) || moe_model_save(m, make, &e)) {
            fprintf(stderr, "bench_serve_peer: %s\n", e.msg);
            return 1;
        }
        moe_model_free(m);
        return 0;
    }
    if (!target || clients < 1 || clients > 256 || ncand < 1 || ncand > MAX_CANDS || seconds <= 0) {
        fprintf(stderr, "usage: bench_serve_peer --make-model DIR | --target HOST:PORT "
                        "[--candidates N] [--clients C] [--seconds S] [--pid PID] [--seed K]\n");
        return 2;
    }
    for (int k = 0; k < SPEED_NNUM; k++) snprintf(num_names[k], sizeof num_names[k], "n%d", k);
    grpc_init();
    client *cs = calloc((size_t)clients, sizeof *cs);
    pthread_t *th = calloc((size_t)clients, sizeof *th);
    long long c0 = pid ? cpu_ticks(pid) : -1;
    uint64_t t0 = mr_now_ns();
    for (int i = 0; i < clients; i++) {
        cs[i] = (client){target,
                         ncand,
                         seconds,
                         seed * 1000 + (uint64_t)i,
                         0,
                         0,
                         malloc(MAX_LAT * sizeof(double))};
        pthread_create(&th[i], NULL, client_main, &cs[i]);
    }
    long n = 0, err = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(th[i], NULL);
        n += cs[i].n;
        err += cs[i].errors;
    }
    double el = (double)(mr_now_ns() - t0) / 1e9;
    long long c1 = pid ? cpu_ticks(pid) : -1;
    double *all = malloc((size_t)(n ? n : 1) * sizeof *all);
    long k = 0;
    for (int i = 0; i < clients; i++) {
        memcpy(all + k, cs[i].lat_ms, (size_t)cs[i].n * sizeof *all);
        k += cs[i].n;
        free(cs[i].lat_ms);
    }
    qsort(all, (size_t)n, sizeof *all, cmp_d);
    double cpu = c0 >= 0 && c1 >= 0 ? (double)(c1 - c0) / (double)sysconf(_SC_CLK_TCK) / el : -1;
    printf(
        "{\"qps\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"calls\":%ld,\"errors\":%ld,\"cpu\":%.2f}\n",
        n / el, n ? all[n / 2] : 0, n ? all[(long)((double)n * 0.99)] : 0, n, err, cpu);
    free(all);
    free(cs);
    free(th);
    grpc_shutdown();
    return err ? 1 : 0;
}

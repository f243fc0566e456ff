/* cmd_demo_data.c — `moerec demo-data`: the embedded default catalogue.
 *
 * Writes a small, seeded, self-consistent recommendation world into a
 * folder, so the demo and the end-to-end test need nothing from outside:
 *   items.csv         item_id, genre, price               (the catalogue)
 *   item_vectors.csv  item_id, genre, e0..e15             (retrieval space)
 *   users.csv         user_id, age, favourite genres       (the ground truth)
 *   interactions.csv  user_id,item_id,ts_ms,genre,age,price,click,like (training rows)
 *   events.csv        user_id,item_id,ts_ms                (the clicks, in time order)
 *   model.json        an MMoE ranker (top-p gates) over those columns
 *   model_sdim.json   the same ranker with the SDIM long-behaviour block
 *                     (extra_dim 32 = 2 x the item vector width), trained
 *                     with `moerec train --sdim-events events.csv --sdim-items
 *                     item_vectors.csv` and fed by the store when served,
 *                     and a GraphHash item table (512 rows, "graph" paired
 *                     with the user table: items clustered on the click
 *                     graph share a row) whose mapping `moerec index
 *                     tables` builds from interactions.csv
 * Ids are numbers (users 1.., items 10000..): the index tool takes numeric
 * ids, and the server maps a decimal id string to that same number.
 * Item vectors are a genre direction plus a little of the item's quality
 * and noise, so the index tool can build one FAISS expert per genre and a
 * user's recent clicks point at the genres they like.
 * Users click items of their favourite genres far more often, and like the
 * good ones; a trained ranker must learn that, which the demo shows and the
 * end-to-end test asserts.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/atomic_file.h"
#include "common/rng.h"
#include "tools/cli.h"
#include "tools/command.h"

static const char *k_genres[] = {"action",  "comedy", "drama",       "horror",
                                 "romance", "scifi",  "documentary", "animation"};
#define NGENRES 8
#define VEC_DIM 16
#define ITEM_ID0 10000L
#define USER_ID0 1L

/* The first %s: the item table's hashing (double hashing, or a GraphHash
 * table); the second: the features' tail (empty, or the SDIM block's
 * extra_dim). */
static const char *k_model_json =
    "{\n"
    "  \"format\": \"moerec.model\", \"format_version\": 1, \"name\": \"demo\",\n"
    "  \"tables\": [\n"
    "    {\"name\": \"user\", \"rows\": 2048, \"dim\": 16, \"seed\": 1},\n"
    "    {\"name\": \"item\", %s, \"dim\": 16, \"seed\": 2},\n"
    "    {\"name\": \"genre\", \"rows\": 64, \"dim\": 8, \"seed\": 3}\n"
    "  ],\n"
    "  \"features\": {\n"
    "    \"categorical\": [\n"
    "      {\"name\": \"user_id\", \"table\": \"user\"},\n"
    "      {\"name\": \"item_id\", \"table\": \"item\"},\n"
    "      {\"name\": \"genre\", \"table\": \"genre\"}\n"
    "    ],\n"
    "    \"numeric\": [{\"name\": \"age\"}, {\"name\": \"price\"}]%s\n"
    "  },\n"
    "  \"tasks\": [\n"
    "    {\"name\": \"click\", \"kind\": \"binary\", \"weight\": 0.7},\n"
    "    {\"name\": \"like\", \"kind\": \"binary\", \"weight\": 0.3}\n"
    "  ],\n"
    "  \"arch\": {\"type\": \"mmoe\", \"experts\": 6, \"expert_hidden\": [32],\n"
    "           \"tower_hidden\": [16], \"gate\": {\"type\": \"topp\", \"p\": 0.6}}\n"
    "}\n";

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: moerec demo-data --out DIR [--users N] [--items N] [--rows N] [--seed N]\n\n"
        "Write the embedded demo world to DIR: items.csv, item_vectors.csv, users.csv,\n"
        "interactions.csv, events.csv, model.json and model_sdim.json (the same ranker\n"
        "with the SDIM long-behaviour block and a GraphHash item table: build its mapping\n"
        "with `moerec index tables --model-json DIR/model_sdim.json --data\n"
        "DIR/interactions.csv --max-rows N --out DIR/tables` over the training rows\n"
        "only (the rows are in time order: N = the first 90%% for train's --split time, as\n"
        "scripts/demo.sh does), train it with --mappings DIR/tables\n"
        "--sdim-events DIR/events.csv --sdim-items DIR/item_vectors.csv). Train the ranker with\n"
        "`moerec train --model-json DIR/model.json --data DIR/interactions.csv --out\n"
        "DIR/models/demo`; build its retrievers with `moerec index retrievers --items\n"
        "DIR/item_vectors.csv --expert-column genre --events DIR/events.csv --popularity\n"
        "--out DIR/models/demo/1/retrievers` (scripts/demo.sh does both).\n\n"
        "  --users N   users (default 300)\n"
        "  --items N   items (default 2000)\n"
        "  --rows N    interaction rows (default 150000)\n"
        "  --seed N    seed (default 1)\n\n"
        "Example:\n"
        "  moerec demo-data --out demo --users 300 --items 2000 --rows 150000\n");
}

/* Each output through the atomic writer: committed together at the end,
 * or removed, so a failed run leaves no half-written file. */
static FILE *open_out(mr_afile *a, const char *dir, const char *name) {
    char p[4096];
    mr_err e;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (!mr_afile_open(a, p, &e)) return a->f;
    fprintf(stderr, "moerec demo-data: %s\n", e.msg);
    return NULL;
}

static int demo_data_main(int argc, char **argv) {
    static const struct option opts[] = {{"out", required_argument, 0, 'o'},
                                         {"users", required_argument, 0, 'u'},
                                         {"items", required_argument, 0, 'i'},
                                         {"rows", required_argument, 0, 'r'},
                                         {"seed", required_argument, 0, 's'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *out = NULL;
    long nusers = 300, nitems = 2000, nrows = 150000;
    unsigned long long seed = 1;
    int o;
    mr_err ce;
    mr_err_clear(&ce);
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        long long v = 0;
        int bad = 0;
        switch (o) {
        case 'o': out = optarg; break;
        case 'u':
            bad = cli_parse_int("--users", optarg, 1, 1000000, &v, &ce), nusers = (long)v;
            break;
        case 'i':
            bad = cli_parse_int("--items", optarg, NGENRES, 10000000, &v, &ce), nitems = (long)v;
            break;
        case 'r':
            bad = cli_parse_int("--rows", optarg, 1, 100000000, &v, &ce), nrows = (long)v;
            break;
        case 's': bad = cli_u64("--seed", optarg, &seed, &ce); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (bad) {
            fprintf(stderr, "moerec demo-data: %s (see --help)\n", ce.msg);
            return 2;
        }
    }
    if (!out) {
        usage(stderr);
        return 2;
    }
    if (nusers < 1 || nusers > 1000000 || nitems < NGENRES || nitems > 10000000 || nrows < 1 ||
        nrows > 100000000) {
        fprintf(stderr,
                "moerec demo-data: need 1 <= users <= 1e6, %d <= items <= 1e7, "
                "1 <= rows <= 1e8\n",
                NGENRES);
        return 2;
    }
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "moerec demo-data: cannot create %s: %s\n", out, strerror(errno));
        return 1;
    }
    mr_rng rng;
    mr_rng_seed(&rng, seed);
    int *item_genre = malloc((size_t)nitems * sizeof *item_genre);
    float *item_price = malloc((size_t)nitems * sizeof *item_price);
    float *item_quality = malloc((size_t)nitems * sizeof *item_quality);
    int(*fav)[2] = malloc((size_t)nusers * sizeof *fav);
    int *age = malloc((size_t)nusers * sizeof *age);
    long *by_genre[NGENRES];
    long nby[NGENRES] = {0};
    for (int g = 0; g < NGENRES; g++) by_genre[g] = malloc((size_t)nitems * sizeof(long));
    mr_afile af[7];
    memset(af, 0, sizeof af);
    FILE *fi = open_out(&af[0], out, "items.csv"), *fu = open_out(&af[1], out, "users.csv"),
         *fx = open_out(&af[2], out, "interactions.csv"), *fm = open_out(&af[3], out, "model.json"),
         *fv = open_out(&af[4], out, "item_vectors.csv"), *fe = open_out(&af[5], out, "events.csv"),
         *fs = open_out(&af[6], out, "model_sdim.json");
    int rc = 1, lists = 1;
    for (int g = 0; g < NGENRES; g++) lists &= by_genre[g] != NULL;
    if (!item_genre || !item_price || !item_quality || !fav || !age || !lists) {
        fprintf(stderr, "moerec demo-data: out of memory for %ld items, %ld users\n", nitems,
                nusers);
        goto done;
    }
    if (!fi || !fu || !fx || !fm || !fs || !fv || !fe) goto done; /* open_out said which */
    fprintf(fi, "item_id,genre,price\n");
    fprintf(fv, "item_id,genre");
    for (int j = 0; j < VEC_DIM; j++) fprintf(fv, ",e%d", j);
    fputc('\n', fv);
    for (long i = 0; i < nitems; i++) {
        int g = (int)mr_rng_below(&rng, NGENRES);
        item_genre[i] = g;
        by_genre[g][nby[g]++] = i;
        item_price[i] = (float)(5 + 45 * mr_rng_uniform(&rng));
        item_quality[i] = (float)mr_rng_normal(&rng);
        fprintf(fi, "%ld,%s,%.2f\n", ITEM_ID0 + i, k_genres[g], item_price[i]);
        float v[VEC_DIM], norm = 0;
        for (int j = 0; j < VEC_DIM; j++) v[j] = 0.15f * (float)mr_rng_normal(&rng);
        v[2 * g] += 1.0f;
        v[2 * g + 1] += 0.3f * item_quality[i];
        for (int j = 0; j < VEC_DIM; j++) norm += v[j] * v[j];
        fprintf(fv, "%ld,%s", ITEM_ID0 + i, k_genres[g]);
        for (int j = 0; j < VEC_DIM; j++) fprintf(fv, ",%.5f", v[j] / sqrtf(norm));
        fputc('\n', fv);
    }
    fprintf(fu, "user_id,age,favourite_genres\n");
    for (long u = 0; u < nusers; u++) {
        fav[u][0] = (int)mr_rng_below(&rng, NGENRES);
        do fav[u][1] = (int)mr_rng_below(&rng, NGENRES);
        while (fav[u][1] == fav[u][0]);
        age[u] = 18 + (int)mr_rng_below(&rng, 50);
        fprintf(fu, "%ld,%d,%s|%s\n", USER_ID0 + u, age[u], k_genres[fav[u][0]],
                k_genres[fav[u][1]]);
    }
    fprintf(fx, "user_id,item_id,ts_ms,genre,age,price,click,like\n");
    fprintf(fe, "user_id,item_id,ts_ms\n");
    for (long r = 0; r < nrows; r++) {
        long u = (long)mr_rng_below(&rng, (uint64_t)nusers), i;
        /* half the impressions come from a favourite genre, half at random */
        int g = fav[u][mr_rng_below(&rng, 2)];
        if (mr_rng_uniform(&rng) < 0.5 && nby[g] > 0)
            i = by_genre[g][mr_rng_below(&rng, (uint64_t)nby[g])];
        else i = (long)mr_rng_below(&rng, (uint64_t)nitems);
        int match = item_genre[i] == fav[u][0] || item_genre[i] == fav[u][1];
        double z = -2.0 + 2.5 * match + 0.6 * item_quality[i] - 0.02 * (item_price[i] - 25);
        int click = mr_rng_uniform(&rng) < 1 / (1 + exp(-z));
        double zl = -1.0 + 1.5 * item_quality[i] + 0.8 * match;
        int like = click && mr_rng_uniform(&rng) < 1 / (1 + exp(-zl));
        long ts = 1700000000000L + r * 1000L;
        if (click) fprintf(fe, "%ld,%ld,%ld\n", USER_ID0 + u, ITEM_ID0 + i, ts);
        fprintf(fx, "%ld,%ld,%ld,%s,%d,%.2f,%d,%d\n", USER_ID0 + u, ITEM_ID0 + i, ts,
                k_genres[item_genre[i]], age[u], item_price[i], click, like);
    }
    fprintf(fm, k_model_json, "\"rows\": 4096, \"hash\": \"double\"", "");
    /* GraphHash: items clustered (Louvain) on the user-item click graph,
     * one row per cluster, an eighth of the rows of the double table */
    fprintf(fs, k_model_json, "\"rows\": 512, \"hash\": \"graph\", \"pair\": \"user\"",
            ",\n    \"extra_dim\": 32");
    rc = 0;
done:;
    /* a full disk shows at the flush: say so, never report success, and
     * commit no file unless every one was written */
    for (int k = 0; k < 7 && rc == 0; k++)
        if (fflush(af[k].f) != 0 || ferror(af[k].f)) {
            fprintf(stderr, "moerec demo-data: writing %s: %s\n", af[k].path, strerror(errno));
            rc = 1;
        }
    for (int k = 0; k < 7; k++) {
        mr_err e;
        if (rc == 0 && mr_afile_commit(&af[k], &e)) {
            fprintf(stderr, "moerec demo-data: %s\n", e.msg);
            rc = 1;
        }
        mr_afile_abort(&af[k]);
    }
    if (rc == 0)
        fprintf(stderr, "moerec demo-data: %ld users, %ld items, %ld interactions in %s\n", nusers,
                nitems, nrows, out);
    for (int g = 0; g < NGENRES; g++) free(by_genre[g]);
    free(item_genre);
    free(item_price);
    free(item_quality);
    free(fav);
    free(age);
    return rc;
}

MR_COMMAND(demo_data_command, "demo-data",
           "write the embedded demo catalogue, users, interactions and model.json", demo_data_main)

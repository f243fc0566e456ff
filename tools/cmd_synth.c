/* cmd_synth.c — `moerec synth`: write the seeded synthetic long-behaviour
 * data set of moe/synth_behaviour.h as CSV files, for trying the SDIM path
 * (index the events, train on the samples) without real logs.
 *
 * Files in --out: items.csv (item_id, cluster, e0..e{d-1}), events.csv
 * (user_id, item_id, ts_ms; each user's events in time order) and
 * samples.csv (user_id, item_id, ts_ms, label, prob; a sample's time is
 * just after the last event of its history, so joining events with
 * ts_ms < the sample's ts_ms gives exactly its history, no leakage).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "command.h"
#include "common/atomic_file.h"
#include "common/progress.h"
#include "moe/synth_behaviour.h"

static void synth_usage(FILE *f) {
    fprintf(f,
            "usage: moerec synth --out DIR [options]\n\n"
            "Write a seeded synthetic long-behaviour data set (clustered items, users with\n"
            "drifting interests and an old interest seen only early, clicks that depend on\n"
            "all interests) as DIR/items.csv, DIR/events.csv and DIR/samples.csv.\n\n"
            "  --out DIR          output folder (created if absent)\n"
            "  --users N          users (1000)\n"
            "  --len L            events per user (1000; up to 10000 and more)\n"
            "  --items N          items (20000)\n"
            "  --clusters C       item clusters (200)\n"
            "  --dim D            embedding dimension (32)\n"
            "  --interests K      interests per user, the old one included (4)\n"
            "  --samples S        labelled candidates per user (20, at most 1024)\n"
            "  --seed N           seed (1)\n"
            "  --quiet            no progress line\n\n"
            "Example:\n"
            "  moerec synth --out synth --users 500 --len 400 --items 4000\n");
}

/* Outputs go through the atomic writer (common/atomic_file.h): its commit
 * also reports a write error met earlier (a full disk fails an fprintf
 * while the final flush may still succeed) and removes the temporary. */
static int synth_write_items(const char *path, const synth_data *s) {
    mr_afile a;
    if (mr_afile_open(&a, path, NULL)) return -1;
    FILE *f = a.f;
    fprintf(f, "item_id,cluster");
    for (int c = 0; c < s->cfg.d; c++) fprintf(f, ",e%d", c);
    fputc('\n', f);
    for (int i = 0; i < s->cfg.n_items; i++) {
        fprintf(f, "%d,%u", i, s->item_cluster[i]);
        for (int c = 0; c < s->cfg.d; c++) fprintf(f, ",%.6g", s->item_emb[(size_t)i * s->cfg.d + c]);
        fputc('\n', f);
    }
    return mr_afile_commit(&a, NULL) ? -1 : 0;
}

static int synth_write_events(const char *path, const synth_data *s, int quiet) {
    mr_afile a;
    if (mr_afile_open(&a, path, NULL)) return -1;
    FILE *f = a.f;
    mr_progress p;
    mr_progress_begin(&p, "synth events", "users", (uint64_t)s->cfg.n_users, !quiet);
    fprintf(f, "user_id,item_id,ts_ms\n");
    const int L = s->cfg.seq_len;
    for (int u = 0; u < s->cfg.n_users; u++) {
        for (int j = 0; j < L; j++)
            fprintf(f, "%d,%u,%lld\n", u, s->seq[(size_t)u * L + j], (long long)synth_ts(j));
        mr_progress_update(&p, (uint64_t)u + 1, NULL);
    }
    mr_progress_end(&p, (uint64_t)s->cfg.n_users, NULL);
    return mr_afile_commit(&a, NULL) ? -1 : 0;
}

static int synth_write_samples(const char *path, const synth_data *s) {
    mr_afile a;
    if (mr_afile_open(&a, path, NULL)) return -1;
    FILE *f = a.f;
    fprintf(f, "user_id,item_id,ts_ms,label,prob\n");
    for (int x = 0; x < s->n_samples; x++)
        fprintf(f, "%u,%u,%lld,%d,%.4f\n", s->s_user[x], s->s_item[x],
                (long long)(synth_ts(s->s_pos[x]) - 1), (int)s->s_label[x], s->s_prob[x]);
    return mr_afile_commit(&a, NULL) ? -1 : 0;
}

static int synth_main(int argc, char **argv) {
    synth_config c;
    synth_config_init(&c);
    const char *out = NULL;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            synth_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--quiet")) {
            quiet = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "moerec synth: %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        long long x = 0;
        mr_err ce;
        if (strcmp(a, "--out") && cli_parse_int(a, v, 0, 2000000000, &x, &ce)) {
            fprintf(stderr, "moerec synth: %s\n", ce.msg);
            return 2;
        }
        if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--users")) c.n_users = (int)x;
        else if (!strcmp(a, "--len")) c.seq_len = (int)x;
        else if (!strcmp(a, "--items")) c.n_items = (int)x;
        else if (!strcmp(a, "--clusters")) c.n_clusters = (int)x;
        else if (!strcmp(a, "--dim")) c.d = (int)x;
        else if (!strcmp(a, "--interests")) c.n_interests = (int)x;
        else if (!strcmp(a, "--samples")) c.samples_per_user = (int)x;
        else if (!strcmp(a, "--seed")) c.seed = (uint64_t)x;
        else {
            fprintf(stderr, "moerec synth: unknown option %s (moerec synth --help)\n", a);
            return 2;
        }
    }
    if (!out) {
        synth_usage(stderr);
        return 2;
    }
    if (mkdir(out, 0755) && errno != EEXIST) {
        fprintf(stderr, "moerec synth: cannot create %s: %s\n", out, strerror(errno));
        return 1;
    }
    mr_err e;
    synth_data *s;
    if (synth_create(&s, &c, &e)) {
        fprintf(stderr, "moerec synth: %s\n", e.msg);
        return 1;
    }
    static const char *names[3] = {"items.csv", "events.csv", "samples.csv"};
    int rc = 0;
    for (int k = 0; k < 3 && !rc; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", out, names[k]);
        int w = k == 0 ? synth_write_items(path, s)
                       : k == 1 ? synth_write_events(path, s, quiet) : synth_write_samples(path, s);
        if (w) {
            fprintf(stderr, "moerec synth: writing %s: %s\n", path, strerror(errno));
            rc = 1;
        }
    }
    if (!rc && !quiet)
        fprintf(stderr, "moerec synth: %d items, %d users x %d events, %d samples in %s\n",
                c.n_items, c.n_users, c.seq_len, s->n_samples, out);
    synth_free(s);
    return rc;
}

MR_COMMAND(cmd_synth, "synth", "write a seeded synthetic long-behaviour data set (SDIM)", synth_main)

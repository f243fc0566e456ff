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
#include <getopt.h>
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
    fprintf(f, "usage: moerec synth --out DIR [options]\n\n"
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
        for (int c = 0; c < s->cfg.d; c++)
            fprintf(f, ",%.6g", s->item_emb[(size_t)i * s->cfg.d + c]);
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
    enum {
        O_OUT = 256,
        O_USERS,
        O_LEN,
        O_ITEMS,
        O_CLUSTERS,
        O_DIM,
        O_INTERESTS,
        O_SAMPLES,
        O_SEED,
        O_QUIET
    };
    static const struct option opts[] = {{"out", required_argument, 0, O_OUT},
                                         {"users", required_argument, 0, O_USERS},
                                         {"len", required_argument, 0, O_LEN},
                                         {"items", required_argument, 0, O_ITEMS},
                                         {"clusters", required_argument, 0, O_CLUSTERS},
                                         {"dim", required_argument, 0, O_DIM},
                                         {"interests", required_argument, 0, O_INTERESTS},
                                         {"samples", required_argument, 0, O_SAMPLES},
                                         {"seed", required_argument, 0, O_SEED},
                                         {"quiet", no_argument, 0, O_QUIET},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    for (int o; (o = getopt_long(argc, argv, ":h", opts, NULL)) != -1;) {
        mr_err ce;
        mr_err_clear(&ce);
        const char *v = optarg;
        unsigned long long u = 0;
        int rc = 0;
        switch (o) {
        case O_OUT: out = v; break;
        case O_USERS: rc = cli_int("--users", v, 1, 2000000000, &c.n_users, &ce); break;
        case O_LEN: rc = cli_int("--len", v, 2, 2000000000, &c.seq_len, &ce); break;
        case O_ITEMS: rc = cli_int("--items", v, 1, 2000000000, &c.n_items, &ce); break;
        case O_CLUSTERS: rc = cli_int("--clusters", v, 1, 2000000000, &c.n_clusters, &ce); break;
        case O_DIM: rc = cli_int("--dim", v, 1, 4096, &c.d, &ce); break;
        case O_INTERESTS:
            rc = cli_int("--interests", v, 2, SYNTH_MAX_INTERESTS, &c.n_interests, &ce);
            break;
        case O_SAMPLES:
            rc = cli_int("--samples", v, 0, SYNTH_MAX_SAMPLES, &c.samples_per_user, &ce);
            break;
        case O_SEED:
            if (!(rc = cli_u64("--seed", v, &u, &ce))) c.seed = u;
            break;
        case O_QUIET: quiet = 1; break;
        case 'h': synth_usage(stdout); return 0;
        default: rc = cli_getopt_error(o, argv, &ce); break;
        }
        if (rc) {
            fprintf(stderr, "moerec synth: %s (see --help)\n", ce.msg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "moerec synth: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
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
        int w = k == 0   ? synth_write_items(path, s)
                : k == 1 ? synth_write_events(path, s, quiet)
                         : synth_write_samples(path, s);
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

MR_COMMAND(cmd_synth, "synth", "write a seeded synthetic long-behaviour data set (SDIM)",
           synth_main)

/* cmd_index_tables.c — `moerec index tables`: build the mappings of a
 * model.json's frequency, graph, double_graph and lsh tables from a
 * training file, without training (moe/model_maps.h).
 *
 * `moerec train` builds the same mappings itself; this step is for models
 * trained elsewhere (a PyTorch export needs each value's row before it
 * trains) and for inspecting collision statistics before training. The
 * files go to --out (a version directory, or a folder later passed to
 * `moerec train --mappings`). One JSON summary line on stdout.
 * Exit: 0 done, 1 failure, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/clock.h"
#include "common/read_file.h"
#include "moe/model_maps.h"
#include "tools/cli.h"

int ix_tables(int argc, char **argv);

static void ix_tables_usage(FILE *f) {
    fprintf(
        f,
        "usage: moerec index tables --model-json FILE --data FILE --out DIR [options]\n\n"
        "Build the id -> row mappings of the model's frequency, graph, double_graph and lsh\n"
        "tables from the rows of FILE (docs/model-format.md, \"Mapped tables\") and write\n"
        "DIR/<mapping> for each.\n\n"
        "  --model-json FILE  model schema; relative \"vectors\" paths start at its folder\n"
        "  --data FILE        training rows, CSV or TSV (the columns model.json names)\n"
        "  --out DIR          folder for the mapping files (created if missing)\n"
        "  --resolution R     Louvain resolution of graph tables without their own\n"
        "                     model.json \"resolution\"; 0 = auto (0)\n"
        "  --seed S           Louvain order, SimHash and MinHash seed (1)\n"
        "  --max-rows N       read at most N rows\n"
        "  --na LIST          cells read as missing besides the empty one (NA; e.g.\n"
        "                     NA,null; docs/operations.md, input files)\n"
        "  --quiet            accepted as by every index subcommand (this one prints no\n"
        "                     progress lines)\n\n"
        "Prints one JSON summary line (per-table collision statistics) on stdout.\n"
        "Exit: 0 ok, 1 failure, 2 usage.\n\n"
        "Example:\n"
        "  moerec index tables --model-json demo/model_sdim.json --data demo/interactions.csv \\\n"
        "      --max-rows 135000 --out demo/tables\n"
        "(the demo's GraphHash item table from the 135,000 rows `moerec train --split time`\n"
        "trains on; then `moerec train ... --mappings demo/tables`)\n");
}

int ix_tables(int argc, char **argv) {
    static const struct option opts[] = {{"model-json", required_argument, 0, 'm'},
                                         {"data", required_argument, 0, 'd'},
                                         {"out", required_argument, 0, 'o'},
                                         {"resolution", required_argument, 0, 'r'},
                                         {"seed", required_argument, 0, 's'},
                                         {"max-rows", required_argument, 0, 'n'},
                                         {"help", no_argument, 0, 'h'},
                                         {"na", required_argument, 0, 'a'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {0, 0, 0, 0}};
    const char *mj = NULL, *data = NULL, *out = NULL, *cmd = "moerec index tables";
    moe_maps_opts mo = {.resolution = 0, .seed = 1};
    long max_rows = 0;
    char na[CLI_NA_MAX] = "";
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        mr_err ce;
        mr_err_clear(&ce);
        int bad = 0;
        long long ll = 0;
        unsigned long long u = 0;
        switch (c) {
        case 'm': mj = optarg; break;
        case 'd': data = optarg; break;
        case 'o': out = optarg; break;
        case 'r':
            bad = cli_parse_double("--resolution", optarg, 0, 1e6, &mo.resolution, &ce);
            break;
        case 's':
            if (!(bad = cli_u64("--seed", optarg, &u, &ce))) mo.seed = u;
            break;
        case 'n':
            if (!(bad = cli_parse_int("--max-rows", optarg, 1, 1LL << 40, &ll, &ce)))
                max_rows = (long)ll;
            break;
        case 'h': ix_tables_usage(stdout); return 0;
        case 'a': bad = cli_na("--na", optarg, na, sizeof na, &ce); break;
        case 'q': break; /* no progress lines to silence */
        default: bad = cli_getopt_error(c, argv, &ce); break;
        }
        if (bad) {
            fprintf(stderr, "%s: %s (see --help)\n", cmd, ce.msg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", cmd, argv[optind]);
        return 2;
    }
    if (!mj || !data || !out) {
        fprintf(stderr, "%s: --model-json, --data and --out are required\n\n", cmd);
        ix_tables_usage(stderr);
        return 2;
    }
    uint64_t t0 = mr_now_ns();
    mr_err e = {0};
    moe_model *m = NULL;
    moe_dataset *d = NULL;
    long *idx = NULL;
    int rc = 1;
    char base[4096];
    snprintf(base, sizeof base, "%s", mj);
    char *slash = strrchr(base, '/');
    if (slash) *slash = 0;
    else snprintf(base, sizeof base, ".");
    mo.base_dir = base;
    char *text = mr_read_file(mj, MOE_JSON_MAX, NULL, &e);
    if (!text || moe_model_from_json(&m, text, 1, &e)) goto fail;
    if (!moe_model_maps_missing(m)) {
        mr_err_set(&e, MR_EINVAL, "%s has no frequency, graph, double_graph or lsh table", mj);
        goto fail;
    }
    mr_csv_opts co = cli_csv_opts(na);
    if (moe_dataset_read_opts(&d, m, data, NULL, max_rows, &co, &e)) goto fail;
    if (!(idx = malloc(sizeof *idx * (size_t)d->n))) {
        mr_err_set(&e, MR_ENOMEM, "out of memory");
        goto fail;
    }
    for (long i = 0; i < d->n; i++) idx[i] = i;
    if (moe_model_maps_build(m, d, idx, d->n, &mo, &e)) goto fail;
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        mr_err_set(&e, MR_EINTERNAL, "--out %s: %s", out, strerror(errno));
        goto fail;
    }
    if (moe_model_maps_save(m, out, &e)) goto fail;
    json_t *ts = json_array();
    for (int i = 0; i < m->n_tables; i++) {
        const moe_table *t = &m->tables[i];
        if (!t->gmap) continue;
        json_array_append_new(
            ts,
            json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:f, s:f, s:I}", "name", t->name, "kind",
                      idhash_kind_name(t->kind), "mapping", t->mapping, "rows", (json_int_t)t->rows,
                      "mapped_ids", (json_int_t)t->stats.nids, "occupied_rows",
                      (json_int_t)t->stats.occupied, "shared_fraction", t->stats.shared_fraction,
                      "mean_load", t->stats.mean_load, "max_load", (json_int_t)t->stats.max_load));
    }
    json_t *o = json_pack("{s:s, s:s, s:I, s:o, s:f}", "command", "index tables", "out", out,
                          "rows", (json_int_t)d->n, "tables", ts, "seconds",
                          (double)(mr_now_ns() - t0) / 1e9);
    char *s = json_dumps(o, JSON_COMPACT);
    if (s) puts(s);
    free(s);
    json_decref(o);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "%s: %s\n", cmd, e.msg);
done:
    free(text);
    free(idx);
    moe_dataset_free(d);
    moe_model_free(m);
    return rc;
}

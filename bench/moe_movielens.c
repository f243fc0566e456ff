/* moe_movielens — multi-task MovieLens (like = rating >= 4, love >= 4.5), time split: shared-bottom, MMoE, PLE vs XGBoost
 *
 * The C half of bench/moe_movielens.sh: reads DIR/train.csv and
 * DIR/test.csv (each user's latest 20% of ratings are the test set), trains
 * each architecture on the same features (userId, movieId, genres as a
 * mean bag, year) with early stopping on a random 10% of the training rows,
 * and prints one JSON line with test AUC and logloss per task.
 * With --features, DIR/train_feat.csv and DIR/test_feat.csv (the same rows
 * plus the counting-feature columns of `moerec index features`, after the
 * column "timestamp") are read instead, every added column a numeric
 * feature.
 * With --history, the model also takes the user's behaviour sequence: the
 * SDIM block of moe/sdim_join.h ([long interest | short target attention
 * over the last 50], extra_dim = 2 d) over DIR/events.csv (user_id,
 * item_id, ts_ms: the training log) with item vectors DIR/items_sdim.csv
 * (item_id, e0..: `moerec index embeddings` on the training log); each row
 * sees only the user's events strictly before its time.
 * With --hist-actions (and --history), the model has history actions
 * (model.json features.history_actions ["like", "love", "dislike"],
 * extra_dim = 2 d + 3): the SDIM block also carries the short attention's
 * share of liked, loved and disliked events among the user's last 50, from
 * events.csv's action column (love: rating >= 4.5, like: >= 4, dislike:
 * <= 2.5, else rated) — what the server computes from Event.action
 * (moe/sdim_feature.h). --hist-action-list A,B,.. lists other actions of
 * events.csv instead (e.g. like,love).
 * With --hist-labels (and --features), DIR/train_hist.csv and test_hist.csv
 * (the _feat files plus the history's labels as target-attention values,
 * computed offline by bench/moe_movielens_peer.py hist; not served) are
 * read instead of the _feat files.
 * The JSON has each model's validation AUC ("val") beside the test AUC:
 * choices are made on it, never on the test rows.
 * --val random (default) validates on a seeded random 10% of the training
 * rows; --val user-time on each user's latest 10% of training rows by time
 * (moe_dataset_split_groups, `moerec train --split user-time`), which
 * mirrors the test split. --love-weight W sets the love task's loss_weight
 * (model.json, default 1). --aux-rating W adds the rating as a third task
 * (kind regression, MSE, loss_weight W, weight 0: trained, not scored).
 * --arch NAME trains that architecture only. --lr, --emb-lr, --weight-decay,
 * --batch: the trainer's options (moe_train_opts; 1e-3, 1e-3, 1e-5, 256).
 * --sdim-short N: the short attention's events (sdim_csv_opts.short_n, 50).
 * --emb-dim N: the user and item tables' dim (16).
 * Usage: bench_moe_movielens DIR [--epochs N] [--seed N] [--features] [--history]
 *        [--hist-actions] [--hist-action-list A,B,..] [--hist-labels] [--val random|user-time] [--love-weight W] [--aux-rating W]
 *        [--arch NAME] [--lr X] [--emb-lr X] [--weight-decay X] [--batch N]
 *        [--sdim-short N] [--emb-dim N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/tensor.h"
#include "moe/sdim_feature.h"
#include "moe/sdim_join.h"
#include "moe/train.h"
#include "precision_eval.h"

static const char *k_fmt =
    "{\"name\":\"movielens\",\"tables\":[{\"name\":\"user\",\"rows\":4096,\"dim\":%d},"
    "{\"name\":\"item\",\"rows\":32768,\"dim\":%d},{\"name\":\"genre\",\"rows\":256,\"dim\":8}],"
    "\"features\":{\"categorical\":[{\"name\":\"user\",\"column\":\"userId\",\"table\":\"user\"},"
    "{\"name\":\"item\",\"column\":\"movieId\",\"table\":\"item\"},"
    "{\"name\":\"genres\",\"table\":\"genre\",\"combiner\":\"mean\",\"separator\":\"|\"}],"
    "\"numeric\":[{\"name\":\"year\"}%s],\"extra_dim\":%d%s},"
    "\"tasks\":[{\"name\":\"like\",\"label\":\"rating\",\"threshold\":4.0},"
    "{\"name\":\"love\",\"label\":\"rating\",\"threshold\":4.5,\"loss_weight\":%g}%s],"
    "\"arch\":%s}";

/* The user id of every row of path (its first column, "userId"), n rows. */
static uint64_t *read_users(const char *path, long n) {
    FILE *f = fopen(path, "r");
    uint64_t *u = malloc(sizeof(uint64_t) * (size_t)(n > 0 ? n : 1));
    static char line[65536];
    long i = 0;
    if (f && u && fgets(line, sizeof line, f))
        while (i < n && fgets(line, sizeof line, f)) u[i++] = strtoull(line, NULL, 10);
    if (f) fclose(f);
    if (!u || i != n) {
        free(u);
        return NULL;
    }
    return u;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_moe_movielens DIR [--epochs N] [--seed N]\n");
        return 2;
    }
    int epochs = 20, feats = 0, hist = 0, hist_dim = 0, hlab = 0, hact = 0, user_val = 0;
    const char *act_list = "like,love,dislike"; /* chosen on the selection split */
    double love_w = 1.0, aux_w = 0, lr = 1e-3, emb_lr = 1e-3, wd = 1e-5;
    int batch = 256, short_n = 0, emb_dim = 16;
    const char *only = NULL;
    uint64_t seed = 1;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--features")) feats = 1;
        else if (!strcmp(argv[i], "--history")) hist = 1;
        else if (!strcmp(argv[i], "--hist-labels")) hlab = feats = 1;
        else if (!strcmp(argv[i], "--hist-actions")) hact = hist = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "--hist-action-list")) {
            act_list = argv[++i]; /* comma-separated, e.g. like,love,dislike */
            hact = hist = 1;
        } else if (i + 1 < argc && !strcmp(argv[i], "--epochs")) epochs = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--seed")) seed = strtoull(argv[++i], NULL, 10);
        else if (i + 1 < argc && !strcmp(argv[i], "--val"))
            user_val = !strcmp(argv[++i], "user-time");
        else if (i + 1 < argc && !strcmp(argv[i], "--love-weight")) love_w = atof(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--arch")) only = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--aux-rating")) aux_w = atof(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--lr")) lr = atof(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--emb-lr")) emb_lr = atof(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--weight-decay")) wd = atof(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--batch")) batch = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--sdim-short")) short_n = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--emb-dim")) emb_dim = atoi(argv[++i]);
    }
    static const char *archs[3][2] = {
        {"shared_bottom",
         "{\"type\":\"shared_bottom\",\"expert_hidden\":[128,64],\"tower_hidden\":[32]}"},
        {"mmoe",
         "{\"type\":\"mmoe\",\"experts\":6,\"expert_hidden\":[64,32],\"tower_hidden\":[32]}"},
        {"ple",
         "{\"type\":\"ple\",\"levels\":2,\"experts\":2,\"task_experts\":2,\"expert_hidden\":[64,32],"
         "\"tower_hidden\":[32]}"}};
    char trp[4096], tep[4096];
    snprintf(trp, sizeof trp, "%s/%s.csv", argv[1],
             hlab    ? "train_hist"
             : feats ? "train_feat"
                     : "train");
    snprintf(tep, sizeof tep, "%s/%s.csv", argv[1],
             hlab    ? "test_hist"
             : feats ? "test_feat"
                     : "test");
    char extra[8192] = "", evp[4096], itp[4096];
    sdim_csv_opts so;
    sdim_csv_opts_init(&so);
    if (hist) { /* d from the items file's header: item_id,e0,..,e{d-1} */
        snprintf(evp, sizeof evp, "%s/events.csv", argv[1]);
        snprintf(itp, sizeof itp, "%s/items_sdim.csv", argv[1]);
        FILE *f = fopen(itp, "r");
        char hdr[65536];
        if (!f || !fgets(hdr, sizeof hdr, f)) {
            fprintf(stderr, "moe_movielens: cannot read %s\n", itp);
            return 1;
        }
        fclose(f);
        for (char *c = strstr(hdr, ",e"); c; c = strstr(c + 1, ",e")) hist_dim++;
        so.events_path = evp;
        so.items_path = itp;
        snprintf(so.user_col, sizeof so.user_col, "userId");
        snprintf(so.item_col, sizeof so.item_col, "movieId");
        snprintf(so.time_col, sizeof so.time_col, "timestamp");
        if (short_n > 0) so.short_n = short_n;
    }
    if (feats) { /* every column after "timestamp" is a numeric feature */
        FILE *f = fopen(trp, "r");
        char hdr[8192];
        if (!f || !fgets(hdr, sizeof hdr, f)) {
            fprintf(stderr, "moe_movielens: cannot read %s\n", trp);
            return 1;
        }
        fclose(f);
        hdr[strcspn(hdr, "\r\n")] = 0;
        char *p = strstr(hdr, "timestamp,");
        for (char *c = p ? strtok(p + 10, ",") : NULL; c; c = strtok(NULL, ","))
            snprintf(extra + strlen(extra), sizeof extra - strlen(extra), ",{\"name\":\"%s\"}", c);
    }
    mr_blas_set_threads(1);
    char aux[256] = "";
    if (aux_w > 0) /* the rating as a regression task: trained, not scored */
        snprintf(aux, sizeof aux,
                 ",{\"name\":\"rating\",\"kind\":\"regression\",\"label\":\"rating\","
                 "\"weight\":0,\"loss_weight\":%g}",
                 aux_w);
    printf("{\"bench\":\"moe_movielens\",\"val\":\"%s\",\"love_loss_weight\":%g,"
           "\"aux_rating_loss_weight\":%g,\"models\":{",
           user_val ? "user-time" : "random", love_w, aux_w);
    for (int a = 0, printed = 0; a < 3; a++) {
        if (only && strcmp(only, archs[a][0])) continue;
        char js[16384];
        char acts[512] = "";
        int n_act = 0;
        if (hact) { /* ,"history_actions":["a","b",..] */
            snprintf(acts, sizeof acts, ",\"history_actions\":[");
            for (const char *c = act_list; *c; n_act++) {
                size_t len = strcspn(c, ",");
                snprintf(acts + strlen(acts), sizeof acts - strlen(acts), "%s\"%.*s\"",
                         n_act ? "," : "", (int)len, c);
                c += len + (c[len] == ',');
            }
            snprintf(acts + strlen(acts), sizeof acts - strlen(acts), "]");
        }
        snprintf(js, sizeof js, k_fmt, emb_dim, emb_dim, extra, 2 * hist_dim + n_act, acts, love_w,
                 aux, archs[a][1]);
        moe_model *m;
        moe_dataset *tr = NULL, *te = NULL;
        mr_err e;
        long *ti, *vi, nt, nv;
        int rc = moe_model_from_json(&m, js, seed, &e);
        so.n_actions = rc ? 0 : sdim_model_actions(m, so.actions); /* --hist-actions */
        if (rc || moe_dataset_read(&tr, m, trp, user_val ? "timestamp" : NULL, 0, &e) ||
            moe_dataset_read(&te, m, tep, NULL, 0, &e) ||
            (hist && (sdim_join_csv(tr, trp, 0, &so, &e) || sdim_join_csv(te, tep, 0, &so, &e)))) {
            fprintf(stderr, "moe_movielens: %s\n", e.msg);
            return 1;
        }
        int src;
        if (user_val) {
            uint64_t *users = read_users(trp, tr->n);
            if (!users) {
                fprintf(stderr, "moe_movielens: cannot read the user ids of %s\n", trp);
                return 1;
            }
            src = moe_dataset_split_groups(tr, users, 0.1, &ti, &nt, &vi, &nv, &e);
            free(users);
        } else src = moe_dataset_split(tr, 0.1, 0, seed, &ti, &nt, &vi, &nv, &e);
        if (src) {
            fprintf(stderr, "moe_movielens: %s\n", e.msg);
            return 1;
        }
        moe_dataset_fit_numeric(tr, m, ti, nt);
        moe_train_opts o;
        moe_train_defaults(&o);
        o.epochs = epochs;
        o.batch = batch;
        o.lr = (float)lr;
        o.emb_lr = (float)emb_lr;
        o.weight_decay = (float)wd;
        o.patience = 2;
        o.seed = seed;
        moe_train_result res;
        moe_eval ev;
        long *all = malloc(sizeof(long) * (size_t)te->n);
        for (long i = 0; i < te->n; i++) all[i] = i;
        if (moe_train(m, tr, ti, nt, vi, nv, &o, &res, &e) ||
            moe_evaluate(m, te, all, te->n, 1024, NULL, &ev, &e)) {
            fprintf(stderr, "moe_movielens: %s\n", e.msg);
            return 1;
        }
        fprintf(
            stderr,
            "%-13s best epoch %2d: like auc %.4f logloss %.4f | love auc %.4f logloss %.4f | val auc "
            "%.4f / %.4f | %.0f samples/s\n",
            archs[a][0], res.best_epoch, ev.auc[0], ev.logloss[0], ev.auc[1], ev.logloss[1],
            res.best.auc[0], res.best.auc[1], res.samples_per_s);
        static char pj[4096];
        if (precision_json(m, te, all, pj, sizeof pj, &e)) {
            fprintf(stderr, "moe_movielens: %s\n", e.msg);
            return 1;
        }
        printf(
            "%s\"%s\":{\"like\":{\"auc\":%.4f,\"logloss\":%.4f},\"love\":{\"auc\":%.4f,\"logloss\":%.4f},"
            "\"val\":{\"like\":%.4f,\"love\":%.4f},"
            "\"best_epoch\":%d,\"params\":%ld,\"train_samples_per_s\":%.0f,\"precision\":%s}",
            printed++ ? "," : "", archs[a][0], ev.auc[0], ev.logloss[0], ev.auc[1], ev.logloss[1],
            res.best.auc[0], res.best.auc[1], res.best_epoch, m->net->n_params, res.samples_per_s,
            pj);
        free(all);
        free(ti);
        free(vi);
        moe_dataset_free(tr);
        moe_dataset_free(te);
        moe_model_free(m);
    }
    printf("},\"test_rows_file\":\"test.csv\"}\n");
    return 0;
}

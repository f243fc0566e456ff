/* backend.c — see backend.h. */
#include "backend.h"
#include "replog.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "hashing/idhash.h"

uint64_t mr_api_id(const char *s) {
    size_t n = strlen(s);
    if (n > 0 && n <= 19) {
        uint64_t v = 0;
        size_t i = 0;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) v = v * 10 + (uint64_t)(s[i] - '0');
        /* 19 digits fit in u64; keep the numeric range below 2^63 */
        if (i == n && v < (1ull << 63) && !(n > 1 && s[0] == '0')) return v;
    }
    return idhash_bytes(s, n, 0x6d6f65726563ull /* "moerec" */) | (1ull << 63);
}

int mr_backend_sweep(mr_backend *b, mr_err *e) {
    int64_t now = mr_unix_ms();
    uint64_t rows = 0, users = 0;
    int rc = store_expire(b->st, now, &rows, e);
    if (!rc) rc = behaviour_expire(b->beh, now, &users, e);
    atomic_fetch_add(&b->sweeps, 1);
    atomic_fetch_add(&b->expired_rows, rows);
    atomic_fetch_add(&b->expired_users, users);
    if (rows || users)
        mr_info("TTL sweep: %llu rows, %llu users expired", (unsigned long long)rows,
                (unsigned long long)users);
    return rc;
}

static void *sweeper_main(void *arg) {
    mr_backend *b = arg;
    pthread_mutex_lock(&b->sweep_mu);
    while (!b->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        double s = b->sweep_every_s;
        until.tv_sec += (time_t)s;
        until.tv_nsec += (long)((s - (double)(time_t)s) * 1e9);
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!b->stopping && pthread_cond_timedwait(&b->sweep_cv, &b->sweep_mu, &until) == 0) {
        }
        if (b->stopping) break;
        pthread_mutex_unlock(&b->sweep_mu);
        mr_err e;
        if (mr_backend_sweep(b, &e)) mr_warn("TTL sweep failed: %s", e.msg);
        pthread_mutex_lock(&b->sweep_mu);
    }
    pthread_mutex_unlock(&b->sweep_mu);
    return NULL;
}

uint64_t mr_backend_space_needed(const mr_backend *b) {
    if (!b->min_free) return 0;
    return b->min_free + (b->st ? store_unflushed_bytes(b->st) : 0);
}

int mr_backend_check_space(const mr_backend *b, mr_err *e) {
    if (!b->min_free) return MR_OK;
    struct statvfs fs;
    if (statvfs(b->dir, &fs) != 0) return MR_OK; /* unknown: let the store answer */
    uint64_t avail = (uint64_t)fs.f_bavail * fs.f_frsize, need = mr_backend_space_needed(b);
    if (avail >= need) return MR_OK;
    return mr_err_set(e, MR_ENOMEM,
                      "disk full: %llu bytes free on the data dir's filesystem, writes need "
                      "%llu (store_min_free_bytes %llu + %llu of unflushed memtables); nothing "
                      "was written (free space and retry; reads keep serving)",
                      (unsigned long long)avail, (unsigned long long)need,
                      (unsigned long long)b->min_free, (unsigned long long)(need - b->min_free));
}

int mr_backend_open(mr_backend **out, const mr_server_config *cfg, mr_err *e) {
    *out = NULL;
    mr_backend *b = calloc(1, sizeof *b);
    if (!b) return mr_err_set(e, MR_ENOMEM, "out of memory");
    store_config sc;
    store_config_init(&sc);
    sc.sync = cfg->store_sync;
    sc.cache_bytes = cfg->cache_bytes;
    sc.memtable_bytes = cfg->store_memtable_bytes;
    sc.block_cache_bytes = cfg->store_block_cache_bytes;
    sc.mmap_reads = cfg->store_mmap_reads;
    sc.cache_seen_twice = !strcmp(cfg->cache_admission, "seen_twice");
    sc.user_ttl_s = cfg->user_ttl_seconds;
    snprintf(b->dir, sizeof b->dir, "%s", cfg->data_dir);
    b->min_free = cfg->store_min_free_bytes;
    pthread_mutex_init(&b->sweep_mu, NULL);
    pthread_mutex_init(&b->count_mu, NULL);
    b->online_counts = cfg->online_counts;
    pthread_cond_init(&b->sweep_cv, NULL);
    int rc = 0;
    if (cfg->shared_tier_seeds[0]) {
        /* lazy: a cluster that is down at start only costs the tier's hits */
        tier_redis_config tc = {{cfg->shared_tier_seeds, cfg->shared_tier_timeout_ms, 1000, 8, 1},
                                cfg->shared_tier_prefix,
                                cfg->shared_tier_ttl_seconds};
        if ((rc = tier_redis_create(&tc, &b->tier, &b->tier_cb, e))) {
            mr_err_wrap(e, "shared_tier_seeds '%s'", cfg->shared_tier_seeds);
            goto err;
        }
        tier_redis_stats ts;
        tier_redis_get_stats(b->tier, &ts);
        if (ts.cluster.refreshes == 0)
            mr_warn("shared tier %s: no node answers yet; serving from RocksDB until one does",
                    cfg->shared_tier_seeds);
        else
            mr_info("shared tier: Redis Cluster %s (%d nodes), prefix '%s', ttl %d s",
                    cfg->shared_tier_seeds, ts.cluster.nodes, cfg->shared_tier_prefix,
                    cfg->shared_tier_ttl_seconds);
        sc.tier = &b->tier_cb;
    }
    rc = store_open(&b->st, cfg->data_dir, &sc, e);
    if (rc) {
        mr_err_wrap(e, "data_dir '%s'", cfg->data_dir);
        goto err;
    }
    b->items = emb_store_table(b->st, cfg->item_table, NULL);
    if (!b->items) {
        if (cfg->item_dim <= 0) {
            rc = mr_err_set(e, MR_ENOTFOUND,
                            "item table '%s' does not exist in '%s': set item_dim to create it",
                            cfg->item_table, cfg->data_dir);
            goto err;
        }
        if ((rc = emb_table_create(b->st, cfg->item_table, (uint32_t)cfg->item_dim, EMB_FP32, 0,
                                   e)))
            goto err;
        b->items = emb_store_table(b->st, cfg->item_table, e);
        if (!b->items) {
            rc = MR_EINTERNAL;
            goto err;
        }
    }
    emb_table_info info;
    emb_table_get_info(b->items, &info);
    if (cfg->item_dim > 0 && (int)info.dim != cfg->item_dim) {
        rc = mr_err_set(e, MR_EINVAL, "item table '%s' has dim %u, config item_dim is %d",
                        cfg->item_table, info.dim, cfg->item_dim);
        goto err;
    }
    b->item_dim = (int)info.dim;
    behaviour_config bc;
    behaviour_config_init(&bc, cfg->item_table);
    bc.l_max = cfg->sdim_l_max;
    bc.m = cfg->sdim_m;
    bc.tau = cfg->sdim_tau;
    bc.seed = (uint64_t)cfg->sdim_seed;
    if ((rc = behaviour_open(&b->beh, b->st, &bc, e))) {
        mr_err_wrap(e, "behaviour store in '%s'", cfg->data_dir);
        goto err;
    }
    b->short_n = cfg->sdim_short;
    b->sweep_every_s = cfg->expire_interval_seconds;
    if (b->sweep_every_s > 0) {
        if (pthread_create(&b->sweeper, NULL, sweeper_main, b) != 0) {
            rc = mr_err_set(e, MR_EINTERNAL, "cannot start the TTL sweeper thread");
            goto err;
        }
        b->has_sweeper = 1;
    }
    mr_info("store %s: item table '%s' (d = %d), SDIM m = %d, tau = %d, l_max = %d", cfg->data_dir,
            cfg->item_table, b->item_dim, bc.m, bc.tau, bc.l_max);
    *out = b;
    return MR_OK;
err:
    mr_backend_close(b);
    return rc;
}

void mr_backend_close(mr_backend *b) {
    if (!b) return;
    if (b->has_sweeper) {
        pthread_mutex_lock(&b->sweep_mu);
        b->stopping = 1;
        pthread_cond_broadcast(&b->sweep_cv);
        pthread_mutex_unlock(&b->sweep_mu);
        pthread_join(b->sweeper, NULL);
    }
    mr_replog_close(b->log); /* stops applying before the store closes */
    if (b->beh) behaviour_close(b->beh);
    if (b->st) store_close(b->st);
    tier_redis_free(b->tier); /* after the store: it calls the tier until closed */
    pthread_cond_destroy(&b->sweep_cv);
    pthread_mutex_destroy(&b->sweep_mu);
    pthread_mutex_destroy(&b->count_mu);
    free(b);
}

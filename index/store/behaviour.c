/* behaviour.c — the behaviour store: open/close with the SDIM parameters
 * pinned in meta, and batched appends that trim each user to l_max while
 * keeping the user's SDIM bucket table up to date incrementally.
 *
 * An append of n events costs: one batched embedding lookup (cache first)
 * and one sgemm for the signatures of all n items; per user touched, one
 * point read of the state row and, when over l_max, one short scan of the
 * oldest events plus a batched lookup of their embeddings. Everything is
 * written in ONE WriteBatch, so an acknowledged append is durable (WAL) and
 * events, trims and tables are never seen half-applied. Users are locked
 * by stripe, in stripe order, for the duration (no deadlock between
 * concurrent appends).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "index/store/behaviour_int.h"
#include "index/store/emb_codec.h"

#define BEH_META_KEY "behaviour"

void behaviour_config_init(behaviour_config *c, const char *item_table) {
    memset(c, 0, sizeof *c);
    c->item_table = item_table;
    c->l_max = SDIM_DEFAULT_L_MAX;
    c->m = SDIM_DEFAULT_M;
    c->tau = SDIM_DEFAULT_TAU;
    c->seed = SDIM_DEFAULT_SEED;
}

const sdim_layout *behaviour_layout(const mr_behaviour *b) { return &b->layout; }
const sdim_hasher *behaviour_hasher(const mr_behaviour *b) { return b->hasher; }

/* meta "behaviour": version, m, tau, d (u32 each), seed (u64), table name. */
static int beh_meta_check(mr_behaviour *b, mr_err *e) {
    mr_store *st = b->st;
    uint8_t want[24 + STORE_TABLE_NAME_MAX];
    uint32_t u[4] = {1, (uint32_t)b->cfg.m, (uint32_t)b->cfg.tau, (uint32_t)b->layout.d};
    memset(want, 0, sizeof want);
    memcpy(want, u, 16);
    memcpy(want + 16, &b->cfg.seed, 8);
    memcpy(want + 24, b->table_name, strlen(b->table_name));
    char *err = NULL;
    size_t vlen = 0;
    char *v = rocksdb_get_cf(st->db, st->ropts, st->cf[STORE_CF_META], BEH_META_KEY,
                             strlen(BEH_META_KEY), &vlen, &err);
    if (err) {
        int rc = mr_err_set(e, MR_EINTERNAL, "behaviour: read meta: %s", err);
        free(err);
        return rc;
    }
    if (v) {
        int same = vlen == sizeof want && memcmp(v, want, sizeof want) == 0;
        uint32_t had[4] = {0, 0, 0, 0};
        if (vlen == sizeof want) memcpy(had, v, 16);
        free(v);
        if (same) return 0;
        return mr_err_set(e, MR_ESTATE,
                          "behaviour: the store's SDIM tables were built with m=%u "
                          "tau=%u d=%u (or another seed/item table); asked for m=%d tau=%d d=%d "
                          "seed=%llu table '%s'. Open with the recorded parameters, or rebuild "
                          "into a fresh store",
                          had[1], had[2], had[3], b->cfg.m, b->cfg.tau, b->layout.d,
                          (unsigned long long)b->cfg.seed, b->table_name);
    }
    if (st->cfg.mode != STORE_PRIMARY) return 0; /* nothing built yet: nothing to check */
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(wo, 1);
    rocksdb_put_cf(st->db, wo, st->cf[STORE_CF_META], BEH_META_KEY, strlen(BEH_META_KEY),
                   (const char *)want, sizeof want, &err);
    rocksdb_writeoptions_destroy(wo);
    if (err) {
        int rc = mr_err_set(e, MR_EINTERNAL, "behaviour: write meta: %s", err);
        free(err);
        return rc;
    }
    return 0;
}

int behaviour_open(mr_behaviour **out, mr_store *st, const behaviour_config *cfg, mr_err *e) {
    *out = NULL;
    if (!cfg || !cfg->item_table) return mr_err_set(e, MR_EINVAL, "behaviour: no item table");
    mr_emb_table *t = emb_store_table(st, cfg->item_table, e);
    if (!t) return mr_err_wrap(e, "behaviour");
    mr_behaviour *b = calloc(1, sizeof *b);
    if (!b) return mr_err_set(e, MR_ENOMEM, "behaviour: out of memory");
    b->st = st;
    b->table = t;
    b->cfg = *cfg;
    if (b->cfg.l_max <= 0) b->cfg.l_max = SDIM_DEFAULT_L_MAX;
    if (b->cfg.m == 0 && b->cfg.tau == 0) {
        b->cfg.m = SDIM_DEFAULT_M;
        b->cfg.tau = SDIM_DEFAULT_TAU;
    }
    snprintf(b->table_name, sizeof b->table_name, "%s", cfg->item_table);
    b->cfg.item_table = b->table_name;
    for (int i = 0; i < BEH_STRIPES; i++) pthread_mutex_init(&b->stripe[i], NULL);
    int rc;
    if (b->cfg.tau > 8) { /* event rows store signatures as u16; tables 2^tau buckets */
        rc = mr_err_set(e, MR_EINVAL,
                        "behaviour: tau %d > 8 makes tables of %d buckets per "
                        "signature; use tau <= 8",
                        b->cfg.tau, 1 << b->cfg.tau);
        goto err;
    }
    if ((rc = sdim_hasher_create(&b->hasher, (int)t->info.dim, b->cfg.m, b->cfg.tau, b->cfg.seed,
                                 e)))
        goto err;
    b->layout = b->hasher->layout;
    b->table_bytes = sdim_table_bytes(&b->layout);
    if ((rc = beh_meta_check(b, e))) goto err;
    *out = b;
    return 0;
err:
    behaviour_close(b);
    return rc;
}

void behaviour_close(mr_behaviour *b) {
    if (!b) return;
    sdim_hasher_free(b->hasher);
    for (int i = 0; i < BEH_STRIPES; i++) pthread_mutex_destroy(&b->stripe[i]);
    free(b);
}

/* Lock (or unlock) the stripes of the users in ev[0..n) in stripe order. */
static void beh_lock_users(mr_behaviour *b, const uint64_t *users, size_t n, int lock) {
    uint8_t used[BEH_STRIPES] = {0};
    for (size_t i = 0; i < n; i++) used[beh_lock_of(b, users[i]) - b->stripe] = 1;
    for (int s = 0; s < BEH_STRIPES; s++) {
        if (!used[s]) continue;
        if (lock) pthread_mutex_lock(&b->stripe[s]);
        else pthread_mutex_unlock(&b->stripe[s]);
    }
}

typedef struct beh_in {
    beh_event ev; /* ts, item, action; seq assigned per user */
    uint64_t user;
} beh_in;

static int beh_in_cmp(const void *pa, const void *pb) {
    const beh_in *a = pa, *b = pb;
    if (a->user != b->user) return a->user < b->user ? -1 : 1;
    if (a->ev.ts != b->ev.ts) return a->ev.ts < b->ev.ts ? -1 : 1;
    return (a->ev.src > b->ev.src) - (a->ev.src < b->ev.src); /* arrival order */
}

/* Scratch reused across the users of one append. */
typedef struct beh_scratch {
    uint8_t *state;    /* beh_state_bytes */
    void *table;       /* table_bytes */
    uint8_t *val;      /* one event value */
    beh_event *old;    /* oldest existing events read for trimming */
    uint32_t *old_sig; /* (cap, nsig) */
    uint64_t *old_items;
    float *old_vecs; /* (cap, d) */
    uint8_t *old_found;
    size_t cap;
} beh_scratch;

static int beh_scratch_reserve(beh_scratch *s, const mr_behaviour *b, size_t cap) {
    if (cap <= s->cap) return 0;
    size_t nsig = (size_t)b->layout.nsig, d = (size_t)b->layout.d;
    free(s->old);
    free(s->old_sig);
    free(s->old_items);
    free(s->old_vecs);
    free(s->old_found);
    s->old = malloc(cap * sizeof *s->old);
    s->old_sig = malloc(cap * nsig * sizeof *s->old_sig);
    s->old_items = malloc(cap * sizeof *s->old_items);
    s->old_vecs = malloc(cap * d * sizeof *s->old_vecs);
    s->old_found = malloc(cap);
    s->cap = cap;
    return (s->old && s->old_sig && s->old_items && s->old_vecs && s->old_found) ? 0 : -1;
}

static void beh_scratch_free(beh_scratch *s) {
    free(s->state);
    free(s->table);
    free(s->val);
    free(s->old);
    free(s->old_sig);
    free(s->old_items);
    free(s->old_vecs);
    free(s->old_found);
}

/* A write time in ms as the state's seconds, rounded up so a TTL never
 * expires early, and held to what 32 bits hold (store times are checked
 * where they come from; this only keeps the arithmetic defined). */
static uint32_t beh_write_seconds(int64_t ms) {
    if (ms <= 0) return 0;
    const int64_t s = ms / 1000 + (ms % 1000 != 0);
    return s > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

/* Apply the sorted events in[0..k) of one user into wb. vecs/found/sigs are
 * indexed by beh_in.ev.src (the caller's batch index). */
static int beh_append_user(mr_behaviour *b, rocksdb_writebatch_t *wb, uint64_t user, beh_in *in,
                           size_t k, const float *vecs, const uint8_t *found, const uint32_t *sigs,
                           beh_scratch *sc, mr_err *e) {
    mr_store *st = b->st;
    const sdim_layout *L = &b->layout;
    const size_t nsig = (size_t)L->nsig, d = (size_t)L->d;
    beh_state s;
    int rc;
    if ((rc = beh_state_load(b, user, &s, sc->table, e))) return rc;
    if (s.n_events && store_expired((int64_t)s.write_s * 1000, st->cfg.user_ttl_s, mr_unix_ms())) {
        /* Past the user TTL but not swept yet: reads already treat the
         * history as gone, so the append starts afresh instead of bringing
         * it back. The tombstone precedes this batch's puts, so it does not
         * cover them; sequence numbers keep counting. */
        beh_delete_user_events(b, wb, user);
        const uint64_t next_seq = s.next_seq;
        memset(&s, 0, sizeof s);
        s.next_seq = next_seq;
        sdim_table_clear(L, sc->table);
    }
    for (size_t j = 0; j < k; j++) in[j].ev.seq = s.next_seq + j;
    const size_t total = (size_t)s.n_events + k;
    const size_t r = total > (size_t)b->cfg.l_max ? total - (size_t)b->cfg.l_max : 0;
    size_t nold = 0;
    if (r > 0 && s.n_events > 0) {
        size_t want = (r < s.n_events ? r : s.n_events) + 1;
        if (beh_scratch_reserve(sc, b, want))
            return mr_err_set(e, MR_ENOMEM, "append: out of memory");
        if ((rc = beh_events_scan(b, user, s.oldest_ts, s.oldest_seq, sc->old, sc->old_sig, want,
                                  &nold, e)))
            return rc;
    }
    /* Merge: the r smallest of (existing oldest, new) go. */
    size_t io = 0, in_ = 0;
    for (size_t x = 0; x < r; x++) {
        if (io < nold && (in_ >= k || beh_event_cmp(&sc->old[io], &in[in_].ev) < 0)) io++;
        else in_++;
    }
    if (io > 0) { /* delete the trimmed existing events and subtract them */
        for (size_t i = 0; i < io; i++) sc->old_items[i] = sc->old[i].item;
        if ((rc = beh_item_vectors(b, sc->old_items, io, sc->old_vecs, sc->old_found, e)))
            return rc;
        for (size_t i = 0; i < io; i++) {
            uint8_t key[BEH_EVENT_KEY];
            beh_event_key(user, sc->old[i].ts, sc->old[i].seq, key);
            rocksdb_writebatch_delete_cf(wb, st->cf[STORE_CF_EVENTS], (const char *)key,
                                         sizeof key);
            if (!(sc->old[i].flags & BEH_FLAG_ADDED)) continue;
            /* The row may have gone since: subtract zeros so counts stay exact. */
            if (!sc->old_found[i]) memset(sc->old_vecs + i * d, 0, d * sizeof(float));
            if (sdim_table_sub(L, sc->table, sc->old_sig + i * nsig, sc->old_vecs + i * d, NULL))
                mr_warn("behaviour: user %llu table out of step with its events; run a rebuild",
                        (unsigned long long)user);
        }
    }
    for (size_t j = in_; j < k; j++) { /* kept new events */
        beh_event *ev = &in[j].ev;
        const uint32_t src = ev->src;
        ev->flags = found[src] ? BEH_FLAG_ADDED : 0;
        uint8_t key[BEH_EVENT_KEY];
        beh_event_key(user, ev->ts, ev->seq, key);
        beh_event_value(b, ev, sigs + src * nsig, sc->val);
        rocksdb_writebatch_put_cf(wb, st->cf[STORE_CF_EVENTS], (const char *)key, sizeof key,
                                  (const char *)sc->val, beh_event_value_bytes(b));
        if (found[src]) sdim_table_add(L, sc->table, sigs + src * nsig, vecs + src * d, NULL);
        if (s.n_events == 0 && j == in_) s.newest_ts = ev->ts;
        if (ev->ts > s.newest_ts) s.newest_ts = ev->ts;
    }
    /* New oldest: first remaining existing event or first kept new one. */
    const beh_event *first_old = (s.n_events > io && io < nold) ? &sc->old[io] : NULL;
    beh_event cur_oldest = {.ts = s.oldest_ts, .seq = s.oldest_seq};
    if (s.n_events > io && r == 0) first_old = &cur_oldest; /* nothing trimmed */
    const beh_event *first_new = in_ < k ? &in[in_].ev : NULL;
    const beh_event *oldest = first_old;
    if (!oldest || (first_new && beh_event_cmp(first_new, oldest) < 0)) oldest = first_new;
    s.n_events = (uint32_t)(total - r);
    s.next_seq += k;
    s.write_s = beh_write_seconds(store_write_clock_ms());
    if (oldest) {
        s.oldest_ts = oldest->ts;
        s.oldest_seq = oldest->seq;
    }
    uint8_t key[8];
    emb_key_encode(user, key);
    beh_state_encode(b, &s, sc->table, sc->state);
    rocksdb_writebatch_put_cf(wb, st->cf[STORE_CF_SDIM], (const char *)key, 8,
                              (const char *)sc->state, beh_state_bytes(b));
    return 0;
}

int behaviour_append(mr_behaviour *b, const behaviour_event *ev, size_t n, mr_err *e) {
    return behaviour_append_rows(b, ev, n, NULL, e);
}

int behaviour_append_rows(mr_behaviour *b, const behaviour_event *ev, size_t n,
                          const store_append_rows *rows, mr_err *e) {
    int rc;
    if ((rc = store_check_writable(b->st, e))) return rc;
    if (n > STORE_MAX_BATCH)
        return mr_err_set(e, MR_EINVAL, "append: batch of %zu events exceeds %u", n,
                          STORE_MAX_BATCH);
    if (n == 0) return 0;
    if (!ev) return mr_err_set(e, MR_EINVAL, "append: events are NULL");
    const size_t nsig = (size_t)b->layout.nsig, d = (size_t)b->layout.d;
    beh_in *in = malloc(n * sizeof *in);
    uint64_t *items = malloc(n * sizeof *items), *users = malloc(n * sizeof *users);
    float *vecs = malloc(n * d * sizeof *vecs);
    uint8_t *found = malloc(n);
    uint32_t *sigs = malloc(n * nsig * sizeof *sigs);
    beh_scratch sc = {0};
    sc.state = malloc(beh_state_bytes(b));
    sc.table = malloc(b->table_bytes);
    sc.val = malloc(beh_event_value_bytes(b));
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    size_t nusers = 0;
    if (!in || !items || !users || !vecs || !found || !sigs || !sc.state || !sc.table || !sc.val ||
        !wb) {
        rc = mr_err_set(e, MR_ENOMEM, "append of %zu events: out of memory", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        in[i].user = ev[i].user;
        in[i].ev = (beh_event){
            .ts = ev[i].ts_ms, .item = ev[i].item, .action = ev[i].action, .src = (uint32_t)i};
        items[i] = ev[i].item;
    }
    qsort(in, n, sizeof *in, beh_in_cmp);
    if ((rc = beh_item_vectors(b, items, n, vecs, found, e))) goto out;
    if ((rc = sdim_signatures_batch(b->hasher, vecs, (int)n, sigs, NULL, e))) goto out;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || in[i].user != in[i - 1].user) users[nusers++] = in[i].user;
    beh_lock_users(b, users, nusers, 1);
    for (size_t a = 0; a < n && !rc;) {
        size_t z = a + 1;
        while (z < n && in[z].user == in[a].user) z++;
        rc = beh_append_user(b, wb, in[a].user, in + a, z - a, vecs, found, sigs, &sc, e);
        a = z;
    }
    if (!rc) rc = store_rows_write(b->st, wb, rows, e);
    beh_lock_users(b, users, nusers, 0);
    if (!rc) atomic_fetch_add(&b->st->ctr.rows_written, n);
out:
    if (wb) rocksdb_writebatch_destroy(wb);
    beh_scratch_free(&sc);
    free(in);
    free(items);
    free(users);
    free(vecs);
    free(found);
    free(sigs);
    return rc;
}

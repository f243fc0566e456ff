/* test_store_crash.c — durability: a forked writer puts embedding batches
 * and appends behaviour events, reporting each acknowledged call through a
 * pipe; the parent kills it with SIGKILL at a random point, reopens the
 * database and checks that every acknowledged write is there, that the
 * batch in flight is all-or-nothing, and that every user's SDIM table still
 * matches its events (equal to a rebuild). Rounds alternate sync on/off:
 * SIGKILL loses no page-cache writes, so both must hold.
 *
 * The writer is this binary re-executed (`--writer DIR ROUND FD`), not a
 * bare fork: the parent has used RocksDB, whose background thread pool
 * does not survive fork(), and a forked child that opens a database can
 * wait forever on threads it does not have. Reads from the writer time out
 * so a stuck child fails the test instead of hanging it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/rng.h"
#include "index/store/behaviour.h"
#include "store_testutil.h"

enum { D = 8, B = 16, ROUNDS = 6, NUSERS = 3, LMAX = 50, EV = 4 };

static uint64_t row_id(int round, uint64_t batch, int k) {
    return (uint64_t)round * 1000000u + batch * B + (uint64_t)k;
}

static void row_val(uint64_t id, float *v) {
    for (int j = 0; j < D; j++) v[j] = (float)(id % 100000) * 0.5f + (float)j;
}

static mr_behaviour *open_beh(mr_store *st) {
    behaviour_config c;
    behaviour_config_init(&c, "t");
    c.l_max = LMAX;
    c.m = 8;
    c.tau = 2;
    mr_behaviour *b = NULL;
    return behaviour_open(&b, st, &c, NULL) ? NULL : b;
}

/* The child: write until killed. Never returns. */
static void writer(const char *dir, int round, int fd) {
    store_config c;
    store_config_init(&c);
    c.sync = round % 2;
    mr_store *st;
    if (store_open(&st, dir, &c, NULL)) _exit(3);
    mr_emb_table *t = emb_store_table(st, "t", NULL);
    mr_behaviour *b = open_beh(st);
    if (!t || !b) _exit(4);
    float x[B * D];
    uint64_t ids[B];
    for (uint64_t batch = 0;; batch++) {
        for (int k = 0; k < B; k++) {
            ids[k] = row_id(round, batch, k);
            row_val(ids[k], x + k * D);
        }
        if (emb_store_put(st, t, ids, B, x, B * D, NULL)) _exit(5);
        behaviour_event ev[EV];
        for (int k = 0; k < EV; k++)
            ev[k] = (behaviour_event){(uint64_t)(round * 10 + k % NUSERS), ids[k],
                                      (int64_t)(batch * EV + (uint64_t)k), 0};
        if (behaviour_append(b, ev, EV, NULL)) _exit(6);
        if (write(fd, &batch, sizeof batch) != sizeof batch) _exit(7);
    }
}

static void test_sigkill_loses_no_acknowledged_write(void **state) {
    (void)state;
    char dir[256];
    assert_non_null(store_test_tmpdir(dir, sizeof dir, "crash"));
    mr_store *st;
    assert_int_equal(store_open(&st, dir, NULL, NULL), 0);
    assert_int_equal(emb_table_create(st, "t", D, EMB_FP32, 0, NULL), 0);
    mr_behaviour *b = open_beh(st);
    assert_non_null(b);
    behaviour_close(b);
    store_close(st);
    mr_rng r;
    mr_rng_seed(&r, 2024);
    for (int round = 0; round < ROUNDS; round++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            char rs[16], fs[16];
            snprintf(rs, sizeof rs, "%d", round);
            snprintf(fs, sizeof fs, "%d", p[1]);
            execl("/proc/self/exe", "test_index_store_crash", "--writer", dir, rs, fs,
                  (char *)NULL);
            _exit(8);
        }
        close(p[1]);
        uint64_t want = 5 + mr_rng_below(&r, 60), acked = 0, batch;
        int64_t last = -1;
        struct pollfd pfd = {p[0], POLLIN, 0};
        while (acked < want && poll(&pfd, 1, 60000) == 1 &&
               read(p[0], &batch, sizeof batch) == sizeof batch) {
            last = (int64_t)batch;
            acked++;
        }
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        assert_true(WIFSIGNALED(status)); /* killed, not failed */
        while (read(p[0], &batch, sizeof batch) == sizeof batch) last = (int64_t)batch;
        close(p[0]);
        assert_true(last >= 4);

        assert_int_equal(store_open(&st, dir, NULL, NULL), 0);
        mr_emb_table *t = emb_store_table(st, "t", NULL);
        float y[B * D], v[D];
        uint64_t ids[B];
        uint8_t found[B];
        for (int64_t bt = 0; bt <= last + 1; bt++) {
            for (int k = 0; k < B; k++) ids[k] = row_id(round, (uint64_t)bt, k);
            assert_int_equal(emb_store_get(st, t, ids, B, y, found, NULL), 0);
            int nfound = 0;
            for (int k = 0; k < B; k++) {
                nfound += found[k];
                if (!found[k]) continue;
                row_val(ids[k], v);
                assert_memory_equal(y + k * D, v, sizeof v);
            }
            if (bt <= last) assert_int_equal(nfound, B);  /* acknowledged: all there */
            else assert_true(nfound == 0 || nfound == B); /* in flight: atomic */
        }
        /* behaviour: acknowledged events there, tables consistent with events */
        b = open_beh(st);
        assert_non_null(b);
        const sdim_layout *L = behaviour_layout(b);
        for (int u = 0; u < NUSERS; u++) {
            uint64_t user = (uint64_t)(round * 10 + u);
            size_t acked_ev = 0;
            for (int64_t bt = 0; bt <= last; bt++)
                for (int k = 0; k < EV; k++) acked_ev += k % NUSERS == u;
            behaviour_event evs[LMAX + 1];
            size_t n;
            assert_int_equal(behaviour_events(b, user, evs, LMAX + 1, &n, NULL), 0);
            assert_true(n >= (acked_ev < LMAX ? acked_ev : LMAX));
            assert_true(n <= LMAX);
            mr_user_state us;
            assert_int_equal(user_state_get(b, user, &us, NULL), 0);
            assert_int_equal(us.n_events, n);
            void *before = malloc(sdim_table_bytes(L));
            memcpy(before, us.table, sdim_table_bytes(L));
            user_state_release(&us);
            assert_int_equal(behaviour_rebuild(b, &user, 1, NULL), 0);
            assert_int_equal(user_state_get(b, user, &us, NULL), 0);
            size_t nsum = (size_t)L->nsig * (size_t)L->nbuckets * (size_t)L->d;
            for (size_t c = 0; c < nsum; c++) { /* sums: float tolerance */
                float x0, x1;
                memcpy(&x0, (char *)before + 4 * c, 4);
                memcpy(&x1, (const char *)us.table + 4 * c, 4);
                assert_true(fabsf(x0 - x1) <= 1e-3f * (1 + fabsf(x1)));
            }
            uint32_t total = 0;
            for (int sg = 0; sg < L->nsig; sg++)
                for (int k = 0; k < L->nbuckets; k++) { /* counts: exact */
                    uint32_t c0 = sdim_table_count(L, before, sg, (uint32_t)k);
                    assert_int_equal(c0, sdim_table_count(L, us.table, sg, (uint32_t)k));
                    total += c0;
                }
            assert_int_equal(total, (uint32_t)n * (uint32_t)L->nsig); /* every item found */
            user_state_release(&us);
            free(before);
        }
        behaviour_close(b);
        store_close(st);
    }
    store_test_rmrf(dir);
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "--writer")) writer(argv[2], atoi(argv[3]), atoi(argv[4]));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_loses_no_acknowledged_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

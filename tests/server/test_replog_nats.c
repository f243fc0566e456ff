/* test_replog_nats.c — the update log (server/replog.h) against a real
 * nats-server with JetStream (Debian's, one node on a free loopback port,
 * started and killed here; a stream of 1 replica): records come back in
 * sequence order with their bytes, a consumer resumes after the applied
 * sequence it is given, waits time out with how far behind, a record the
 * apply rejects is skipped and counted, one that fails underneath is
 * retried, a record published again with the same id is stored once, bad
 * configurations are refused. Skipped when nats-server is not
 * installed. The 3-node cluster, kill -9 and node loss are in
 * tests/integration/test_replicas.py. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "server/replog.h"

#define NATS_BIN "/usr/sbin/nats-server"
#define MAX_SEEN 64

static pid_t g_pid;
static char g_dir[256], g_url[64];

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int listening(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int setup_nats(void **state) {
    (void)state;
    if (access(NATS_BIN, X_OK) != 0) return 0;
    snprintf(g_dir, sizeof g_dir, "/tmp/moerec-replog-XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    int port = free_port();
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    snprintf(g_url, sizeof g_url, "nats://127.0.0.1:%d", port);
    g_pid = fork();
    if (g_pid == 0) {
        freopen("/dev/null", "w", stdout);
        freopen("/dev/null", "w", stderr);
        execl(NATS_BIN, "nats-server", "-a", "127.0.0.1", "-p", ports, "-js", "-sd", g_dir,
              (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 400 && !listening(port); i++) sleep_ms(25);
    return listening(port) ? 0 : -1;
}

static int teardown_nats(void **state) {
    (void)state;
    if (g_pid > 0) {
        kill(g_pid, SIGKILL);
        waitpid(g_pid, NULL, 0);
    }
    if (g_dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
        if (system(cmd) != 0) return -1;
    }
    return 0;
}

#define NEED_NATS()                                                  \
    do {                                                             \
        if (g_pid <= 0) {                                            \
            fprintf(stderr, "nats-server not installed: skipped\n"); \
            skip();                                                  \
        }                                                            \
    } while (0)

/* What the apply callback saw; "bad" is rejected, "flaky" fails twice
 * with an I/O-like error first. */
typedef struct seen {
    pthread_mutex_t mu;
    int n, flaky_left;
    uint64_t seq[MAX_SEEN];
    char data[MAX_SEEN][16];
} seen;

static int record_apply(void *arg, uint64_t seq, const uint8_t *data, size_t len, mr_err *e) {
    seen *s = arg;
    if (len == 3 && !memcmp(data, "bad", 3)) return mr_err_set(e, MR_EINVAL, "bad record");
    pthread_mutex_lock(&s->mu);
    int fail = len == 5 && !memcmp(data, "flaky", 5) && s->flaky_left > 0 && s->flaky_left--;
    if (!fail && s->n < MAX_SEEN) {
        s->seq[s->n] = seq;
        snprintf(s->data[s->n], sizeof s->data[0], "%.*s", (int)len, (const char *)data);
        s->n++;
    }
    pthread_mutex_unlock(&s->mu);
    return fail ? mr_err_set(e, MR_EUNAVAIL, "disk busy") : 0;
}

static mr_replog *open_log(const char *stream, const char *consumer) {
    char subject[64];
    snprintf(subject, sizeof subject, "%s.writes", stream);
    mr_replog_config c = {g_url, stream, subject, consumer, 1, 10000};
    mr_replog *l = NULL;
    mr_err e = {0};
    int rc = mr_replog_open(&c, &l, &e);
    if (rc) fprintf(stderr, "%s\n", e.msg);
    assert_int_equal(rc, 0);
    return l;
}

static uint64_t publish_id(mr_replog *l, const char *s, const char *id, int *dup) {
    uint64_t seq = 0;
    mr_err e = {0};
    assert_int_equal(mr_replog_publish(l, (const uint8_t *)s, strlen(s), id, &seq, dup, &e), 0);
    return seq;
}

static uint64_t publish(mr_replog *l, const char *s) { return publish_id(l, s, NULL, NULL); }

static void test_records_in_order_and_resume(void **state) {
    (void)state;
    NEED_NATS();
    mr_replog *l = open_log("order", "a");
    seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    mr_err e = {0};
    assert_int_equal(mr_replog_start(l, 0, record_apply, &s, &e), 0);
    char buf[16];
    for (int i = 1; i <= 20; i++) {
        snprintf(buf, sizeof buf, "r%d", i);
        assert_int_equal(publish(l, buf), (uint64_t)i); /* sequences from 1, one each */
    }
    assert_int_equal(mr_replog_wait(l, 20, 0, 10000, &e), 0);
    pthread_mutex_lock(&s.mu);
    assert_int_equal(s.n, 20);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(s.seq[i], (uint64_t)i + 1);
        snprintf(buf, sizeof buf, "r%d", i + 1);
        assert_string_equal(s.data[i], buf);
    }
    pthread_mutex_unlock(&s.mu);
    mr_replog_stats st;
    mr_replog_get_stats(l, &st);
    assert_int_equal(st.published, 20);
    assert_int_equal(st.applied_seq, 20);
    assert_int_equal(st.applied, 20);
    assert_int_equal(st.rejected, 0);
    mr_replog_close(l);
    /* another replica whose store holds up to 12: it gets 13..20 only */
    mr_replog *b = open_log("order", "b");
    seen t = {.mu = PTHREAD_MUTEX_INITIALIZER};
    assert_int_equal(mr_replog_start(b, 12, record_apply, &t, &e), 0);
    assert_int_equal(mr_replog_wait(b, 20, 0, 10000, &e), 0);
    pthread_mutex_lock(&t.mu);
    assert_int_equal(t.n, 8);
    assert_int_equal(t.seq[0], 13);
    assert_string_equal(t.data[0], "r13");
    pthread_mutex_unlock(&t.mu);
    mr_replog_get_stats(b, &st);
    assert_int_equal(st.published, 0); /* counts this process's publishes only */
    assert_int_equal(st.applied, 8);
    mr_replog_close(b);
}

static void test_wait_past_the_deadline(void **state) {
    (void)state;
    NEED_NATS();
    mr_replog *l = open_log("wait", "a");
    seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    mr_err e = {0};
    assert_int_equal(mr_replog_start(l, 0, record_apply, &s, &e), 0);
    publish(l, "one");
    assert_int_equal(mr_replog_wait(l, 1, 0, 10000, &e), 0);
    assert_int_equal(mr_replog_wait(l, 0, 0, 10, &e), 0); /* already there: no wait */
    int64_t t0 = mr_unix_ms();
    assert_int_equal(mr_replog_wait(l, 101, t0 + 150, 10000, &e), MR_EUNAVAIL);
    assert_true(mr_unix_ms() - t0 >= 140); /* waited for the deadline, not max_wait */
    assert_non_null(strstr(e.msg, "up to 1;"));
    assert_non_null(strstr(e.msg, "100 records ahead"));
    t0 = mr_unix_ms();
    assert_int_equal(mr_replog_wait(l, 50, 0, 100, &e), MR_EUNAVAIL); /* no deadline: max_wait */
    assert_true(mr_unix_ms() - t0 >= 90);
    mr_replog_close(l);
}

static void test_rejected_skipped_failed_retried(void **state) {
    (void)state;
    NEED_NATS();
    mr_replog *l = open_log("reject", "a");
    seen s = {.mu = PTHREAD_MUTEX_INITIALIZER, .flaky_left = 2};
    mr_err e = {0};
    assert_int_equal(mr_replog_start(l, 0, record_apply, &s, &e), 0);
    publish(l, "ok1");
    publish(l, "bad");
    publish(l, "flaky");
    uint64_t last = publish(l, "ok2");
    assert_int_equal(mr_replog_wait(l, last, 0, 20000, &e), 0);
    pthread_mutex_lock(&s.mu);
    assert_int_equal(s.n, 3); /* the rejected record is skipped, the others in order */
    assert_string_equal(s.data[0], "ok1");
    assert_string_equal(s.data[1], "flaky");
    assert_int_equal(s.seq[1], 3);
    assert_string_equal(s.data[2], "ok2");
    pthread_mutex_unlock(&s.mu);
    mr_replog_stats st;
    mr_replog_get_stats(l, &st);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.retries, 2);
    assert_int_equal(st.applied, 3);
    assert_int_equal(st.applied_seq, 4);
    mr_replog_close(l);
}

/* A record published again with the same id is stored once: the second
 * publish gets the first one's sequence, flagged as a duplicate. */
static void test_duplicate_ids_stored_once(void **state) {
    (void)state;
    NEED_NATS();
    mr_replog *l = open_log("dedup", "a");
    seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    mr_err e = {0};
    assert_int_equal(mr_replog_start(l, 0, record_apply, &s, &e), 0);
    int dup = -1;
    assert_int_equal(publish_id(l, "x", "id-1", &dup), 1);
    assert_int_equal(dup, 0);
    assert_int_equal(publish_id(l, "x", "id-1", &dup), 1); /* the retry */
    assert_int_equal(dup, 1);
    assert_int_equal(publish_id(l, "x", "id-2", &dup), 2); /* another id: a new record */
    assert_int_equal(dup, 0);
    assert_int_equal(publish(l, "x"), 3); /* no id: always a new record */
    assert_int_equal(publish(l, "x"), 4);
    assert_int_equal(mr_replog_wait(l, 4, 0, 10000, &e), 0);
    pthread_mutex_lock(&s.mu);
    assert_int_equal(s.n, 4);
    pthread_mutex_unlock(&s.mu);
    mr_replog_stats st;
    mr_replog_get_stats(l, &st);
    assert_int_equal(st.published, 4);
    mr_replog_close(l);
}

static void test_bad_configuration(void **state) {
    (void)state;
    mr_replog *l = (mr_replog *)1;
    mr_err e = {0};
    mr_replog_config c = {"", "s", "s.w", "a", 1, 500};
    assert_int_equal(mr_replog_open(&c, &l, &e), MR_EINVAL);
    assert_null(l);
    c.servers = "nats://127.0.0.1:1";
    c.consumer = "";
    assert_int_equal(mr_replog_open(&c, &l, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "consumer"));
    c.consumer = "a"; /* nothing listens there */
    char url[64];
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", free_port());
    c.servers = url;
    assert_int_equal(mr_replog_open(&c, &l, &e), MR_EUNAVAIL);
    assert_null(l);
    assert_non_null(strstr(e.msg, "connect"));
    mr_replog_close(NULL); /* a no-op */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records_in_order_and_resume),
        cmocka_unit_test(test_wait_past_the_deadline),
        cmocka_unit_test(test_rejected_skipped_failed_retried),
        cmocka_unit_test(test_duplicate_ids_stored_once),
        cmocka_unit_test(test_bad_configuration),
    };
    return cmocka_run_group_tests(tests, setup_nats, teardown_nats);
}

/* threadpool.c — see threadpool.h.
 *
 * One mutex-protected FIFO of tasks; each task points at its batch, whose
 * counter the waiter watches. The submitting thread drains the queue while
 * it waits (help-while-waiting), which makes nested fan-out safe.
 */
#include "threadpool.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "error.h"

typedef struct batch {
    pthread_mutex_t mu;
    pthread_cond_t done;
    int pending;
} batch;

typedef struct task {
    mr_task_fn fn;
    void *arg;
    batch *b;
    struct task *next;
} task;

struct mr_pool {
    pthread_mutex_t mu;
    pthread_cond_t has_work;
    task *head, *tail;
    int stop;
    int nthreads;
    pthread_t *threads;
};

static task *pop_locked(mr_pool *p) {
    task *t = p->head;
    if (t) {
        p->head = t->next;
        if (!p->head) p->tail = NULL;
    }
    return t;
}

static void finish(task *t) {
    t->fn(t->arg);
    batch *b = t->b;
    pthread_mutex_lock(&b->mu);
    if (--b->pending == 0) pthread_cond_broadcast(&b->done);
    pthread_mutex_unlock(&b->mu);
}

static void *worker(void *arg) {
    mr_pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->head && !p->stop) pthread_cond_wait(&p->has_work, &p->mu);
        task *t = pop_locked(p);
        pthread_mutex_unlock(&p->mu);
        if (!t) return NULL; /* stop and queue empty */
        finish(t);
    }
}

mr_pool *mr_pool_create(int nthreads) {
    if (nthreads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = n > 0 ? (int)n : 1;
    }
    mr_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->has_work, NULL);
    p->threads = calloc((size_t)nthreads, sizeof *p->threads);
    if (!p->threads) goto err;
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker, p) != 0) goto err;
        p->nthreads++;
    }
    return p;
err:
    mr_pool_free(p);
    return NULL;
}

void mr_pool_free(mr_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->has_work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
    free(p->threads);
    pthread_cond_destroy(&p->has_work);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int mr_pool_size(const mr_pool *p) { return p ? p->nthreads : 0; }

int mr_pool_run(mr_pool *p, mr_task_fn fn, void **args, int n) {
    if (n <= 0) return MR_OK;
    if (!p || n == 1) {
        for (int i = 0; i < n; i++) fn(args[i]);
        return MR_OK;
    }
    task *tasks = malloc((size_t)n * sizeof *tasks);
    if (!tasks) return MR_ENOMEM;
    batch b = {.pending = n};
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.done, NULL);
    for (int i = 0; i < n; i++)
        tasks[i] = (task){fn, args[i], &b, i + 1 < n ? &tasks[i + 1] : NULL};
    pthread_mutex_lock(&p->mu);
    if (p->tail) p->tail->next = &tasks[0];
    else p->head = &tasks[0];
    p->tail = &tasks[n - 1];
    pthread_cond_broadcast(&p->has_work);
    pthread_mutex_unlock(&p->mu);
    /* Help: run queued tasks (ours or others') until our batch is done. */
    for (;;) {
        pthread_mutex_lock(&b.mu);
        int left = b.pending;
        pthread_mutex_unlock(&b.mu);
        if (left == 0) break;
        pthread_mutex_lock(&p->mu);
        task *t = pop_locked(p);
        pthread_mutex_unlock(&p->mu);
        if (t) {
            finish(t);
            continue;
        }
        pthread_mutex_lock(&b.mu);
        while (b.pending > 0) pthread_cond_wait(&b.done, &b.mu);
        pthread_mutex_unlock(&b.mu);
    }
    pthread_cond_destroy(&b.done);
    pthread_mutex_destroy(&b.mu);
    free(tasks);
    return MR_OK;
}

typedef struct range_task {
    long begin, end;
    int chunk;
    mr_range_fn fn;
    void *arg;
} range_task;

static void run_range(void *arg) {
    range_task *r = arg;
    r->fn(r->begin, r->end, r->chunk, r->arg);
}

int mr_pool_parallel_for(mr_pool *p, long n, int nchunks, mr_range_fn fn, void *arg) {
    if (n <= 0) return MR_OK;
    if (nchunks <= 0) nchunks = mr_pool_size(p) + 1;
    if (nchunks > n) nchunks = (int)n;
    range_task *rt = malloc((size_t)nchunks * sizeof *rt);
    void **args = malloc((size_t)nchunks * sizeof *args);
    if (!rt || !args) {
        free(rt);
        free(args);
        return MR_ENOMEM;
    }
    for (int i = 0; i < nchunks; i++) {
        rt[i] = (range_task){n * i / nchunks, n * (i + 1) / nchunks, i, fn, arg};
        args[i] = &rt[i];
    }
    int rc = mr_pool_run(p, run_range, args, nchunks);
    free(rt);
    free(args);
    return rc;
}

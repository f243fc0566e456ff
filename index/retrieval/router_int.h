/* router_int.h — the router's struct, shared by router.c (experts, pilots,
 * routing rules), router_retrieve.c (search + merge) and router_build.c
 * (pilot builder, save/load). Not part of the public API. */
#ifndef MOEREC_INDEX_ROUTER_INT_H
#define MOEREC_INDEX_ROUTER_INT_H

#include <stdatomic.h>

#include "index/retrieval/router.h"

typedef struct router_expert {
    mr_retr *r;    /* borrowed */
    int space;     /* which query vector it searches with */
    float *pilots; /* (n_pilots, cfg.dim), unit norm */
    int n_pilots;
    atomic_uint_fast64_t routed; /* counters for metrics */
    atomic_uint_fast64_t fallback;
    atomic_uint_fast64_t candidates;
} router_expert;

struct mr_router {
    router_config cfg;                 /* defaults filled in */
    char fallback_name[RETR_NAME_MAX]; /* "" = no fallback */
    int fallback;                      /* its index, -1 until added */
    mr_pool *pool;                     /* borrowed; NULL = search inline */
    router_expert ex[ROUTER_MAX_EXPERTS];
    int n;
    atomic_uint_fast64_t queries;
};

/* router_set_pilots, optionally without normalising (pilots read back
 * from a file are already unit norm: normalising again would move them by
 * a rounding step and change routing bits). */
int router_pilots_install(mr_router *rt, int expert, const float *p, int n, int normalize,
                          mr_err *e);

/* Invariant of router_split_budget, asserted by it (debug builds): 1 when
 * the n budgets are >= 0, sum to k, and none is 0 when k >= n. */
int router_budget_check(const int *budgets, int n, int k);
/* Invariant of a router_retrieve result, asserted by it: at most k
 * candidates, best first with no id twice among equal scores, each
 * attributed to an expert that was searched (budget > 0) and returned it. */
int router_result_check(const router_result *res, int n_experts, int k);

#endif

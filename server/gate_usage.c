/* gate_usage.c — see gate_usage.h. */
#include "gate_usage.h"

#include <string.h>

#include "server/spinlock.h"

/* Copy a NUL-terminated name into dst[cap], cut to fit. */
static void copy_name(char *dst, size_t cap, const char *src) {
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void mr_gate_usage_add(mr_gate_usage *u, const moe_scorer *s) {
    moe_gate_report rep[MR_GU_GATES];
    for (int g = 0; g < MR_GU_GATES; g++) rep[g].n = -1; /* unfilled */
    int n = moe_scorer_gate_report(s, rep, MR_GU_GATES);
    if (n > MR_GU_GATES) n = MR_GU_GATES;
    /* After moe_scorer_run_split the scorer has no gate report: skip. */
    if (n <= 0 || rep[0].n < 0) return;
    mr_spin_lock(&u->lock);
    if (u->passes == 0) {
        u->n_gates = n;
        for (int g = 0; g < n; g++) {
            copy_name(u->gate[g], sizeof u->gate[g], rep[g].gate);
            u->n[g] = rep[g].n < MR_GU_EXPERTS ? rep[g].n : MR_GU_EXPERTS;
            for (int e = 0; e < u->n[g]; e++)
                copy_name(u->expert[g][e], sizeof u->expert[g][e], rep[g].expert[e]);
        }
    }
    u->passes++;
    for (int g = 0; g < u->n_gates && g < n; g++) {
        for (int e = 0; e < u->n[g]; e++) u->sum[g][e] += rep[g].weight[e];
        u->active[g] += rep[g].active_fraction;
    }
    mr_spin_unlock(&u->lock);
}

void mr_gate_usage_read(mr_gate_usage *u, mr_gate_usage *out) {
    mr_spin_lock(&u->lock);
    memcpy(out, u, sizeof *out);
    mr_spin_unlock(&u->lock);
    atomic_init(&out->lock, 0);
}

/* spinlock.h — a spin lock for sections of a few instructions (counter
 * updates of stats_window.c and gate_usage.c). Zeroed memory is unlocked.
 * Yields while waiting, so a preempted holder costs a reschedule, not a
 * burnt time slice. */
#ifndef MOEREC_SERVER_SPINLOCK_H
#define MOEREC_SERVER_SPINLOCK_H

#include <sched.h>
#include <stdatomic.h>

static inline void mr_spin_lock(atomic_int *l) {
    int z = 0;
    while (!atomic_compare_exchange_weak_explicit(l, &z, 1, memory_order_acquire,
                                                  memory_order_relaxed)) {
        z = 0;
        sched_yield();
    }
}

static inline void mr_spin_unlock(atomic_int *l) {
    atomic_store_explicit(l, 0, memory_order_release);
}

#endif

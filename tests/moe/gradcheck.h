/* gradcheck.h — finite-difference helpers shared by the moe tests.
 *
 * Central differences in float32: f(x + h) - f(x - h) over 2h, compared with
 * the analytic gradient as |num - ana| <= rtol * max(|num|, |ana|) + atol.
 * ReLU kinks and routing flips make a few coordinates non-differentiable at
 * the chosen step, so callers decide how many outliers they accept and
 * report the worst error seen among the rest.
 */
#ifndef MOEREC_TESTS_MOE_GRADCHECK_H
#define MOEREC_TESTS_MOE_GRADCHECK_H

#include <math.h>
#include <stdio.h>

typedef struct gc_stats {
    long checked, failed;
    double max_rel; /* worst relative error among coordinates that passed */
} gc_stats;

static inline int gc_compare(gc_stats *s, double num, double ana, double rtol, double atol) {
    double diff = fabs(num - ana), scale = fmax(fabs(num), fabs(ana));
    s->checked++;
    if (diff > rtol * scale + atol) {
        s->failed++;
        return 0;
    }
    double rel = scale > 0 ? diff / scale : 0;
    if (scale > 10 * atol && rel > s->max_rel) s->max_rel = rel;
    return 1;
}

#endif

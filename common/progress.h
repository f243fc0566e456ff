/* progress.h — a one-line progress display for long work (index builds,
 * training, batch scoring).
 *
 * On a terminal (stderr is a tty) it redraws one line at most every 200 ms:
 * label, done/total, percent, rate, ETA and a caller-supplied suffix (e.g.
 * the loss). Off a terminal it prints a plain line at most every 10 s, so
 * CI logs stay short. Never writes to stdout.
 */
#ifndef MOEREC_COMMON_PROGRESS_H
#define MOEREC_COMMON_PROGRESS_H

#include <stdint.h>

typedef struct mr_progress {
    char label[48];    /* what is being done: "train epoch 1" */
    const char *unit;  /* "rows", "samples" */
    uint64_t total;    /* 0 when unknown */
    uint64_t start_ns; /* when begun */
    uint64_t last_ns;  /* last draw */
    int tty;           /* stderr is a terminal */
    int enabled;       /* 0 silences everything */
} mr_progress;

void mr_progress_begin(mr_progress *p, const char *label, const char *unit, uint64_t total,
                       int enabled);
/* done: units finished so far; suffix may be NULL. Cheap when not drawing. */
void mr_progress_update(mr_progress *p, uint64_t done, const char *suffix);
/* Final line with the total time and mean rate. */
void mr_progress_end(mr_progress *p, uint64_t done, const char *suffix);

#endif

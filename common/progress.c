/* progress.c — see progress.h. */
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"

void mr_progress_begin(mr_progress *p, const char *label, const char *unit, uint64_t total,
                       int enabled) {
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    p->unit = unit ? unit : "items";
    p->total = total;
    p->start_ns = p->last_ns = mr_now_ns();
    p->tty = isatty(STDERR_FILENO);
    p->enabled = enabled;
}

static void fmt_secs(char *out, size_t n, double s) {
    if (s < 0 || s > 1e7) snprintf(out, n, "?");
    else if (s >= 3600) snprintf(out, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else if (s >= 60) snprintf(out, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(out, n, "%.1fs", s);
}

static void draw(mr_progress *p, uint64_t done, const char *suffix, int final) {
    uint64_t now = mr_now_ns();
    double el = (double)(now - p->start_ns) / 1e9;
    double rate = el > 0 ? (double)done / el : 0;
    char eta[64] = "";
    if (!final && p->total && rate > 0) {
        char t[32];
        fmt_secs(t, sizeof t, (double)(p->total > done ? p->total - done : 0) / rate);
        snprintf(eta, sizeof eta, " eta %s", t);
    }
    char pct[64] = "";
    if (p->total)
        snprintf(pct, sizeof pct, "/%llu (%.0f%%)", (unsigned long long)p->total,
                 100.0 * (double)done / (double)p->total);
    char took[32];
    fmt_secs(took, sizeof took, el);
    fprintf(stderr, "%s%s: %llu%s %s, %.0f %s/s%s%s%s%s%s", p->tty ? "\r\033[K" : "", p->label,
            (unsigned long long)done, pct, p->unit, rate, p->unit, eta, final ? " in " : "",
            final ? took : "", suffix ? "  " : "", suffix ? suffix : "");
    if (!p->tty || final) fputc('\n', stderr);
    fflush(stderr);
    p->last_ns = now;
}

void mr_progress_update(mr_progress *p, uint64_t done, const char *suffix) {
    if (!p->enabled) return;
    uint64_t gap = p->tty ? 200000000ull : 10000000000ull;
    if (mr_now_ns() - p->last_ns < gap) return;
    draw(p, done, suffix, 0);
}

void mr_progress_end(mr_progress *p, uint64_t done, const char *suffix) {
    if (!p->enabled) return;
    draw(p, done, suffix, 1);
}

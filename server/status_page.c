/* status_page.c — the HTML status page served at GET / of the metrics port
 * (see status_page.h). Everything is drawn here as inline SVG: no script,
 * no stylesheet or font from elsewhere, so it renders from a laptop with
 * no network. Every name that comes from data (model, retriever, gate,
 * method) goes through esc().
 *
 * Written with open_memstream: the page is a few tens of kilobytes, built
 * once per request from counters the server keeps anyway.
 */
#include "status_page.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moe/net.h"
#include "server/backend.h"
#include "server/registry.h"
#include "server/stats.h"

#define W 640 /* plot width, px */
#define H 220 /* line plot height */
#define ML 56 /* left margin (axis labels) */
#define MR 12
#define MT 12
#define MB 28

static const char *const COLORS[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
                                     "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"};
#define NCOLORS (int)(sizeof COLORS / sizeof *COLORS)

/* HTML-escape s (text and attribute values). */
static void esc(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* A "nice" axis maximum >= v whose quarters are round: 1, 2, 4, 6 or 8
 * times a power of ten. */
static double nice_max(double v) {
    if (!(v > 0)) return 1;
    double p = pow(10, floor(log10(v))), m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 4 ? 4 : m <= 6 ? 6 : m <= 8 ? 8 : 10) * p;
}

static void fmt_num(char *out, size_t n, double v) {
    if (v == 0) snprintf(out, n, "0");
    else if (fabs(v) >= 100) snprintf(out, n, "%.0f", v);
    else if (fabs(v) >= 10) snprintf(out, n, "%.1f", v);
    else snprintf(out, n, "%.2g", v);
}

typedef struct series {
    const char *name;
    double v[MR_WIN_MINUTES];
    unsigned char has[MR_WIN_MINUTES]; /* 0: no value that minute (gap) */
} series;

/* A line plot over the last 60 minutes: one polyline per run of minutes
 * with values, a dot for a lone minute. */
static void line_plot(FILE *f, const char *id, const char *title, const char *unit, const series *s,
                      int ns) {
    double mx = 0;
    for (int i = 0; i < ns; i++)
        for (int m = 0; m < MR_WIN_MINUTES; m++)
            if (s[i].has[m] && s[i].v[m] > mx) mx = s[i].v[m];
    mx = nice_max(mx);
    int pw = W - ML - MR, ph = H - MT - MB;
    fprintf(f, "<section class=\"plot\"><h2>");
    esc(f, title);
    fprintf(f,
            "</h2>\n<svg id=\"plot-%s\" data-plot=\"%s\" xmlns=\"http://www.w3.org/2000/svg\" "
            "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n",
            id, id, W, H, W, H);
    fprintf(f, "<title>");
    esc(f, title);
    fprintf(f, "</title>\n");
    for (int g = 0; g <= 4; g++) { /* horizontal grid and y labels */
        double y = MT + ph - ph * g / 4.0;
        char lab[32];
        fmt_num(lab, sizeof lab, mx * g / 4.0);
        fprintf(f,
                "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" class=\"grid\"/>"
                "<text x=\"%d\" y=\"%.1f\" class=\"ylab\">%s</text>\n",
                ML, y, W - MR, y, ML - 6, y + 4, lab);
    }
    for (int t = 0; t <= 4; t++) { /* x labels: minutes ago */
        double x = ML + pw * t / 4.0;
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" class=\"xlab\">%s</text>\n", x, H - 8,
                t == 4   ? "now"
                : t == 0 ? "-60 min"
                : t == 1 ? "-45"
                : t == 2 ? "-30"
                         : "-15");
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"unit\">", ML + 4, MT + 12);
    esc(f, unit);
    fprintf(f, "</text>\n");
    for (int i = 0; i < ns; i++) {
        const char *c = COLORS[i % NCOLORS];
        for (int m = 0; m < MR_WIN_MINUTES;) {
            if (!s[i].has[m]) {
                m++;
                continue;
            }
            int e = m;
            while (e < MR_WIN_MINUTES && s[i].has[e]) e++;
            if (e - m == 1) {
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n",
                        ML + pw * (m + 1) / (double)MR_WIN_MINUTES, MT + ph - ph * s[i].v[m] / mx,
                        c);
            } else {
                fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", c);
                for (int k = m; k < e; k++)
                    fprintf(f, "%.1f,%.1f ", ML + pw * (k + 1) / (double)MR_WIN_MINUTES,
                            MT + ph - ph * s[i].v[k] / mx);
                fprintf(f, "\"/>\n");
            }
            m = e;
        }
    }
    fprintf(f, "</svg>\n<ul class=\"legend\">");
    for (int i = 0; i < ns; i++) {
        fprintf(f, "<li><span class=\"sw\" style=\"background:%s\"></span>", COLORS[i % NCOLORS]);
        esc(f, s[i].name);
        fprintf(f, "</li>");
    }
    if (ns == 0) fprintf(f, "<li>no calls in the last hour</li>");
    fprintf(f, "</ul></section>\n");
}

/* Horizontal bars of fractions in [0, 1], labelled with percentages. */
static void bar_plot(FILE *f, const char *id, const char *title, const char *const *names,
                     const double *v, int n, const char *empty) {
    int bh = 22, lw = 200, h = MT + n * bh + 8, pw = W - lw - 70;
    fprintf(f, "<section class=\"plot\"><h2>");
    esc(f, title);
    fprintf(f,
            "</h2>\n<svg id=\"plot-%s\" data-plot=\"%s\" xmlns=\"http://www.w3.org/2000/svg\" "
            "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n<title>",
            id, id, W, h < 40 ? 40 : h, W, h < 40 ? 40 : h);
    esc(f, title);
    fprintf(f, "</title>\n");
    for (int i = 0; i < n; i++) {
        double x = v[i] < 0 ? 0 : v[i] > 1 ? 1 : v[i];
        int y = MT + i * bh;
        fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"blab\">", lw - 8, y + 15);
        esc(f, names[i]);
        fprintf(f,
                "</text><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" class=\"track\"/>"
                "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>"
                "<text x=\"%.1f\" y=\"%d\" class=\"bval\">%.1f%%</text>\n",
                lw, y + 2, pw, bh - 6, lw, y + 2, pw * x, bh - 6, COLORS[i % NCOLORS],
                lw + pw * x + 6, y + 15, 100 * v[i]);
    }
    if (n == 0) {
        fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"blab\" text-anchor=\"start\">", 8, MT + 14);
        esc(f, empty);
        fprintf(f, "</text>\n");
    }
    fprintf(f, "</svg></section>\n");
}

static const char *short_method(const char *path) {
    const char *p = strrchr(path, '/');
    return p ? p + 1 : path;
}

static void rpc_plots(FILE *f, mr_server *s) {
    int n = mr_server_method_count();
    series *qps = calloc((size_t)n, sizeof *qps), *err = calloc((size_t)n, sizeof *err);
    series *p50 = calloc((size_t)n, sizeof *p50), *p99 = calloc((size_t)n, sizeof *p99);
    mr_window_minute mins[MR_WIN_MINUTES];
    int k = 0;
    int64_t now = mr_window_now(), start_m = (now - (int64_t)mr_server_uptime_seconds(s)) / 60;
    for (int i = 0; qps && err && p50 && p99 && i < n; i++) {
        mr_window_read(&mr_server_stats(s, i)->minutes, now, mins);
        uint64_t total = 0;
        for (int m = 0; m < MR_WIN_MINUTES; m++) total += mins[m].calls;
        if (!total) continue;
        const char *name = short_method(mr_server_method_at(i)->path);
        qps[k].name = err[k].name = p50[k].name = p99[k].name = name;
        for (int m = 0; m < MR_WIN_MINUTES; m++) {
            /* minutes since the server started; the current one so far */
            qps[k].has[m] = mins[m].minute >= start_m;
            double secs = m == MR_WIN_MINUTES - 1 ? (double)(now % 60 + 1) : 60.0;
            qps[k].v[m] = (double)mins[m].calls / secs;
            int c = mins[m].calls > 0;
            err[k].has[m] = p50[k].has[m] = p99[k].has[m] = (unsigned char)c;
            if (c) {
                err[k].v[m] = 100.0 * (double)mins[m].errors / (double)mins[m].calls;
                p50[k].v[m] = (double)mins[m].p50_us / 1000.0;
                p99[k].v[m] = (double)mins[m].p99_us / 1000.0;
            }
        }
        k++;
    }
    if (qps && err && p50 && p99) {
        line_plot(f, "qps", "Calls per second, per RPC (per-minute mean)", "calls/s", qps, k);
        line_plot(f, "errors", "Error rate, per RPC", "% of calls", err, k);
        line_plot(f, "latency-p50", "Latency p50, per RPC", "ms", p50, k);
        line_plot(f, "latency-p99", "Latency p99, per RPC", "ms", p99, k);
    }
    free(qps);
    free(err);
    free(p50);
    free(p99);
}

static void model_table(FILE *f, mr_model_ref *ref) {
    const moe_model *m = ref->model;
    static const char *const gk[] = {"dense", "top_k", "top_p"};
    int experts = 0;
    for (int j = 0; j < m->net->n_levels; j++) experts += m->net->levels[j].n_experts;
    fprintf(f, "<tr><th>model</th><td class=\"model-name\">");
    esc(f, ref->name);
    fprintf(f, "</td></tr><tr><th>version</th><td>");
    esc(f, ref->version);
    fprintf(f, "</td></tr><tr><th>architecture</th><td>%s, %d experts, %s gates, tasks ",
            moe_arch_kind_name(m->net->arch.kind), experts, gk[m->net->arch.gate.kind]);
    for (int k = 0; k < m->n_tasks; k++) {
        if (k) fputs(", ", f);
        esc(f, m->tasks[k].name);
    }
    time_t t = (time_t)(ref->loaded_at_ms / 1000);
    struct tm tm;
    char when[64] = "?";
    if (gmtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    fprintf(f, "</td></tr><tr><th>loaded</th><td>%s</td></tr>\n", when);
}

static void gate_plots(FILE *f, mr_model_ref *ref) {
    mr_gate_usage *u = malloc(sizeof *u);
    if (!u) return;
    mr_gate_usage_read(&ref->usage, u);
    fprintf(f, "<div id=\"gates\" data-plot=\"gates\">");
    if (u->passes == 0 || u->n_gates == 0)
        bar_plot(f, "gate-none", "Expert utilisation per task gate", NULL, NULL, 0,
                 "no ranking pass yet");
    for (int g = 0; g < u->n_gates && u->passes; g++) {
        const char *names[MR_GU_EXPERTS];
        double v[MR_GU_EXPERTS];
        for (int e = 0; e < u->n[g]; e++) {
            names[e] = u->expert[g][e];
            v[e] = u->sum[g][e] / (double)u->passes;
        }
        char id[32], title[160];
        snprintf(id, sizeof id, "gate-%d", g);
        snprintf(title, sizeof title,
                 "Expert utilisation, gate %s (mean weight; %.0f%% of routed "
                 "experts active)",
                 u->gate[g], 100 * u->active[g] / (double)u->passes);
        bar_plot(f, id, title, names, v, u->n[g], "");
    }
    fprintf(f, "</div>\n");
    free(u);
}

static void router_plot(FILE *f, mr_model_ref *ref) {
    int n = 0;
    const char *names[64];
    double v[64];
    if (ref && ref->retrievers) {
        mr_router *rt = retr_set_router(ref->retrievers);
        uint64_t tot = 0, c[64];
        n = router_n_experts(rt) < 64 ? router_n_experts(rt) : 64;
        for (int e = 0; e < n; e++) {
            router_expert_stats es;
            router_stats_get(rt, e, &es);
            c[e] = es.routed + es.fallback;
            tot += c[e];
            names[e] = router_expert_name(rt, e);
        }
        for (int e = 0; e < n; e++) v[e] = tot ? (double)c[e] / (double)tot : 0;
    }
    bar_plot(f, "router", "Router selection share per expert retriever", names, v, n,
             ref ? "the default model has no retriever set" : "no model loaded");
}

static void store_part(FILE *f, mr_server *s) {
    mr_backend *be = mr_server_backend(s);
    const char *names[2] = {"memory cache", "shared tier (Redis Cluster)"};
    double v[2] = {0, 0};
    int n = 0;
    store_stats st;
    memset(&st, 0, sizeof st);
    if (be) {
        store_get_stats(be->st, &st);
        uint64_t look = st.cache_hits + st.cache_misses;
        v[n++] = look ? (double)st.cache_hits / (double)look : 0;
        if (be->tier) { /* Redis Cluster: rows found over rows asked of it */
            tier_redis_stats ts;
            tier_redis_get_stats(be->tier, &ts);
            v[n++] = ts.gets ? (double)ts.hits / (double)ts.gets : 0;
        }
    }
    bar_plot(f, "cache", "Cache hit rate per tier (since start)", names, v, n,
             "no store (start the server with data_dir)");
    fprintf(f, "<section><h2>Store</h2><table id=\"store\">");
    if (be)
        fprintf(f,
                "<tr><th>cache entries</th><td>%llu</td></tr>"
                "<tr><th>cache bytes</th><td>%llu of %llu</td></tr>"
                "<tr><th>rows written</th><td>%llu in %llu batches</td></tr>"
                "<tr><th>rows read from RocksDB</th><td>%llu (%llu found)</td></tr>"
                "<tr><th>rows expired by TTL</th><td>%llu</td></tr>",
                (unsigned long long)st.cache_entries, (unsigned long long)st.cache_bytes,
                (unsigned long long)st.cache_capacity, (unsigned long long)st.rows_written,
                (unsigned long long)st.batches_written, (unsigned long long)st.db_rows_read,
                (unsigned long long)st.db_rows_found,
                (unsigned long long)atomic_load(&be->expired_rows));
    else fprintf(f, "<tr><td>no store</td></tr>");
    fprintf(f, "</table></section>\n");
}

static void fmt_bytes(char *out, size_t n, uint64_t v) {
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double x = (double)v;
    int u = 0;
    while (x >= 1024 && u < 4) x /= 1024, u++;
    if (u == 0) snprintf(out, n, "%llu B", (unsigned long long)v);
    else snprintf(out, n, "%.*f %s", x < 10 ? 2 : x < 100 ? 1 : 0, x, unit[u]);
}

/* The store's size per column family (store_get_sizes): a table of the
 * RocksDB figures and a bar plot of each family's share of the keys,
 * titled with the bytes on disk and in memtables. The bars are keys, not
 * bytes: a young store has no SST file yet, and a memtable's size is its
 * arena (blocks of up to 1 MiB), memory rather than data. */
static void store_size_part(FILE *f, mr_backend *be) {
    store_cf_size sz[STORE_MAX_FAMILIES];
    int n = be ? store_get_sizes(be->st, sz, STORE_MAX_FAMILIES) : 0;
    const char *names[STORE_MAX_FAMILIES];
    double v[STORE_MAX_FAMILIES];
    uint64_t tot_sst = 0, tot_live = 0, tot_mem = 0, tot_keys = 0;
    for (int i = 0; i < n; i++) {
        tot_sst += sz[i].sst_bytes;
        tot_live += sz[i].live_bytes;
        tot_mem += sz[i].memtable_bytes;
        tot_keys += sz[i].keys;
    }
    fprintf(f, "<section><h2>Store size (RocksDB)</h2><table id=\"store-size\">");
    if (be) {
        fprintf(f, "<tr><th>column family</th><th>SST files</th><th>live data (est.)</th>"
                   "<th>memtables (memory)</th><th>keys (approx.)</th></tr>\n");
        for (int i = 0; i <= n; i++) {
            const store_cf_size *r = i < n ? &sz[i] : NULL;
            char a[32], b[32], c[32];
            fmt_bytes(a, sizeof a, r ? r->sst_bytes : tot_sst);
            fmt_bytes(b, sizeof b, r ? r->live_bytes : tot_live);
            fmt_bytes(c, sizeof c, r ? r->memtable_bytes : tot_mem);
            fprintf(f, "<tr class=\"%s\"><td>", r ? "cf" : "cf-total");
            esc(f, r ? r->name : "total");
            fprintf(f, "</td><td>%s</td><td>%s</td><td>%s</td><td>%llu</td></tr>\n", a, b, c,
                    (unsigned long long)(r ? r->keys : tot_keys));
        }
    } else {
        fprintf(f, "<tr><td>no store</td></tr>");
    }
    fprintf(f, "</table></section>\n");
    for (int i = 0; i < n; i++) {
        names[i] = sz[i].name;
        v[i] = tot_keys ? (double)sz[i].keys / (double)tot_keys : 0;
    }
    char title[160], disk[32], mem[32];
    fmt_bytes(disk, sizeof disk, tot_sst);
    fmt_bytes(mem, sizeof mem, tot_mem);
    snprintf(title, sizeof title,
             "Store keys per column family (approx. %llu in all; %s on disk "
             "in SST files, %s in memtables)",
             (unsigned long long)tot_keys, disk, mem);
    bar_plot(f, "store-size", title, names, v, n, "no store (start the server with data_dir)");
}

static const char STYLE[] =
    "body{font:15px/1.4 system-ui,sans-serif;margin:16px 24px;color:#222;background:#fff}"
    "h1{font-size:22px;margin:0 0 8px}h2{font-size:16px;margin:18px 0 4px}"
    "table{border-collapse:collapse}th{text-align:left;padding:2px 14px 2px 0;color:#555;"
    "font-weight:normal}td{padding:2px 14px 2px 0}tr.cf-total td{font-weight:bold}"
    ".grid{stroke:#ddd;stroke-width:1}.ylab{font-size:12px;text-anchor:end;fill:#555}"
    ".xlab{font-size:12px;text-anchor:middle;fill:#555}.unit{font-size:12px;fill:#555}"
    ".blab{font-size:13px;text-anchor:end;fill:#222}.bval{font-size:12px;fill:#333}"
    ".track{fill:#f0f0f0}.legend{list-style:none;padding:0;margin:2px 0 0 56px}"
    ".legend li{display:inline-block;margin-right:14px;font-size:13px}"
    ".sw{display:inline-block;width:12px;height:12px;margin-right:5px;vertical-align:-1px}"
    ".cols{display:flex;flex-wrap:wrap;gap:0 28px}";

char *mr_status_page_render(mr_server *s, size_t *len) {
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    if (!f) return NULL;
    uint64_t up = mr_server_uptime_seconds(s);
    fprintf(
        f,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"refresh\" content=\"30\">"
        "<meta name=\"viewport\" content=\"width=device-width\"><link rel=\"icon\" href=\"data:,\">"
        "<title>moerec status</title><style>%s</style></head><body>\n",
        STYLE);
    fprintf(f,
            "<h1>moerec %s</h1>\n<table id=\"summary\"><tr><th>state</th><td>%s</td></tr>"
            "<tr><th>uptime</th><td id=\"uptime\">%llud %02lluh %02llum %02llus</td></tr>\n",
            MOEREC_VERSION, mr_server_serving(s) ? "serving" : "draining",
            (unsigned long long)(up / 86400), (unsigned long long)(up / 3600 % 24),
            (unsigned long long)(up / 60 % 60), (unsigned long long)(up % 60));
    mr_registry *reg = mr_server_registry(s);
    mr_model_ref *ref = NULL;
    if (reg && mr_registry_acquire(reg, "", &ref, NULL) != MR_OK) ref = NULL;
    if (ref) model_table(f, ref);
    else fprintf(f, "<tr><th>model</th><td>none loaded</td></tr>\n");
    fprintf(f, "</table>\n<div class=\"cols\">\n");
    rpc_plots(f, s);
    fprintf(f, "</div><div class=\"cols\">\n");
    store_part(f, s);
    router_plot(f, ref);
    fprintf(f, "</div><div class=\"cols\">\n");
    store_size_part(f, mr_server_backend(s));
    fprintf(f, "</div>\n");
    if (ref) gate_plots(f, ref);
    else
        bar_plot(f, "gate-none", "Expert utilisation per task gate", NULL, NULL, 0,
                 "no model loaded");
    if (ref) mr_model_release(ref);
    fprintf(f, "<p class=\"foot\">Per-minute buckets over the last hour; the page reloads "
               "every 30 s. The same figures for Prometheus: <a href=\"/metrics\">/metrics</a>."
               "</p>\n</body></html>\n");
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    if (len) *len = n;
    return out;
}

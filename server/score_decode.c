/* score_decode.c — see score_decode.h.
 *
 * Each message is read twice, as protobuf-c does: a scan that checks every
 * field against the message's few (number, wire type, repeated) and counts
 * the repeated ones, then a pass that allocates the message and its arrays
 * from the arena and fills them. The scan declines what protobuf-c might
 * read differently or refuse, so the fill pass never meets a surprise:
 *  - a field not in the schema, or with another wire type (protobuf-c keeps
 *    unknown fields; a packed or mistyped field is its error);
 *  - a singular field seen twice (protobuf-c keeps the last scalar and
 *    merges a repeated sub-message);
 *  - a tag or a length prefix over 5 bytes, a length over INT_MAX or past
 *    the end, a varint over 10 bytes or whose 10th byte is over 1
 *    (protobuf-c's own bounds; the last keeps bools and uint64s equal).
 * Values are read as protobuf-c reads them: strings copied with a NUL
 * after the bytes, a float's 4 little-endian bytes, a bool true when any
 * bit is set. Saves the generic unpacker's per-message work (descriptor
 * lookups, a scan array, required-field bitmaps): measured in
 * docs/benchmarks.md (precision, served Score path).
 */
#include "server/score_decode.h"

#include <limits.h>
#include <string.h>

typedef struct rd {
    const uint8_t *p, *end;
} rd;

/* A varint of at most max bytes (and, at 10, a last byte of 0 or 1). */
static inline int varint(rd *r, uint64_t *v, int max) {
    if (r->p < r->end && *r->p < 0x80) { /* one byte: nearly every tag and length here */
        *v = *r->p++;
        return 1;
    }
    uint64_t x = 0;
    for (int i = 0; i < max && r->p < r->end; i++) {
        uint8_t b = *r->p++;
        if (i == 9 && b > 1) return 0;
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return 1;
        }
    }
    return 0;
}

/* The next field of r: 1 with its number, wire type and payload (sub for
 * length-delimited, v for a varint or fixed32), 0 at the end, -1 on what
 * the decoder declines. */
static inline int next(rd *r, uint32_t *field, int *wt, rd *sub, uint64_t *v) {
    if (r->p == r->end) return 0;
    uint64_t t;
    if (!varint(r, &t, 5) || (t >> 3) == 0 || (t >> 3) > UINT32_MAX) return -1;
    *field = (uint32_t)(t >> 3);
    *wt = (int)(t & 7);
    switch (*wt) {
    case 0: return varint(r, v, 10) ? 1 : -1;
    case 5: {
        if (r->end - r->p < 4) return -1;
        uint32_t u;
        memcpy(&u, r->p, 4); /* little-endian hosts, as protobuf-c's memcpy */
        r->p += 4;
        *v = u;
        return 1;
    }
    case 2: {
        uint64_t n;
        if (!varint(r, &n, 5) || n > INT_MAX || n > (uint64_t)(r->end - r->p)) return -1;
        *sub = (rd){r->p, r->p + n};
        r->p += n;
        return 1;
    }
    default: return -1;
    }
}

typedef struct fspec {
    uint32_t field;
    int wt, repeated;
    int str; /* a string field: its bytes + NUL count in scan's *bytes */
} fspec;

/* 1 when every field of r is one of spec's with its wire type and each
 * singular one comes at most once; count[i] gets spec[i]'s occurrences,
 * *bytes the room the str fields take as C strings. */
static int scan(rd r, const fspec *spec, int nspec, size_t *count, size_t *bytes) {
    memset(count, 0, sizeof *count * (size_t)nspec);
    *bytes = 0;
    uint32_t f;
    int wt, rc;
    rd sub = {0};
    uint64_t v = 0;
    while ((rc = next(&r, &f, &wt, &sub, &v)) == 1) {
        int i = 0;
        while (i < nspec && spec[i].field != f) i++;
        if (i == nspec || spec[i].wt != wt || (count[i]++ && !spec[i].repeated)) return 0;
        if (spec[i].str) *bytes += (size_t)(sub.end - sub.p) + 1;
    }
    return rc == 0;
}

/* s as a C string at *pool, which moves past it (room counted by scan). */
static char *carve_str(char **pool, rd s) {
    size_t n = (size_t)(s.end - s.p);
    char *p = *pool;
    memcpy(p, s.p, n);
    p[n] = '\0';
    *pool += n + 1;
    return p;
}

static char *str(mr_arena *a, rd s) {
    size_t n = (size_t)(s.end - s.p);
    char *p = mr_arena_alloc(a, n + 1);
    if (!p) return NULL;
    memcpy(p, s.p, n);
    p[n] = '\0';
    return p;
}

/* The fill passes below run after scan accepted the same bytes: next
 * returns 1 for every field and each field is one of the spec's. */

static void *array(mr_arena *a, size_t n, size_t elem, int *ok) {
    if (!n) return NULL;
    void *p = mr_arena_alloc(a, n * elem);
    if (!p) *ok = 0;
    return p;
}

/* The two feature types, the bulk of a request (~13,000 per 500
 * candidates), take one allocation each: the message, its values array
 * and its strings (an allocation per string was ~1% of the server's CPU). */
static Moerec__V1__CategoricalFeature *dec_cat(mr_arena *a, rd r) {
    static const fspec sp[] = {{1, 2, 0, 1}, {2, 2, 1, 1}};
    size_t cnt[2], bytes;
    if (!scan(r, sp, 2, cnt, &bytes)) return NULL;
    Moerec__V1__CategoricalFeature *m;
    size_t head = (sizeof *m + 15) & ~(size_t)15, arr = cnt[1] * sizeof *m->values;
    unsigned char *blk = mr_arena_alloc(a, head + arr + bytes);
    if (!blk) return NULL;
    m = (Moerec__V1__CategoricalFeature *)blk;
    moerec__v1__categorical_feature__init(m);
    if (cnt[1]) m->values = (char **)(blk + head);
    char *pool = (char *)(blk + head + arr);
    uint32_t f;
    int wt;
    rd s = {0};
    uint64_t v = 0;
    while (next(&r, &f, &wt, &s, &v) == 1) {
        if (f == 1) m->name = carve_str(&pool, s);
        else m->values[m->n_values++] = carve_str(&pool, s);
    }
    return m;
}

static Moerec__V1__NumericFeature *dec_num(mr_arena *a, rd r) {
    static const fspec sp[] = {{1, 2, 0, 1}, {2, 5, 0, 0}};
    size_t cnt[2], bytes;
    if (!scan(r, sp, 2, cnt, &bytes)) return NULL;
    Moerec__V1__NumericFeature *m;
    size_t head = (sizeof *m + 15) & ~(size_t)15;
    unsigned char *blk = mr_arena_alloc(a, head + bytes);
    if (!blk) return NULL;
    m = (Moerec__V1__NumericFeature *)blk;
    moerec__v1__numeric_feature__init(m);
    char *pool = (char *)(blk + head);
    uint32_t f;
    int wt;
    rd s = {0};
    uint64_t v = 0;
    while (next(&r, &f, &wt, &s, &v) == 1) {
        if (f == 1) {
            m->name = carve_str(&pool, s);
        } else {
            uint32_t u = (uint32_t)v;
            memcpy(&m->value, &u, sizeof m->value);
        }
    }
    return m;
}

static Moerec__V1__Features *dec_features(mr_arena *a, rd r) {
    static const fspec sp[] = {{1, 2, 1, 0}, {2, 2, 1, 0}};
    size_t cnt[2], bytes;
    if (!scan(r, sp, 2, cnt, &bytes)) return NULL;
    Moerec__V1__Features *m = mr_arena_alloc(a, sizeof *m);
    if (!m) return NULL;
    moerec__v1__features__init(m);
    int ok = 1;
    m->categorical = array(a, cnt[0], sizeof *m->categorical, &ok);
    m->numeric = array(a, cnt[1], sizeof *m->numeric, &ok);
    uint32_t f;
    int wt;
    rd s = {0};
    uint64_t v = 0;
    while (ok && next(&r, &f, &wt, &s, &v) == 1) {
        if (f == 1) ok = (m->categorical[m->n_categorical++] = dec_cat(a, s)) != NULL;
        else ok = (m->numeric[m->n_numeric++] = dec_num(a, s)) != NULL;
    }
    return ok ? m : NULL;
}

static Moerec__V1__Candidate *dec_candidate(mr_arena *a, rd r) {
    static const fspec sp[] = {{1, 2, 0, 0}, {2, 2, 0, 0}};
    size_t cnt[2], bytes;
    if (!scan(r, sp, 2, cnt, &bytes)) return NULL;
    Moerec__V1__Candidate *m = mr_arena_alloc(a, sizeof *m);
    if (!m) return NULL;
    moerec__v1__candidate__init(m);
    uint32_t f;
    int wt;
    rd s = {0};
    uint64_t v = 0;
    while (next(&r, &f, &wt, &s, &v) == 1) {
        if (f == 1 ? !(m->item_id = str(a, s)) : !(m->features = dec_features(a, s))) return NULL;
    }
    return m;
}

static Moerec__V1__ScoreRequest *dec_request(mr_arena *a, rd r) {
    static const fspec sp[] = {{1, 2, 0, 0}, {2, 2, 0, 0}, {3, 2, 0, 0}, {4, 2, 0, 0},
                               {5, 2, 1, 0}, {6, 0, 0, 0}, {7, 2, 0, 0}, {20, 0, 0, 0}};
    size_t cnt[8], bytes;
    if (!scan(r, sp, 8, cnt, &bytes)) return NULL;
    Moerec__V1__ScoreRequest *m = mr_arena_alloc(a, sizeof *m);
    if (!m) return NULL;
    moerec__v1__score_request__init(m);
    int ok = 1;
    m->candidates = array(a, cnt[4], sizeof *m->candidates, &ok);
    uint32_t f;
    int wt;
    rd s = {0};
    uint64_t v = 0;
    while (ok && next(&r, &f, &wt, &s, &v) == 1) {
        switch (f) {
        case 1: ok = (m->request_id = str(a, s)) != NULL; break;
        case 2: ok = (m->user_id = str(a, s)) != NULL; break;
        case 3: ok = (m->user_features = dec_features(a, s)) != NULL; break;
        case 4: ok = (m->context_features = dec_features(a, s)) != NULL; break;
        case 5: ok = (m->candidates[m->n_candidates++] = dec_candidate(a, s)) != NULL; break;
        case 6: m->debug = v != 0; break;
        case 7: ok = (m->model = str(a, s)) != NULL; break;
        default: m->min_sequence = v; break; /* 20 */
        }
    }
    return ok ? m : NULL;
}

Moerec__V1__ScoreRequest *mr_score_request_decode(mr_arena *a, const uint8_t *buf, size_t len) {
    static const uint8_t none[1];
    if (!buf) buf = none, len = 0;
    mr_arena_mark mark = mr_arena_mark_of(a);
    Moerec__V1__ScoreRequest *m = dec_request(a, (rd){buf, buf + len});
    if (!m) mr_arena_rewind(a, mark);
    return m;
}

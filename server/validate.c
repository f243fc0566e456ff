/* validate.c — see validate.h.
 *
 * The walk is recursive over message fields; moerec's protos have no
 * recursive message types, so depth is bounded by the schema (and we stop
 * at 16 regardless). Cost is linear in the decoded size, well below the
 * cost of decoding itself.
 */
#include "validate.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "proto/health.pb-c.h"
#include "proto/moerec.pb-c.h"

#define DEFAULT_MAX_STRING 4096    /* bytes, any string without its own limit */
#define DEFAULT_MAX_REPEATED 10000 /* entries, any repeated field without its own limit */
#define MAX_DEPTH 16

typedef enum { LIM_FIXED, LIM_BATCH, LIM_CANDIDATES } limit_src;

typedef struct field_limit {
    const ProtobufCMessageDescriptor *message; /* moerec.v1.Candidate, ... */
    const char *field;                         /* field name */
    size_t max_bytes;                          /* per string entry; 0 = default */
    size_t max_count;                          /* entries, repeated fields; 0 = default */
    limit_src count_src;                       /* LIM_FIXED uses max_count */
} field_limit;

/* The per-field limits documented in docs/api.md. */
static const field_limit limits[] = {
    {&moerec__v1__categorical_feature__descriptor, "name", 128, 0, LIM_FIXED},
    {&moerec__v1__categorical_feature__descriptor, "values", 256, 64, LIM_FIXED},
    {&moerec__v1__numeric_feature__descriptor, "name", 128, 0, LIM_FIXED},
    {&moerec__v1__features__descriptor, "categorical", 0, 256, LIM_FIXED},
    {&moerec__v1__features__descriptor, "numeric", 0, 256, LIM_FIXED},
    {&moerec__v1__recommend_request__descriptor, "request_id", 128, 0, LIM_FIXED},
    {&moerec__v1__recommend_request__descriptor, "user_id", 256, 0, LIM_FIXED},
    {&moerec__v1__recommend_request__descriptor, "exclude_item_ids", 256, 10000, LIM_FIXED},
    {&moerec__v1__recommend_request__descriptor, "retrievers", 128, 64, LIM_FIXED},
    {&moerec__v1__score_request__descriptor, "request_id", 128, 0, LIM_FIXED},
    {&moerec__v1__score_request__descriptor, "user_id", 256, 0, LIM_FIXED},
    {&moerec__v1__score_request__descriptor, "candidates", 0, 0, LIM_CANDIDATES},
    {&moerec__v1__candidate__descriptor, "item_id", 256, 0, LIM_FIXED},
    {&moerec__v1__retrieve_request__descriptor, "request_id", 128, 0, LIM_FIXED},
    {&moerec__v1__retrieve_request__descriptor, "user_id", 256, 0, LIM_FIXED},
    {&moerec__v1__retrieve_request__descriptor, "exclude_item_ids", 256, 10000, LIM_FIXED},
    {&moerec__v1__retrieve_request__descriptor, "retrievers", 128, 64, LIM_FIXED},
    {&moerec__v1__retrieve_request__descriptor, "query_vector", 0, 4096, LIM_FIXED},
    {&moerec__v1__item__descriptor, "item_id", 256, 0, LIM_FIXED},
    /* config item_dim's upper bound; UpsertItems checks the exact dim (a
     * limit of 4096 here rejected every vector of a wider item table) */
    {&moerec__v1__item__descriptor, "embedding", 0, 65535, LIM_FIXED},
    {&moerec__v1__upsert_items_request__descriptor, "items", 0, 0, LIM_BATCH},
    {&moerec__v1__delete_items_request__descriptor, "item_ids", 256, 0, LIM_BATCH},
    {&moerec__v1__event__descriptor, "user_id", 256, 0, LIM_FIXED},
    {&moerec__v1__event__descriptor, "item_id", 256, 0, LIM_FIXED},
    {&moerec__v1__event__descriptor, "action", 64, 0, LIM_FIXED},
    {&moerec__v1__append_events_request__descriptor, "events", 0, 0, LIM_BATCH},
    {&moerec__v1__push_embeddings_request__descriptor, "ids", 0, 65536, LIM_FIXED},
    /* ids x dim; max_receive_bytes bounds it first at its default */
    {&moerec__v1__push_embeddings_request__descriptor, "rows", 0, 65536 * 4096, LIM_FIXED},
    {&moerec__v1__push_embeddings_request__descriptor, "request_id", 128, 0, LIM_FIXED},
    {&grpc__health__v1__health_check_request__descriptor, "service", 256, 0, LIM_FIXED},
};

#define N_LIMITS (sizeof limits / sizeof limits[0])
#define LIMIT_SLOTS 128 /* power of two, > 2 * N_LIMITS: short probes */

/* The limits by field descriptor (unique per field), an open-addressing
 * table built once: the walk looks up every field of every sub-message, and
 * a linear strcmp scan of the table cost ~6% of the server's CPU. */
static const ProtobufCFieldDescriptor *g_limit_key[LIMIT_SLOTS];
static const field_limit *g_limit_val[LIMIT_SLOTS];
static pthread_once_t g_limits_once = PTHREAD_ONCE_INIT;

static size_t limit_slot(const ProtobufCFieldDescriptor *f) {
    return (size_t)(((uintptr_t)f >> 3) * 0x9E3779B97F4A7C15ull >> 57) & (LIMIT_SLOTS - 1);
}

static void features_init(void);

static void limits_init(void) {
    _Static_assert(LIMIT_SLOTS > 2 * N_LIMITS, "limit table too small");
    for (size_t i = 0; i < N_LIMITS; i++) {
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(
            limits[i].message, limits[i].field);
        assert(f && "a limit names a field its message does not have");
        if (!f) continue;
        size_t h = limit_slot(f);
        while (g_limit_key[h]) h = (h + 1) & (LIMIT_SLOTS - 1);
        g_limit_key[h] = f;
        g_limit_val[h] = &limits[i];
    }
    features_init();
}

static const field_limit *find_limit_built(const ProtobufCFieldDescriptor *f) {
    for (size_t h = limit_slot(f); g_limit_key[h]; h = (h + 1) & (LIMIT_SLOTS - 1))
        if (g_limit_key[h] == f) return g_limit_val[h];
    return NULL;
}

static const field_limit *find_limit(const ProtobufCFieldDescriptor *f) {
    pthread_once(&g_limits_once, limits_init);
    return find_limit_built(f);
}

/* The limits of a Features message and its two element types, taken from
 * the table (features_ok), and whether those messages have exactly the
 * fields it checks (else the generic walk does it all). */
static struct {
    int on;
    size_t n_cat, n_num;          /* Features.categorical / numeric entries */
    size_t cat_name, n_values;    /* CategoricalFeature.name bytes, values entries */
    size_t value_bytes, num_name; /* bytes of one value, NumericFeature.name bytes */
} g_feat;

static size_t limit_of(const ProtobufCMessageDescriptor *d, const char *field, int count) {
    const field_limit *l = find_limit_built(
        protobuf_c_message_descriptor_get_field_by_name(d, field));
    size_t v = !l ? 0 : count ? l->max_count : l->max_bytes;
    return v ? v : count ? DEFAULT_MAX_REPEATED : DEFAULT_MAX_STRING;
}

static void features_init(void) {
    const ProtobufCMessageDescriptor *fd = &moerec__v1__features__descriptor,
                                     *cd = &moerec__v1__categorical_feature__descriptor,
                                     *nd = &moerec__v1__numeric_feature__descriptor;
    g_feat.n_cat = limit_of(fd, "categorical", 1);
    g_feat.n_num = limit_of(fd, "numeric", 1);
    g_feat.cat_name = limit_of(cd, "name", 0);
    g_feat.n_values = limit_of(cd, "values", 1);
    g_feat.value_bytes = limit_of(cd, "values", 0);
    g_feat.num_name = limit_of(nd, "name", 0);
    g_feat.on = fd->n_fields == 2 && cd->n_fields == 2 && nd->n_fields == 2;
}

int mr_utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned cp;
        if ((c & 0xe0) == 0xc0) len = 2, cp = c & 0x1f;
        else if ((c & 0xf0) == 0xe0) len = 3, cp = c & 0x0f;
        else if ((c & 0xf8) == 0xf0) len = 4, cp = c & 0x07;
        else return 0;
        if (i + len > n) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        static const unsigned min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += len;
    }
    return 1;
}

static const char *short_name(const ProtobufCMessageDescriptor *d) {
    const char *dot = strrchr(d->name, '.');
    return dot ? dot + 1 : d->name;
}

/* Where the walk is, as a stack of (message, field, index) frames; the
 * path text ("ScoreRequest.candidates[1]/Candidate.item_id") is built only
 * when something fails, so a valid request costs no formatting. */
typedef struct frame {
    const ProtobufCMessageDescriptor *msg;
    const ProtobufCFieldDescriptor *field;
    long index; /* -1: not an element of a repeated field */
} frame;

__attribute__((format(printf, 4, 5))) static int fail(mr_err *err, const frame *fr, int n,
                                                      const char *fmt, ...) {
    char path[512];
    size_t o = 0;
    for (int i = 0; i < n && o < sizeof path; i++) {
        int k = snprintf(path + o, sizeof path - o, "%s%s.%s", i ? "/" : "", short_name(fr[i].msg),
                         fr[i].field->name);
        o += k > 0 ? (size_t)k : 0;
        if (fr[i].index >= 0 && o < sizeof path) {
            k = snprintf(path + o, sizeof path - o, "[%ld]", fr[i].index);
            o += k > 0 ? (size_t)k : 0;
        }
    }
    if (o >= sizeof path) o = sizeof path - 1;
    path[o] = '\0';
    char msg[MR_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mr_err_set(err, MR_EINVAL, "%s: %s", path, msg);
}

static int walk(const ProtobufCMessage *m, const mr_server_config *cfg, frame *fr, int depth,
                mr_err *err);

/* The string checks of check_value in one pass for the usual case, a
 * short ASCII string (feature names and values: strlen and the UTF-8 walk
 * as two calls were ~1.5% of a 500-candidate Score's CPU). */
static int string_ok(const char *s, size_t max_bytes) {
    if (!s) return 1;
    const unsigned char *u = (const unsigned char *)s;
    size_t n = 0;
    while (n <= max_bytes && u[n] - 1u < 0x7fu) n++; /* 1..0x7f */
    if (n <= max_bytes && !u[n]) return 1;           /* ASCII, within the bound */
    n += strlen(s + n);
    return n <= max_bytes && mr_utf8_valid(u, n);
}

/* 1 when Features f passes every check the walk makes of it (the limits
 * of g_feat, UTF-8, finite values). A Score request of 500 candidates
 * holds ~13,000 feature messages, and the walk's per-field descriptor
 * loop and limit lookups over them were 4-5% of the server's CPU; this
 * direct pass does the same checks. On 0 the caller walks f for the
 * error, so every message and path stays the walk's own. */
static int features_ok(const Moerec__V1__Features *f) {
    if (f->n_categorical > g_feat.n_cat || f->n_numeric > g_feat.n_num) return 0;
    for (size_t i = 0; i < f->n_categorical; i++) {
        const Moerec__V1__CategoricalFeature *c = f->categorical[i];
        if (!c) continue;
        if (c->n_values > g_feat.n_values || !string_ok(c->name, g_feat.cat_name)) return 0;
        for (size_t k = 0; k < c->n_values; k++)
            if (!string_ok(c->values[k], g_feat.value_bytes)) return 0;
    }
    for (size_t i = 0; i < f->n_numeric; i++) {
        const Moerec__V1__NumericFeature *n = f->numeric[i];
        if (n && (!isfinite(n->value) || !string_ok(n->name, g_feat.num_name))) return 0;
    }
    return 1;
}

static int check_value(const ProtobufCFieldDescriptor *f, const void *p, size_t max_bytes,
                       const mr_server_config *cfg, frame *fr, int depth, mr_err *err) {
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        if (!s) return MR_OK;
        size_t n = strlen(s);
        if (n > max_bytes) return fail(err, fr, depth + 1, "%zu bytes, at most %zu", n, max_bytes);
        if (!mr_utf8_valid((const unsigned char *)s, n))
            return fail(err, fr, depth + 1, "not valid UTF-8");
        return MR_OK;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        if (b->len > max_bytes)
            return fail(err, fr, depth + 1, "%zu bytes, at most %zu", b->len, max_bytes);
        return MR_OK;
    }
    case PROTOBUF_C_TYPE_FLOAT:
        if (!isfinite(*(const float *)p)) return fail(err, fr, depth + 1, "not a finite number");
        return MR_OK;
    case PROTOBUF_C_TYPE_DOUBLE:
        if (!isfinite(*(const double *)p)) return fail(err, fr, depth + 1, "not a finite number");
        return MR_OK;
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)p;
        if (sub && g_feat.on && depth + 1 < MAX_DEPTH &&
            sub->descriptor == &moerec__v1__features__descriptor &&
            features_ok((const Moerec__V1__Features *)sub))
            return MR_OK;
        return sub ? walk(sub, cfg, fr, depth + 1, err) : MR_OK;
    }
    default: return MR_OK;
    }
}

static size_t elem_size(ProtobufCType t) {
    switch (t) {
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_FLOAT: return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE: return sizeof(double);
    default: return 0; /* integers, bools, enums: nothing to check per entry */
    }
}

/* fr[0..depth) are the frames above m; this level fills fr[depth]. */
static int walk(const ProtobufCMessage *m, const mr_server_config *cfg, frame *fr, int depth,
                mr_err *err) {
    if (depth >= MAX_DEPTH) return fail(err, fr, depth, "nested too deeply");
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const field_limit *lim = find_limit(f);
        size_t max_bytes = lim && lim->max_bytes ? lim->max_bytes : DEFAULT_MAX_STRING;
        fr[depth] = (frame){d, f, -1};
        const char *base = (const char *)m;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            size_t max = DEFAULT_MAX_REPEATED;
            if (lim && lim->count_src == LIM_BATCH) max = (size_t)cfg->max_batch;
            else if (lim && lim->count_src == LIM_CANDIDATES) max = (size_t)cfg->max_candidates;
            else if (lim && lim->max_count) max = lim->max_count;
            if (n > max) return fail(err, fr, depth + 1, "%zu entries, at most %zu", n, max);
            size_t es = elem_size(f->type);
            if (!es) continue;
            const char *arr = *(char *const *)(base + f->offset);
            for (size_t k = 0; k < n; k++) {
                fr[depth].index = (long)k;
                int rc = check_value(f, arr + k * es, max_bytes, cfg, fr, depth, err);
                if (rc) return rc;
            }
        } else {
            int rc = check_value(f, base + f->offset, max_bytes, cfg, fr, depth, err);
            if (rc) return rc;
        }
    }
    return MR_OK;
}

int mr_validate_message(const ProtobufCMessage *msg, const mr_server_config *cfg, mr_err *err) {
    frame fr[MAX_DEPTH + 1];
    pthread_once(&g_limits_once, limits_init); /* g_feat, read before the first find_limit */
    return walk(msg, cfg, fr, 0, err);
}

/* test_score_decode.c — server/score_decode.c against protobuf-c: random
 * ScoreRequests decode to the same message (packed again, byte for byte),
 * every prefix and thousands of corrupted copies are taken only when
 * protobuf-c reads them the same, what the decoder declines (unknown
 * fields, repeated singular fields, other wire types, a full arena) leaves
 * the arena as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/rng.h"
#include "server/score_decode.h"

/* Storage of one random request (everything static: the test is serial). */
enum { NC = 12, NF = 6, NV = 3 };
static char g_str[4 * NC * NF * NV + 64][12];
static int g_nstr;
static char *g_vals[NC + 2][NF][NV];
static Moerec__V1__CategoricalFeature g_cat[NC + 2][NF], *g_catp[NC + 2][NF];
static Moerec__V1__NumericFeature g_num[NC + 2][NF], *g_nump[NC + 2][NF];
static Moerec__V1__Features g_feat[NC + 2];
static Moerec__V1__Candidate g_cand[NC], *g_candp[NC];

static char *rstr(mr_rng *r) {
    char *s = g_str[g_nstr++];
    int n = (int)mr_rng_below(r, 11); /* 0..10 bytes, empty strings too */
    for (int i = 0; i < n; i++) s[i] = (char)('a' + mr_rng_below(r, 26));
    s[n] = '\0';
    return s;
}

static Moerec__V1__Features *rfeat(mr_rng *r, int k) {
    Moerec__V1__Features *f = &g_feat[k];
    moerec__v1__features__init(f);
    f->n_categorical = mr_rng_below(r, NF + 1);
    f->n_numeric = mr_rng_below(r, NF + 1);
    for (size_t i = 0; i < f->n_categorical; i++) {
        Moerec__V1__CategoricalFeature *c = &g_cat[k][i];
        moerec__v1__categorical_feature__init(c);
        c->name = rstr(r);
        c->n_values = mr_rng_below(r, NV + 1);
        for (size_t v = 0; v < c->n_values; v++) g_vals[k][i][v] = rstr(r);
        c->values = g_vals[k][i];
        g_catp[k][i] = c;
    }
    for (size_t i = 0; i < f->n_numeric; i++) {
        Moerec__V1__NumericFeature *n = &g_num[k][i];
        moerec__v1__numeric_feature__init(n);
        n->name = rstr(r);
        n->value = mr_rng_below(r, 4) ? (float)mr_rng_uniform(r) * 100 - 50 : 0.0f;
        g_nump[k][i] = n;
    }
    f->categorical = f->n_categorical ? g_catp[k] : NULL;
    f->numeric = f->n_numeric ? g_nump[k] : NULL;
    return f;
}

/* A random request, packed (malloc'd, *len bytes). */
static uint8_t *random_request(mr_rng *r, size_t *len) {
    g_nstr = 0;
    Moerec__V1__ScoreRequest q = MOEREC__V1__SCORE_REQUEST__INIT;
    if (mr_rng_below(r, 2)) q.request_id = rstr(r);
    q.user_id = rstr(r);
    if (mr_rng_below(r, 2)) q.model = rstr(r);
    if (mr_rng_below(r, 3)) q.user_features = rfeat(r, NC);
    if (mr_rng_below(r, 3)) q.context_features = rfeat(r, NC + 1);
    q.debug = mr_rng_below(r, 2);
    q.min_sequence = mr_rng_below(r, 2) ? mr_rng_u64(r) : mr_rng_below(r, 300);
    q.n_candidates = mr_rng_below(r, NC + 1);
    for (size_t i = 0; i < q.n_candidates; i++) {
        moerec__v1__candidate__init(&g_cand[i]);
        g_cand[i].item_id = rstr(r);
        if (mr_rng_below(r, 4)) g_cand[i].features = rfeat(r, (int)i);
        g_candp[i] = &g_cand[i];
    }
    q.candidates = q.n_candidates ? g_candp : NULL;
    *len = protobuf_c_message_get_packed_size(&q.base);
    uint8_t *b = malloc(*len ? *len : 1);
    assert_non_null(b);
    assert_int_equal(protobuf_c_message_pack(&q.base, b), *len);
    return b;
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len) {
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(*len ? *len : 1);
    assert_non_null(b);
    protobuf_c_message_pack(m, b);
    return b;
}

/* The decoder's answer on buf matches protobuf-c's: declined (and the arena
 * unchanged), or the same message as protobuf-c decodes. Returns 1 when it
 * took the bytes. */
static int agrees(const uint8_t *buf, size_t len) {
    mr_arena a;
    mr_arena_init(&a, 256, 0);
    assert_non_null(mr_arena_alloc(&a, 16));
    size_t used = a.used, reserved = a.reserved;
    Moerec__V1__ScoreRequest *fast = mr_score_request_decode(&a, buf, len);
    Moerec__V1__ScoreRequest *ref = moerec__v1__score_request__unpack(NULL, len, buf);
    if (!fast) {
        assert_int_equal(a.used, used);
        assert_int_equal(a.reserved, reserved);
    } else {
        assert_non_null(ref); /* never takes what protobuf-c refuses */
        assert_int_equal(ref->base.n_unknown_fields, 0);
        size_t n1, n2;
        uint8_t *p1 = pack(&fast->base, &n1), *p2 = pack(&ref->base, &n2);
        assert_int_equal(n1, n2);
        assert_memory_equal(p1, p2, n1);
        assert_int_equal(fast->n_candidates, ref->n_candidates);
        assert_int_equal(fast->min_sequence, ref->min_sequence);
        assert_int_equal(fast->debug, ref->debug);
        free(p1);
        free(p2);
    }
    if (ref) moerec__v1__score_request__free_unpacked(ref, NULL);
    mr_arena_free(&a);
    return fast != NULL;
}

static void test_random_requests_equal_protobuf_c(void **st) {
    (void)st;
    mr_rng r;
    mr_rng_seed(&r, 11);
    for (int t = 0; t < 300; t++) {
        size_t len;
        uint8_t *b = random_request(&r, &len);
        assert_true(agrees(b, len)); /* a library's encoding: always taken */
        free(b);
    }
}

/* Every prefix and random corruptions of valid requests: taken only when
 * protobuf-c decodes the bytes to the same message. */
static void test_prefixes_and_corruptions(void **st) {
    (void)st;
    mr_rng r;
    mr_rng_seed(&r, 12);
    int taken = 0, declined = 0;
    for (int t = 0; t < 40; t++) {
        size_t len;
        uint8_t *b = random_request(&r, &len);
        for (size_t n = 0; n < len; n++) agrees(b, n) ? taken++ : declined++;
        uint8_t *c = malloc(len ? len : 1);
        assert_non_null(c);
        for (int k = 0; k < 100 && len; k++) {
            memcpy(c, b, len);
            for (int j = 0, nflip = 1 + (int)mr_rng_below(&r, 3); j < nflip; j++)
                c[mr_rng_below(&r, len)] = (uint8_t)mr_rng_below(&r, 256);
            agrees(c, len) ? taken++ : declined++;
        }
        free(c);
        free(b);
    }
    assert_true(taken > 0 && declined > 0); /* both ways exercised */
}

/* Bytes a library may write that the decoder leaves to protobuf-c. */
static void test_declines(void **st) {
    (void)st;
    /* user_id "u", one candidate "i" */
    const uint8_t base[] = {0x12, 0x01, 'u', 0x2a, 0x03, 0x0a, 0x01, 'i'};
    assert_true(agrees(base, sizeof base));
    uint8_t b[64];
    memcpy(b, base, sizeof base);
    const uint8_t unknown[] = {0x40, 0x05};           /* field 8, varint: kept by protobuf-c */
    const uint8_t dup_user[] = {0x12, 0x01, 'v'};     /* user_id twice: the last wins */
    const uint8_t debug_fixed[] = {0x35, 1, 0, 0, 0}; /* debug as fixed32: protobuf-c's error */
    const uint8_t long_tag[] = {0xba, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00}; /* model, 6-byte tag */
    const uint8_t *ext[] = {unknown, dup_user, debug_fixed, long_tag};
    const size_t n_ext[] = {sizeof unknown, sizeof dup_user, sizeof debug_fixed, sizeof long_tag};
    for (int i = 0; i < 4; i++) {
        memcpy(b + sizeof base, ext[i], n_ext[i]);
        mr_arena a;
        mr_arena_init(&a, 256, 0);
        assert_null(mr_score_request_decode(&a, b, sizeof base + n_ext[i]));
        assert_int_equal(a.used, 0);
        assert_false(agrees(b, sizeof base + n_ext[i]));
        mr_arena_free(&a);
    }
    /* a duplicated sub-message field (protobuf-c merges) inside a candidate */
    const uint8_t twice[] = {0x2a, 0x04, 0x12, 0x00, 0x12, 0x00};
    assert_false(agrees(twice, sizeof twice));
    /* the 10th byte of a varint over 1 */
    uint8_t big[] = {0xa0, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    assert_false(agrees(big, sizeof big));
    big[sizeof big - 1] = 0x01;
    assert_true(agrees(big, sizeof big)); /* min_sequence UINT64_MAX */
    /* empty input: an empty request, as protobuf-c */
    assert_true(agrees(base, 0));
}

/* A full arena: declined with the arena as it was; protobuf-c then meets
 * the same limit and the server answers RESOURCE_EXHAUSTED. */
static void test_full_arena_declines(void **st) {
    (void)st;
    mr_rng r;
    mr_rng_seed(&r, 13);
    size_t len = 0;
    uint8_t *b = NULL;
    while (len < 300) { /* a request large enough for the limit below */
        free(b);
        b = random_request(&r, &len);
    }
    mr_arena a;
    mr_arena_init(&a, 1024, 1024);
    assert_non_null(mr_arena_alloc(&a, 32));
    assert_null(mr_score_request_decode(&a, b, len));
    assert_int_equal(a.used, 32);
    assert_true(mr_arena_check(&a));
    mr_arena_free(&a);
    mr_arena_init(&a, 1024, 0); /* no limit: taken */
    assert_non_null(mr_score_request_decode(&a, b, len));
    mr_arena_free(&a);
    free(b);
}

int main(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_random_requests_equal_protobuf_c),
        cmocka_unit_test(test_prefixes_and_corruptions),
        cmocka_unit_test(test_declines),
        cmocka_unit_test(test_full_arena_declines),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}

/* test_validate.c — the generic request checks: UTF-8, string and repeated
 * limits (fixed and from config), finite floats, nested paths in messages. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/health.pb-c.h"
#include "proto/moerec.pb-c.h"
#include "server/validate.h"

static mr_server_config cfg(void) {
    mr_server_config c;
    mr_config_defaults(&c);
    c.max_candidates = 3;
    c.max_batch = 2;
    return c;
}

static void test_utf8(void **s) {
    (void)s;
    assert_true(mr_utf8_valid((const unsigned char *)"plain", 5));
    assert_true(
        mr_utf8_valid((const unsigned char *)"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14));
    assert_false(mr_utf8_valid((const unsigned char *)"\xff", 1));
    assert_false(mr_utf8_valid((const unsigned char *)"\xc3", 1));             /* truncated */
    assert_false(mr_utf8_valid((const unsigned char *)"\xc0\xaf", 2));         /* overlong */
    assert_false(mr_utf8_valid((const unsigned char *)"\xed\xa0\x80", 3));     /* surrogate */
    assert_false(mr_utf8_valid((const unsigned char *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
}

static void test_valid_request_passes(void **s) {
    (void)s;
    mr_server_config c = cfg();
    Moerec__V1__Candidate c1 = MOEREC__V1__CANDIDATE__INIT, c2 = MOEREC__V1__CANDIDATE__INIT;
    c1.item_id = "i1";
    c2.item_id = "i2";
    Moerec__V1__Candidate *cs[] = {&c1, &c2};
    Moerec__V1__ScoreRequest r = MOEREC__V1__SCORE_REQUEST__INIT;
    r.user_id = "u";
    r.candidates = cs;
    r.n_candidates = 2;
    mr_err e;
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_OK);
}

static void test_candidate_limit_from_config(void **s) {
    (void)s;
    mr_server_config c = cfg();
    Moerec__V1__Candidate cand = MOEREC__V1__CANDIDATE__INIT;
    cand.item_id = "i";
    Moerec__V1__Candidate *cs[] = {&cand, &cand, &cand, &cand};
    Moerec__V1__ScoreRequest r = MOEREC__V1__SCORE_REQUEST__INIT;
    r.candidates = cs;
    r.n_candidates = 4;
    mr_err e;
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "ScoreRequest.candidates: 4 entries, at most 3"));
}

static void test_nested_string_limit_and_utf8(void **s) {
    (void)s;
    mr_server_config c = cfg();
    char longid[300];
    memset(longid, 'a', 299);
    longid[299] = '\0';
    Moerec__V1__Candidate ok = MOEREC__V1__CANDIDATE__INIT, bad = MOEREC__V1__CANDIDATE__INIT;
    ok.item_id = "fine";
    bad.item_id = longid;
    Moerec__V1__Candidate *cs[] = {&ok, &bad};
    Moerec__V1__ScoreRequest r = MOEREC__V1__SCORE_REQUEST__INIT;
    r.candidates = cs;
    r.n_candidates = 2;
    mr_err e;
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "candidates[1]/Candidate.item_id: 299 bytes, at most 256"));
    bad.item_id = "bad\xff";
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "not valid UTF-8"));
}

static void test_nan_rejected(void **s) {
    (void)s;
    mr_server_config c = cfg();
    Moerec__V1__NumericFeature nf = MOEREC__V1__NUMERIC_FEATURE__INIT;
    nf.name = "age";
    nf.value = NAN;
    Moerec__V1__NumericFeature *nfs[] = {&nf};
    Moerec__V1__Features f = MOEREC__V1__FEATURES__INIT;
    f.numeric = nfs;
    f.n_numeric = 1;
    Moerec__V1__RecommendRequest r = MOEREC__V1__RECOMMEND_REQUEST__INIT;
    r.user_features = &f;
    mr_err e;
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "NumericFeature.value: not a finite number"));
    nf.value = 3.5f;
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_OK);
    float q[2] = {1.0f, INFINITY};
    Moerec__V1__RetrieveRequest rr = MOEREC__V1__RETRIEVE_REQUEST__INIT;
    rr.query_vector = q;
    rr.n_query_vector = 2;
    assert_int_equal(mr_validate_message(&rr.base, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "query_vector[1]"));
}

static void test_batch_limit_and_fixed_limits(void **s) {
    (void)s;
    mr_server_config c = cfg();
    Moerec__V1__Event ev = MOEREC__V1__EVENT__INIT;
    ev.user_id = "u";
    ev.item_id = "i";
    Moerec__V1__Event *evs[] = {&ev, &ev, &ev};
    Moerec__V1__AppendEventsRequest r = MOEREC__V1__APPEND_EVENTS_REQUEST__INIT;
    r.events = evs;
    r.n_events = 3;
    mr_err e;
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "at most 2"));
    r.n_events = 2;
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_OK);
    /* 65 values of one categorical feature: fixed limit 64 */
    char *vals[65];
    for (int i = 0; i < 65; i++) vals[i] = "v";
    Moerec__V1__CategoricalFeature cf = MOEREC__V1__CATEGORICAL_FEATURE__INIT;
    cf.name = "genre";
    cf.values = vals;
    cf.n_values = 65;
    Moerec__V1__CategoricalFeature *cfs[] = {&cf};
    Moerec__V1__Features f = MOEREC__V1__FEATURES__INIT;
    f.categorical = cfs;
    f.n_categorical = 1;
    Moerec__V1__ScoreRequest sr = MOEREC__V1__SCORE_REQUEST__INIT;
    sr.context_features = &f;
    assert_int_equal(mr_validate_message(&sr.base, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "CategoricalFeature.values: 65 entries, at most 64"));
}

/* Features messages (checked by a direct pass, features_ok, with the walk
 * only for the error): every limit passes at its bound and fails one past
 * it, with the walk's full path, in a candidate's features and in the
 * user's. */
static void test_features_limits_both_ways(void **s) {
    (void)s;
    mr_server_config c = cfg();
    static char *vals[65], *cats_names[257];
    static char name129[130], val257[258];
    memset(name129, 'n', 129);
    memset(val257, 'v', 257);
    for (int i = 0; i < 65; i++) vals[i] = "v";
    static Moerec__V1__CategoricalFeature cf[257];
    static Moerec__V1__CategoricalFeature *cfs[257];
    static Moerec__V1__NumericFeature nf[257];
    static Moerec__V1__NumericFeature *nfs[257];
    for (int i = 0; i < 257; i++) {
        moerec__v1__categorical_feature__init(&cf[i]);
        cats_names[i] = "c";
        cf[i].name = cats_names[i];
        cf[i].values = vals;
        cf[i].n_values = 1;
        cfs[i] = &cf[i];
        moerec__v1__numeric_feature__init(&nf[i]);
        nf[i].name = "n";
        nf[i].value = 1.0f;
        nfs[i] = &nf[i];
    }
    Moerec__V1__Features f = MOEREC__V1__FEATURES__INIT, plain = MOEREC__V1__FEATURES__INIT;
    f.categorical = cfs;
    f.numeric = nfs;
    Moerec__V1__Candidate c0 = MOEREC__V1__CANDIDATE__INIT, c1 = MOEREC__V1__CANDIDATE__INIT;
    c0.item_id = c1.item_id = "i";
    c0.features = &plain;
    c1.features = &f;
    Moerec__V1__Candidate *cs[] = {&c0, &c1};
    Moerec__V1__ScoreRequest r = MOEREC__V1__SCORE_REQUEST__INIT;
    r.candidates = cs;
    r.n_candidates = 2;
    mr_err e;
#define PATH "ScoreRequest.candidates[1]/Candidate.features/Features."
    /* entries per Features */
    f.n_categorical = 256;
    f.n_numeric = 256;
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_OK);
    f.n_categorical = 257;
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, PATH "categorical: 257 entries, at most 256"));
    f.n_categorical = 256;
    f.n_numeric = 257;
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, PATH "numeric: 257 entries, at most 256"));
    f.n_numeric = 3;
    /* values per categorical feature */
    cf[2].n_values = 64;
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_OK);
    cf[2].n_values = 65;
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_EINVAL);
    assert_non_null(
        strstr(e.msg, PATH "categorical[2]/CategoricalFeature.values: 65 entries, at most 64"));
    cf[2].n_values = 3;
    /* bytes of a value, of a categorical name, of a numeric name */
    vals[2] = val257 + 1; /* 256 bytes */
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_OK);
    vals[2] = val257;
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_EINVAL);
    assert_non_null(
        strstr(e.msg, PATH "categorical[2]/CategoricalFeature.values[2]: 257 bytes, at most 256"));
    vals[2] = "\xc3\x28";
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, PATH "categorical[2]/CategoricalFeature.values[2]: not valid"));
    vals[2] = "v";
    cf[1].name = name129 + 1; /* 128 bytes */
    nf[2].name = name129 + 1;
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_OK);
    cf[1].name = name129;
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_EINVAL);
    assert_non_null(
        strstr(e.msg, PATH "categorical[1]/CategoricalFeature.name: 129 bytes, at most 128"));
    static char utf[130]; /* 126 ASCII bytes + U+00E9 (2 bytes): 128, then 129 */
    memset(utf, 'n', 126);
    memcpy(utf + 126, "\xc3\xa9", 3);
    cf[1].name = utf;
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_OK);
    memset(utf, 'n', 127);
    memcpy(utf + 127, "\xc3\xa9", 3);
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_EINVAL);
    assert_non_null(
        strstr(e.msg, PATH "categorical[1]/CategoricalFeature.name: 129 bytes, at most 128"));
    cf[1].name = "\xff";
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, PATH "categorical[1]/CategoricalFeature.name: not valid UTF-8"));
    cf[1].name = "c";
    nf[2].name = name129;
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, PATH "numeric[2]/NumericFeature.name: 129 bytes, at most 128"));
    nf[2].name = "n";
    /* finite values; a NULL element passes as in the walk */
    nf[1].value = INFINITY;
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, PATH "numeric[1]/NumericFeature.value: not a finite number"));
    nf[1].value = -0.0f;
    nfs[0] = NULL;
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_OK);
    nfs[0] = &nf[0];
#undef PATH
    /* the same checks reach user_features */
    r.user_features = &f;
    nf[1].value = NAN;
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "ScoreRequest.user_features/Features.numeric[1]/"
                                  "NumericFeature.value: not a finite number"));
    nf[1].value = 1.0f;
}

/* An item vector may be as wide as the config allows an item table to be
 * (item_dim <= 65535); the handler checks the exact dim. */
static void test_item_embedding_up_to_item_dim_limit(void **s) {
    (void)s;
    mr_server_config c = cfg();
    float *v = calloc(65536, sizeof *v);
    assert_non_null(v);
    Moerec__V1__Item it = MOEREC__V1__ITEM__INIT, *itp[] = {&it};
    it.item_id = "i";
    it.embedding = v;
    it.n_embedding = 8192;
    Moerec__V1__UpsertItemsRequest r = MOEREC__V1__UPSERT_ITEMS_REQUEST__INIT;
    r.items = itp;
    r.n_items = 1;
    mr_err e;
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_OK);
    it.n_embedding = 65536;
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "Item.embedding: 65536 entries, at most 65535"));
    free(v);
}

static void test_health_service_name(void **s) {
    (void)s;
    mr_server_config c = cfg();
    Grpc__Health__V1__HealthCheckRequest r = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    r.service = "\xc3\x28";
    mr_err e;
    assert_int_equal(mr_validate_message(&r.base, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "HealthCheckRequest.service"));
}

int main(void) {
    const struct CMUnitTest t[] = {cmocka_unit_test(test_utf8),
                                   cmocka_unit_test(test_valid_request_passes),
                                   cmocka_unit_test(test_candidate_limit_from_config),
                                   cmocka_unit_test(test_nested_string_limit_and_utf8),
                                   cmocka_unit_test(test_nan_rejected),
                                   cmocka_unit_test(test_features_limits_both_ways),
                                   cmocka_unit_test(test_batch_limit_and_fixed_limits),
                                   cmocka_unit_test(test_item_embedding_up_to_item_dim_limit),
                                   cmocka_unit_test(test_health_service_name)};
    return cmocka_run_group_tests(t, NULL, NULL);
}

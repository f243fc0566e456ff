/* testmodel.h — a small model.json shared by the model/scorer tests:
 * two hashed tables (one double-hashed), a multi-valued field, two numeric
 * fields, an extra block, two binary tasks and one regression task. */
#ifndef MOEREC_TESTS_MOE_TESTMODEL_H
#define MOEREC_TESTS_MOE_TESTMODEL_H

static const char *k_test_model_fmt =
    "{\"format\":\"moerec.model\",\"format_version\":1,\"name\":\"t\","
    "\"tables\":[{\"name\":\"user\",\"rows\":50,\"dim\":4,\"seed\":7},"
    "{\"name\":\"item\",\"rows\":40,\"dim\":3,\"hash\":\"double\",\"seed\":8,\"seed2\":9}],"
    "\"features\":{\"categorical\":[{\"name\":\"user\",\"column\":\"uid\",\"table\":\"user\"},"
    "{\"name\":\"item\",\"table\":\"item\"},"
    "{\"name\":\"genre\",\"table\":\"item\",\"combiner\":\"mean\",\"separator\":\"|\"}],"
    "\"numeric\":[{\"name\":\"age\",\"mean\":30,\"std\":10,\"fill\":30},{\"name\":\"price\"}],"
    "\"extra_dim\":2},"
    "\"tasks\":[{\"name\":\"click\",\"weight\":0.7},{\"name\":\"like\",\"label\":\"rating\",\"threshold\":4,\"weight\":0.3},"
    "{\"name\":\"dwell\",\"kind\":\"regression\",\"weight\":0.0}],"
    "\"arch\":%s}";

#endif

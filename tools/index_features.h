/* index_features.h — `moerec index features` (cmd_index_features.c) and
 * `moerec index embeddings` (cmd_index_embeddings.c), dispatched from
 * cmd_index.c. */
#ifndef MOEREC_TOOLS_INDEX_FEATURES_H
#define MOEREC_TOOLS_INDEX_FEATURES_H

#include <jansson.h>

int ix_features(int argc, char **argv);
int ix_embeddings(int argc, char **argv);

/* Print o as one compact JSON line on stdout and release it; reals with
 * digits significant digits (0: full double precision). In cmd_index.c. */
void ix_print_json(json_t *o, int digits);

#endif

/* index_features.h — `moerec index features` (cmd_index_features.c) and
 * `moerec index embeddings` (cmd_index_embeddings.c), dispatched from
 * cmd_index.c. */
#ifndef MOEREC_TOOLS_INDEX_FEATURES_H
#define MOEREC_TOOLS_INDEX_FEATURES_H

#include <jansson.h>

int ix_features(int argc, char **argv);
int ix_embeddings(int argc, char **argv);

/* Value of a "--name V" option at argv[*i] (*i moves to it), or NULL with
 * "CMD: --name needs a value" printed. In cmd_index.c. */
const char *ix_value(int argc, char **argv, int *i, const char *cmd);
/* Print o as one compact JSON line on stdout and release it; reals with
 * digits significant digits (0: full double precision). In cmd_index.c. */
void ix_print_json(json_t *o, int digits);

#endif

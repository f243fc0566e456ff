/* index_features.h — `moerec index features` (cmd_index_features.c) and
 * `moerec index embeddings` (cmd_index_embeddings.c), dispatched from
 * cmd_index.c. */
#ifndef MOEREC_TOOLS_INDEX_FEATURES_H
#define MOEREC_TOOLS_INDEX_FEATURES_H

int ix_features(int argc, char **argv);
int ix_embeddings(int argc, char **argv);

#endif

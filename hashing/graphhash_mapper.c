/* graphhash_mapper.c — the graph and double_graph row mappers (idhash.h's
 * interface over a graphhash_map).
 *
 * graph: row = cluster(id), hash fallback for unseen ids. double_graph
 * (DoubleGraphHash): rows = cluster(id) and a second hash row drawn from
 * the k - 1 other rows, so the two embeddings summed are always distinct
 * rows; unseen ids get the fallback row plus the same second hash.
 */
#include <stdlib.h>

#include "hashing/graphhash_int.h"
#include "hashing/idhash_int.h"

static int graphhash_mapper_new(idhash_mapper **out, const graphhash_map *m, graphhash_side side,
                                idhash_kind kind, uint64_t seed2, mr_err *e) {
    *out = NULL;
    if (!m) return mr_err_set(e, MR_EINVAL, "%s mapper: no GraphHash map", idhash_kind_name(kind));
    if (side != GRAPHHASH_USERS && side != GRAPHHASH_ITEMS)
        return mr_err_set(e, MR_EINVAL, "%s mapper: bad side %d", idhash_kind_name(kind), side);
    if (kind == IDHASH_DOUBLE_GRAPH && m->k[side] < 2)
        return mr_err_set(e, MR_EINVAL, "double_graph mapper: needs k >= 2 rows, the map has %u",
                          m->k[side]);
    idhash_mapper *mp = calloc(1, sizeof *mp);
    if (!mp) return mr_err_set(e, MR_ENOMEM, "%s mapper: out of memory", idhash_kind_name(kind));
    mp->kind = kind;
    mp->k = m->k[side];
    mp->seed1 = m->seed;
    mp->seed2 = seed2;
    mp->graph = m;
    mp->side = side;
    *out = mp;
    return 0;
}

int graphhash_mapper_create(idhash_mapper **out, const graphhash_map *m, graphhash_side side,
                            mr_err *e) {
    return graphhash_mapper_new(out, m, side, IDHASH_GRAPH, 0, e);
}

int graphhash_mapper_create_double(idhash_mapper **out, const graphhash_map *m, graphhash_side side,
                                   uint64_t seed2, mr_err *e) {
    return graphhash_mapper_new(out, m, side, IDHASH_DOUBLE_GRAPH, seed2, e);
}

int idhash_graph_rows(const idhash_mapper *mp, uint64_t id, uint64_t *rows) {
    uint32_t r;
    graphhash_map_row(mp->graph, (graphhash_side)mp->side, id, &r);
    rows[0] = r;
    if (mp->kind != IDHASH_DOUBLE_GRAPH) return 1;
    rows[1] = idhash_second_row(r, id, mp->seed2, mp->k);
    return 2;
}

int graphhash_mapper_create_lsh(idhash_mapper **out, const graphhash_map *m, graphhash_side side,
                                mr_err *e) {
    return graphhash_mapper_new(out, m, side, IDHASH_LSH, 0, e);
}

/* maps_fixture.h — a tiny model with every mapped table kind and a
 * training file with two clear communities, shared by test_model_maps.c
 * and test_model_maps_build.c.
 *
 * Users u1..u4 and items a..d: u1, u2 rate only a, b; u3, u4 only c, d
 * (each pair three times), so Louvain finds {u1, u2, a, b} and
 * {u3, u4, c, d}. Genre "g" occurs in every row, "h" in half, "z" once.
 * vectors.csv gives a and b one direction, c and d the opposite, and an
 * item "e" that never occurs in training the direction of a. */
#ifndef MOEREC_TESTS_MOE_MAPS_FIXTURE_H
#define MOEREC_TESTS_MOE_MAPS_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *k_maps_model =
    "{\"name\":\"mt\",\"tables\":["
    "{\"name\":\"user\",\"rows\":8,\"dim\":2,\"seed\":11,\"hash\":\"graph\",\"pair\":\"item\"},"
    "{\"name\":\"item\",\"rows\":8,\"dim\":2,\"seed\":12,\"hash\":\"double_graph\",\"pair\":\"user\"},"
    "{\"name\":\"genre\",\"rows\":4,\"dim\":2,\"seed\":13,\"hash\":\"frequency\"},"
    "{\"name\":\"content\",\"rows\":8,\"dim\":2,\"seed\":14,\"hash\":\"lsh\",\"vectors\":\"vectors.csv\"},"
    "{\"name\":\"cooc\",\"rows\":64,\"dim\":2,\"seed\":15,\"hash\":\"lsh\",\"pair\":\"user\"},"
    "{\"name\":\"plain\",\"rows\":8,\"dim\":2,\"seed\":16}],"
    "\"features\":{\"categorical\":[{\"name\":\"user\",\"table\":\"user\"},{\"name\":\"item\",\"table\":\"item\"},"
    "{\"name\":\"genres\",\"table\":\"genre\",\"separator\":\"|\"},"
    "{\"name\":\"item_c\",\"column\":\"item\",\"table\":\"content\"},"
    "{\"name\":\"item_o\",\"column\":\"item\",\"table\":\"cooc\"},"
    "{\"name\":\"item_p\",\"column\":\"item\",\"table\":\"plain\"}]},"
    "\"tasks\":[{\"name\":\"click\"}],\"arch\":{\"type\":\"mmoe\",\"experts\":2,\"expert_hidden\":[4],"
    "\"tower_hidden\":[2]}}";

/* Write train.csv and vectors.csv into a fresh temp dir (path in dir). */
static int maps_fixture_write(char *dir, size_t n) {
    snprintf(dir, n, "/tmp/moe_maps_XXXXXX");
    if (!mkdtemp(dir)) return -1;
    char p[512];
    snprintf(p, sizeof p, "%s/train.csv", dir);
    FILE *f = fopen(p, "w");
    if (!f) return -1;
    fprintf(f, "user,item,genres,click\n");
    static const char *pairs[8][2] = {{"u1", "a"}, {"u1", "b"}, {"u2", "a"}, {"u2", "b"},
                                      {"u3", "c"}, {"u3", "d"}, {"u4", "c"}, {"u4", "d"}};
    for (int rep = 0; rep < 3; rep++)
        for (int i = 0; i < 8; i++)
            fprintf(f, "%s,%s,%s,%d\n", pairs[i][0], pairs[i][1], i % 2 ? "g|h" : "g", i % 2);
    fprintf(f, "u1,a,z,1\n");
    fclose(f);
    snprintf(p, sizeof p, "%s/vectors.csv", dir);
    if (!(f = fopen(p, "w"))) return -1;
    fprintf(
        f,
        "item,e0,e1,e2\na,1,0.5,0.25\nb,0.9,0.5,0.3\n\"c\",-1,-0.5,-0.25\nd,-0.9,-0.5,-0.3\ne,1,0.5,0.25\n");
    fclose(f);
    return 0;
}

#endif

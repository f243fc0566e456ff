/* fuzz_rpc_checkpoint.c — moerec.v1.Admin/Checkpoint through decode,
 * validation and the handler (mr_server_invoke) over the fixture's store.
 * A checkpoint writes a directory wherever `dir` names, so an input that
 * decodes with an absolute `dir` is re-encoded with that path moved under
 * this process's temp directory (any ".." turned into "._": nothing
 * outside it is touched), and whatever the call made there is removed
 * after each input, except the folder "exists" (a checkpoint to /exists
 * is ALREADY_EXISTS). Other inputs go to the handler as they are. The
 * answer must be a real gRPC status with a message when it is not OK. */
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz/fixture.h"
#include "proto/moerec.pb-c.h"

#define METHOD "/moerec.v1.Admin/Checkpoint"

static const char *g_base;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fz_server();
    g_base = fz_tmpdir();
    char p[256];
    snprintf(p, sizeof p, "%s/exists", g_base);
    mkdir(p, 0700);
    return 0;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

/* Everything under the base but "exists". */
static void clean_base(void) {
    DIR *d = opendir(g_base);
    if (!d) abort();
    struct dirent *de;
    char p[512];
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || !strcmp(de->d_name, "exists"))
            continue;
        snprintf(p, sizeof p, "%s/%s", g_base, de->d_name);
        nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *req = data;
    size_t n = size;
    uint8_t *packed = NULL;
    char *dir = NULL;
    Moerec__V1__CheckpointRequest *r = moerec__v1__checkpoint_request__unpack(NULL, size, data);
    if (r && r->dir && r->dir[0] == '/') {
        size_t dl = strlen(r->dir), bl = strlen(g_base);
        if (!(dir = malloc(bl + dl + 1))) abort();
        memcpy(dir, g_base, bl);
        memcpy(dir + bl, r->dir, dl + 1);
        for (char *q = dir + bl; (q = strstr(q, "..")); q += 2) q[1] = '_';
        char *orig = r->dir;
        r->dir = dir;
        n = moerec__v1__checkpoint_request__get_packed_size(r);
        if (!(packed = malloc(n ? n : 1))) abort();
        moerec__v1__checkpoint_request__pack(r, packed);
        r->dir = orig;
        req = packed;
    }
    if (r) moerec__v1__checkpoint_request__free_unpacked(r, NULL);
    fz_invoke_check(METHOD, req, n);
    clean_base();
    free(packed);
    free(dir);
    return 0;
}

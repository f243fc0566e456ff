/* version.c — `moerec --version`: the moerec version, the git commit it was
 * built from (captured at build time by cmake/git_commit.cmake; "-modified"
 * when the tree had uncommitted changes), the build type and compiler, and
 * the version of every linked library: asked at run time where the library
 * has a call for it (so a different shared library than the one built
 * against shows), else as built against. Prints no path of the build
 * machine. */
#include "version.h"

#include <cblas.h>
#include <grpc/grpc.h>
#include <jansson.h>
#include <microhttpd.h>
#include <protobuf-c/protobuf-c.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "git_commit.h"

void mr_version_print(FILE *f) {
    fprintf(f, "moerec %s\n", MOEREC_VERSION);
    fprintf(f, "commit %s\n", MOEREC_GIT_COMMIT);
    fprintf(f, "build %s, %s\n", MOEREC_BUILD_TYPE[0] ? MOEREC_BUILD_TYPE : "default", MOEREC_CC);
    unsigned xv = XXH_versionNumber();
    char blas[160];
    const char *bc = openblas_get_config(); /* "OpenBLAS 0.3.21 DYNAMIC_ARCH ..." */
    snprintf(blas, sizeof blas, "%s", strncmp(bc, "OpenBLAS ", 9) ? bc : bc + 9);
    size_t n = strlen(blas);
    while (n && (blas[n - 1] == ' ' || blas[n - 1] == '\n')) blas[--n] = '\0';
    fprintf(f, "libraries (run time unless marked 'built against'):\n");
    fprintf(f, "  gRPC core      %s\n", grpc_version_string());
    fprintf(f, "  protobuf-c     %s\n", protobuf_c_version());
    fprintf(f, "  RocksDB        %s (built against)\n", MOEREC_ROCKSDB_VERSION);
    fprintf(f, "  FAISS          %s (built against)\n", MOEREC_FAISS_VERSION);
    fprintf(f, "  OpenBLAS       %s\n", blas);
    fprintf(f, "  jansson        %s\n", jansson_version_str());
    fprintf(f, "  xxHash         %u.%u.%u\n", xv / 10000, xv / 100 % 100, xv % 100);
    fprintf(f, "  libmicrohttpd  %s\n", MHD_get_version());
}

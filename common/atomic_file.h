/* atomic_file.h — the one way moerec writes a file that readers may open
 * while it is written or after a crash: model files, retriever sets,
 * GraphHash mappings, score output, tool and demo-data outputs.
 *
 * The data goes to a temporary name in the target's directory
 * ("<path>.tmp.XXXXXX"), is flushed and fsync'd, renamed over the target,
 * and the directory is fsync'd so the rename itself survives a crash. On
 * any error the temporary is removed and the target is untouched: a reader
 * sees the old file or the new one, never a part.
 */
#ifndef MOEREC_COMMON_ATOMIC_FILE_H
#define MOEREC_COMMON_ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "common/error.h"

#define MR_PATH_MAX 4096

typedef struct mr_afile {
    FILE *f;                    /* write here between open and commit */
    char path[MR_PATH_MAX];     /* the target */
    char tmp[MR_PATH_MAX + 16]; /* the temporary beside it */
} mr_afile;

/* Create the temporary for path; a->f is open for writing ("wb"). */
int mr_afile_open(mr_afile *a, const char *path, mr_err *e);
/* Flush, fsync, close, rename over the target, fsync the directory. On
 * error (including an earlier write error on a->f) the temporary is
 * removed and the error names the target. a is closed either way. */
int mr_afile_commit(mr_afile *a, mr_err *e);
/* Close and remove the temporary (a failure before commit); idempotent. */
void mr_afile_abort(mr_afile *a);

/* The whole of data[0..n) to path, atomically. */
int mr_write_file_atomic(const char *path, const void *data, size_t n, mr_err *e);
/* fsync the directory holding path (path itself when is_dir). */
int mr_fsync_parent(const char *path, int is_dir, mr_err *e);

#endif

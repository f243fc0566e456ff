/* atomic_file.c — temp + fsync + rename + directory fsync (see
 * atomic_file.h). */
#include "common/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int mr_fsync_parent(const char *path, int is_dir, mr_err *e) {
    char dir[MR_PATH_MAX];
    if (is_dir) {
        snprintf(dir, sizeof dir, "%s", path);
    } else {
        const char *slash = strrchr(path, '/');
        if (!slash) snprintf(dir, sizeof dir, ".");
        else if (slash == path) snprintf(dir, sizeof dir, "/");
        else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return mr_err_set(e, MR_EINTERNAL, "cannot open directory %s: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    if (rc != 0 && err != EINVAL) /* some file systems cannot sync a directory */
        return mr_err_set(e, MR_EINTERNAL, "fsync of directory %s: %s", dir, strerror(err));
    return 0;
}

int mr_afile_open(mr_afile *a, const char *path, mr_err *e) {
    memset(a, 0, sizeof *a);
    if (strlen(path) >= sizeof a->path)
        return mr_err_set(e, MR_EINVAL, "path too long: %.64s...", path);
    snprintf(a->path, sizeof a->path, "%s", path);
    snprintf(a->tmp, sizeof a->tmp, "%s.tmp.XXXXXX", path);
    int fd = mkostemp(a->tmp, O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        a->tmp[0] = 0;
        return mr_err_set(e, MR_EINTERNAL, "cannot create a file beside %s: %s", path,
                          strerror(err));
    }
    (void)fchmod(fd, 0644); /* mkstemp makes 0600; outputs are shared like fopen's */
    if (!(a->f = fdopen(fd, "wb"))) {
        int err = errno;
        close(fd);
        unlink(a->tmp);
        a->tmp[0] = 0;
        return mr_err_set(e, MR_EINTERNAL, "%s: %s", path, strerror(err));
    }
    return 0;
}

void mr_afile_abort(mr_afile *a) {
    if (a->f) fclose(a->f);
    a->f = NULL;
    if (a->tmp[0]) unlink(a->tmp);
    a->tmp[0] = 0;
}

int mr_afile_commit(mr_afile *a, mr_err *e) {
    if (!a->f) return mr_err_set(e, MR_ESTATE, "%s: not open", a->path);
    int err = 0;
    if (ferror(a->f)) err = errno ? errno : EIO;
    if (!err && fflush(a->f) != 0) err = errno;
    if (!err && fsync(fileno(a->f)) != 0) err = errno;
    if (fclose(a->f) != 0 && !err) err = errno;
    a->f = NULL;
    if (!err && rename(a->tmp, a->path) != 0) err = errno;
    if (err) {
        unlink(a->tmp);
        a->tmp[0] = 0;
        return mr_err_set(e, MR_EINTERNAL, "writing %s failed: %s", a->path, strerror(err));
    }
    a->tmp[0] = 0;
    return mr_fsync_parent(a->path, 0, e);
}

int mr_write_file_atomic(const char *path, const void *data, size_t n, mr_err *e) {
    mr_afile a;
    int rc = mr_afile_open(&a, path, e);
    if (rc) return rc;
    if (n && fwrite(data, 1, n, a.f) != n) {
        int err = errno;
        mr_afile_abort(&a);
        return mr_err_set(e, MR_EINTERNAL, "writing %s failed: %s", path, strerror(err));
    }
    return mr_afile_commit(&a, e);
}

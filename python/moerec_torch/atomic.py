"""The one way moerec_torch writes a file, as common/atomic_file.c does in C:
the bytes go to a temporary name in the target's directory, are flushed and
fsync'd, renamed over the target, and the directory is fsync'd so the rename
survives a crash. On any error the temporary is removed and the target is
untouched: a reader sees the old file or the new one, never a part."""
import os
import tempfile


def write_atomic(path, chunks):
    """Write the bytes of chunks (an iterable of bytes) to path, atomically."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp.", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            for c in chunks:
                f.write(c)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dfd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)

/* read_file.h — the one way moerec reads a whole (small) file into memory:
 * model.json, a tool's --model-json, anything parsed as one text.
 *
 * Reads until end of file (pipes and other unseekable files included), at
 * most max bytes, and NUL-terminates the buffer (free it). Errors name the
 * file: MR_ENOTFOUND when it does not exist, MR_EINVAL when it is longer
 * than max bytes, MR_EINTERNAL for another open or read error, MR_ENOMEM.
 */
#ifndef MOEREC_COMMON_READ_FILE_H
#define MOEREC_COMMON_READ_FILE_H

#include <stddef.h>

#include "common/error.h"

/* path's bytes and a NUL, or NULL with e set; *len (may be NULL) gets the
 * byte count without the NUL. */
char *mr_read_file(const char *path, size_t max, size_t *len, mr_err *e);

#endif

/* name.h — the one rule for the names moerec keeps and serves: store
 * tables (index/store/), retriever experts and fallbacks (index/retrieval/,
 * retriever set manifests), and the expert names derived from a column's
 * values.
 *
 * A name is 1 to max-1 bytes (max is the caller's buffer: 48 for a store
 * table, 64 for an expert) of the characters [A-Za-z0-9_.-]: ASCII letters,
 * digits, underscore, dot and hyphen; case is kept and significant. No
 * spaces, slashes, quotes or bytes >= 0x80, so a name can go into a file
 * name, a RocksDB column family, a metrics label and a log line unquoted.
 *
 * Below it, the file-name rule (mr_file_name_ok) for a file name given
 * inside another file: the one check that it stays in its directory.
 */
#ifndef MOEREC_COMMON_NAME_H
#define MOEREC_COMMON_NAME_H

#include <stddef.h>

#include "common/error.h"

/* 1 when c is one of [A-Za-z0-9_.-]. */
int mr_name_char_ok(int c);
/* 1 when s (may be NULL) is a valid name shorter than max bytes. */
int mr_name_ok(const char *s, size_t max);
/* 0 when s is a valid name shorter than max bytes, else MR_EINVAL with a
 * message naming what ("table name", "retriever name"), the name and the
 * rule: empty, too long, or the first bad character and its offset. */
int mr_name_check(const char *what, const char *s, size_t max, mr_err *e);
/* Make s valid in place: every byte outside the set becomes '_' (the
 * caller keeps s non-empty and short enough). */
void mr_name_sanitize(char *s);

/* The file-name rule, for names a file gives for another file beside it
 * (a retriever set's expert files, a model's mapping files, a model
 * version): 1 when s is 1 to max-1 bytes, holds no '/', and is not "." or
 * "..", so dir + "/" + s stays inside dir. Other bytes are the file
 * system's business. Callers add the names they reserve. */
int mr_file_name_ok(const char *s, size_t max);

#endif

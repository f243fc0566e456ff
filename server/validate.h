/* validate.h — generic checks on every decoded request, before its handler.
 *
 * protobuf-c accepts any well-formed wire data: it does not check UTF-8,
 * bound repeated fields or reject NaN. This walks a decoded message by its
 * descriptor and enforces, for every field at any depth: valid UTF-8 in
 * strings, a byte limit per string, an entry limit per repeated field, and
 * finite float/double values. Limits come from a table of documented
 * per-field limits (docs/api.md) plus defaults, with the batch limits taken
 * from the server config. Handlers then check only semantics (required
 * fields, k ranges, names that must exist).
 */
#ifndef MOEREC_SERVER_VALIDATE_H
#define MOEREC_SERVER_VALIDATE_H

#include <protobuf-c/protobuf-c.h>

#include "common/error.h"
#include "server/config.h"

/* MR_OK, or MR_EINVAL with a message naming the field path and the limit,
 * e.g. "ScoreRequest.candidates: 6000 entries, at most 5000". */
int mr_validate_message(const ProtobufCMessage *msg, const mr_server_config *cfg, mr_err *err);

/* 1 if s[0..n) is well-formed UTF-8 (no overlongs, no surrogates). */
int mr_utf8_valid(const unsigned char *s, size_t n);

#endif

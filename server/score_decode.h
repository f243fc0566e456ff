/* score_decode.h — a direct decoder of moerec.v1.ScoreRequest, the
 * request whose decoding dominates the server's own work (a 500-candidate
 * Score holds ~14,000 messages; protobuf_c_message_unpack was ~10% of the
 * server's CPU on it).
 *
 * It takes the plain encoding a protobuf library writes: known fields only,
 * each with its wire type, singular fields at most once. Anything else
 * (unknown fields, a repeated singular field, a malformed or truncated
 * buffer, or the arena full) it declines, leaving the arena as it was, and
 * the caller decodes with protobuf_c_message_unpack. For every buffer it
 * takes, the message equals protobuf-c's field for field (strings copied
 * and NUL-terminated the same way), so handlers cannot tell the two apart.
 */
#ifndef MOEREC_SERVER_SCORE_DECODE_H
#define MOEREC_SERVER_SCORE_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"
#include "proto/moerec.pb-c.h"

/* The request decoded into a, or NULL (declined; a unchanged). */
Moerec__V1__ScoreRequest *mr_score_request_decode(mr_arena *a, const uint8_t *buf, size_t len);

#endif

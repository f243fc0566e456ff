/* synth_behaviour.h — a seeded synthetic long-behaviour data set for SDIM
 * (tests, `moerec synth`, bench/sdim).
 *
 * Items live in clusters: cluster centre c ~ N(0, I_d), item = c + noise *
 * N(0, I_d), so an item's norm is about sqrt(d) and in-cluster cosines are
 * high (1 / (1 + noise^2)). Each user has a sparse mixture of interests
 * (a few clusters), each active over a window of the user's time line:
 * one OLD interest is active only in the first old_frac of the sequence
 * (visible only to long-history features), the others start at random
 * times and stay (drift: the mix changes along the sequence). Event j of
 * user u (time synth_ts(j)) is an item of one active interest, or a random
 * item with probability explore.
 *
 * Samples: candidate items shown to a user at a position p of its sequence
 * (history = events [0, p), p >= min_pos_frac * L, so the last few dozen
 * events never contain the old interest). Half the candidates come from the
 * user's interest clusters (any, old included), half are random. Click
 * probability sigmoid(sharp * (a - 0.5)) with a = the best cosine between
 * the candidate and the centre of any interest that started before p (not
 * weighted by how much of the history it holds) — so old interests, gone
 * from the recent events, count as much as current ones.
 */
#ifndef MOEREC_MOE_SYNTH_BEHAVIOUR_H
#define MOEREC_MOE_SYNTH_BEHAVIOUR_H

#include <stdint.h>

#include "common/error.h"

#define SYNTH_MAX_INTERESTS 16 /* interests per user at most */
#define SYNTH_MAX_SAMPLES 1024 /* samples per user at most */

typedef struct synth_config {
    int n_items;          /* items (default 20000) */
    int n_clusters;       /* item clusters (200) */
    int d;                /* embedding dimension (32) */
    int n_users;          /* users (1000) */
    int seq_len;          /* events per user, L (1000) */
    int n_interests;      /* interests per user, the old one included (4) */
    int samples_per_user; /* labelled candidates per user (20, at most 1024) */
    float noise;          /* item spread around its centre (0.6) */
    float explore;        /* share of random events (0.1) */
    float old_frac;       /* the old interest lives in [0, old_frac) of the sequence (0.3) */
    float min_pos_frac;   /* samples at positions >= this fraction of L (0.6) */
    float sharp;          /* label sharpness (8) */
    uint64_t seed;        /* everything random derives from it (1) */
} synth_config;

void synth_config_init(synth_config *c);

typedef struct synth_data {
    synth_config cfg;
    float *item_emb;        /* (n_items, d) */
    uint32_t *item_cluster; /* (n_items) */
    uint32_t *seq;          /* (n_users, seq_len) item ids, oldest first */
    int n_samples;          /* n_users * samples_per_user */
    uint32_t *s_user;       /* (n_samples) */
    uint32_t *s_item;       /* (n_samples) */
    uint32_t *s_pos;        /* (n_samples) history length: events [0, pos) precede it */
    float *s_label;         /* (n_samples) 0/1 click */
    float *s_prob;          /* (n_samples) the click probability it was drawn from */
} synth_data;

/* Samples of a user are sorted by position (ties keep generation order). */
int synth_create(synth_data **out, const synth_config *cfg, mr_err *e);
void synth_free(synth_data *s);

/* Timestamp (unix ms) of event j of any user; a sample at position p has
 * time synth_ts(p) - 1, strictly after event p-1, before event p. */
int64_t synth_ts(long j);

#endif

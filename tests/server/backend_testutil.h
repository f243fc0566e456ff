/* backend_testutil.h — a server backend's folder for the server's unit
 * tests: a fresh temporary directory with the config pointing into it
 * (item table of dim 4, small SDIM tables: m 8, tau 2), and its removal
 * afterwards. Include after cmocka.h. */
#ifndef MOEREC_TESTS_SERVER_BACKEND_TESTUTIL_H
#define MOEREC_TESTS_SERVER_BACKEND_TESTUTIL_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

#include "server/config.h"

/* dir (64 bytes) gets a new /tmp folder; cfg the defaults, data_dir in it. */
static inline void backend_test_config(char *dir, mr_server_config *cfg) {
    snprintf(dir, 64, "/tmp/moerec-backend-XXXXXX");
    assert_non_null(mkdtemp(dir));
    mr_config_defaults(cfg);
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s/db", dir);
    cfg->item_dim = 4;
    cfg->sdim_m = 8;
    cfg->sdim_tau = 2;
}

static inline int backend_test_rm_entry(const char *p, const struct stat *sb, int flag,
                                        struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

/* Remove dir and everything below it. */
static inline void backend_test_remove(const char *dir) {
    nftw(dir, backend_test_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif

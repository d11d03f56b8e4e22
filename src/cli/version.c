/*
 * version.c — the commit this binary was built from (the Makefile passes HASS_COMMIT, from
 * `git describe --always --dirty`, and rebuilds this file on every build).
 */
#include "cli/cli.h"

#ifndef HASS_COMMIT
#define HASS_COMMIT "unknown"
#endif

const char *cli_commit(void) {
    return HASS_COMMIT;
}

/* version.h — what `moerec --version` prints (version.c). */
#ifndef MOEREC_TOOLS_VERSION_H
#define MOEREC_TOOLS_VERSION_H

#include <stdio.h>

void mr_version_print(FILE *f);

#endif

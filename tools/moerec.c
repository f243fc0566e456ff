/* moerec.c — the `moerec` binary: dispatches to subcommands (command.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "version.h"

#define MAX_COMMANDS 32

static const mr_command *g_cmds[MAX_COMMANDS];
static int g_ncmds;

void mr_command_register(const mr_command *cmd) {
    if (g_ncmds < MAX_COMMANDS) g_cmds[g_ncmds++] = cmd;
}

static int by_name(const void *a, const void *b) {
    return strcmp((*(const mr_command *const *)a)->name, (*(const mr_command *const *)b)->name);
}

static void usage(FILE *f) {
    fprintf(f, "usage: moerec COMMAND [OPTIONS]\n\n"
               "moerec: multi-task mixture-of-experts ranking and routed retrieval over gRPC.\n\n"
               "Commands:\n");
    for (int i = 0; i < g_ncmds; i++)
        fprintf(f, "  %-10s %s\n", g_cmds[i]->name, g_cmds[i]->summary);
    fprintf(f, "\n'moerec COMMAND --help' describes a command's options; 'moerec --version'\n"
               "prints the version, the git commit and the linked libraries' versions.\n\n"
               "Example:\n"
               "  moerec serve --port 50051 --model-dir models --data-dir db\n");
}

int main(int argc, char **argv) {
    qsort(g_cmds, (size_t)g_ncmds, sizeof g_cmds[0], by_name);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        mr_version_print(stdout);
        return 0;
    }
    for (int i = 0; i < g_ncmds; i++) {
        if (strcmp(argv[1], g_cmds[i]->name) != 0) continue;
        char name[64];
        snprintf(name, sizeof name, "moerec %s", g_cmds[i]->name);
        argv[1] = name;
        return g_cmds[i]->main(argc - 1, argv + 1);
    }
    fprintf(stderr, "moerec: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}

/* command.h — subcommands of the `moerec` binary (git/redis-cli style).
 *
 * Each tools/cmd_NAME.c defines one subcommand with MR_COMMAND; it registers
 * itself at startup, so adding a subcommand touches no shared table.
 * A subcommand's main gets argv with argv[0] = "moerec NAME", answers
 * --help, and returns the process exit code (0 ok, 1 failure, 2 usage).
 */
#ifndef MOEREC_TOOLS_COMMAND_H
#define MOEREC_TOOLS_COMMAND_H

typedef struct mr_command {
    const char *name;    /* "serve" */
    const char *summary; /* one line for `moerec --help` */
    int (*main)(int argc, char **argv);
} mr_command;

void mr_command_register(const mr_command *cmd);

#define MR_COMMAND(ident, name, summary, fn)             \
    static const mr_command ident = {name, summary, fn}; \
    __attribute__((constructor)) static void ident##_register(void) { mr_command_register(&ident); }

#endif

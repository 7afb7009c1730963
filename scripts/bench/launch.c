/* Runs a command and reports its peak RSS. Linux keeps ru_maxrss across
 * exec, so a child forked from a big process (the Python driver) would
 * report at least the driver's size; forked from this small launcher it
 * reports its own. usage: launch OUTFILE CMD [ARGS...] -> OUTFILE gets
 * "<maxrss KiB> <exit status>"; the launcher exits with the command's code. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) return 125;
    pid_t pid = fork();
    if (pid < 0) return 126;
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) return 126;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    FILE *f = fopen(argv[1], "w");
    if (!f) return 126;
    fprintf(f, "%ld %d\n", ru.ru_maxrss, code);
    fclose(f);
    return code;
}

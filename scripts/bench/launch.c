/* Runs a command and reports what it cost. Linux keeps ru_maxrss across
 * exec, so a child forked from a big process (the Python driver) would
 * report at least the driver's size; forked from this small launcher it
 * reports its own. The wall time is taken here, from fork to the end of
 * wait4, so the driver's own start-up never counts.
 * usage: launch OUTFILE [NAME=VALUE...] -- CMD [ARGS...]: the NAME=VALUE
 * settings go into CMD's environment only (so an LD_PRELOAD given there
 * traces CMD, not this launcher). OUTFILE gets
 * "<maxrss KiB> <exit status> <user us> <sys us> <wall ns>"; the launcher
 * exits with the command's code. wait4 reports the child together with every
 * descendant it waited for, so user and sys cover the whole process tree
 * (but not a process that was orphaned and reaped by someone else) and
 * maxrss is the largest single process of that tree. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static long long micros(struct timeval t) {
    return (long long)t.tv_sec * 1000000LL + t.tv_usec;
}

int main(int argc, char **argv) {
    int cmd = 2;
    while (cmd < argc && strcmp(argv[cmd], "--") != 0) cmd++;
    if (cmd + 1 >= argc) return 125;
    long long start = now_ns();
    pid_t pid = fork();
    if (pid < 0) return 126;
    if (pid == 0) {
        for (int i = 2; i < cmd; i++) putenv(argv[i]);
        execvp(argv[cmd + 1], argv + cmd + 1);
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) return 126;
    long long wall = now_ns() - start;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    FILE *f = fopen(argv[1], "w");
    if (!f) return 126;
    fprintf(f, "%ld %d %lld %lld %lld\n", ru.ru_maxrss, code, micros(ru.ru_utime), micros(ru.ru_stime), wall);
    fclose(f);
    return code;
}

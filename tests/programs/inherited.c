/* Fork children that make no allocation event of their own (SPEC §2
 * "inherited_only") and one that does. The parent allocates a (100 B),
 * b (200 B) and c (300 B) and frees b: at every fork it has made 3
 * allocations and 1 free, 600 bytes allocated, 200 freed, a and c (400 B)
 * live, and its peak was 600 B in 3 blocks. Then, one child at a time:
 *   exec    execs TRUE_BIN at once
 *   _exit   calls _exit(5) at once
 *   signal  sends itself SIGTERM at once (default disposition)
 *   alloc   d = malloc(50); free(a); exit(7)
 * and finally frees c and returns 0 (a leaks); 1 if a child ended otherwise.
 * usage: inherited TRUE_BIN */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile sink;

static int child(int mode, void *a, const char *truebin) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        switch (mode) {
        case 0: execl(truebin, "true", (char *)NULL); _exit(127);
        case 1: _exit(5);
        case 2: kill(getpid(), SIGTERM); _exit(126);
        default:
            sink = malloc(50);
            free(a);
            exit(7);
        }
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

int main(int argc, char **argv) {
    const char *truebin = argc > 1 ? argv[1] : "/bin/true";
    void *a = malloc(100);
    void *b = malloc(200);
    void *c = malloc(300);
    free(b);
    int bad = 0;
    int st = child(0, a, truebin);
    bad |= !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    st = child(1, a, truebin);
    bad |= !(WIFEXITED(st) && WEXITSTATUS(st) == 5);
    st = child(2, a, truebin);
    bad |= !(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
    st = child(3, a, truebin);
    bad |= !(WIFEXITED(st) && WEXITSTATUS(st) == 7);
    free(c);
    sink = a;
    return bad;
}

/* Process-creation stress.
 *   storm N           N children; child i allocates 100+i bytes, then by i % 4:
 *                     0 exit(0), 1 _exit(0), 2 forks a grandchild (which exits)
 *                     and waits for it, 3 execs TRUE_BIN. Prints the number of
 *                     process images it expects to have written snapshots.
 *   threaded-fork M   4 threads churn malloc/free; main forks M times; each
 *                     child allocates 1000 bytes and exits.
 *   spawn             posix_spawn(TRUE_BIN) and system("exec TRUE_BIN")
 * usage: spawns MODE COUNT TRUE_BIN */
#define _GNU_SOURCE
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;
static void *volatile sink;
static volatile int stop;

static void *churn(void *arg) {
    (void)arg;
    while (!stop) {
        void *p = malloc(48);
        sink = p;
        free(p);
    }
    return NULL;
}

static void wait_all(void) {
    while (wait(NULL) > 0) {
    }
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "storm";
    int n = argc > 2 ? atoi(argv[2]) : 20;
    const char *truebin = argc > 3 ? argv[3] : "/bin/true";
    sink = malloc(77);
    if (!strcmp(mode, "storm")) {
        int images = 1;
        for (int i = 0; i < n; i++) {
            images += 1 + (i % 4 == 2) + (i % 4 == 3);
            pid_t pid = fork();
            if (pid < 0) return 3;
            if (pid > 0) continue;
            sink = malloc(100 + i);
            switch (i % 4) {
            case 0: exit(0);
            case 1: _exit(0);
            case 2:
                if (fork() == 0) {
                    sink = malloc(7);
                    exit(0);
                }
                wait_all();
                exit(0);
            default:
                execl(truebin, "true", (char *)NULL);
                _exit(127);
            }
        }
        wait_all();
        printf("%d\n", images);
        return 0;
    }
    if (!strcmp(mode, "threaded-fork")) {
        pthread_t t[4];
        for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, churn, NULL);
        for (int i = 0; i < n; i++) {
            pid_t pid = fork();
            if (pid == 0) {
                sink = malloc(1000);
                exit(0);
            }
            int st;
            waitpid(pid, &st, 0);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return 4;
        }
        stop = 1;
        for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
        return 0;
    }
    if (!strcmp(mode, "spawn")) {
        pid_t pid;
        char *args[] = {"true", NULL};
        if (posix_spawn(&pid, truebin, NULL, NULL, args, environ) != 0) return 5;
        waitpid(pid, NULL, 0);
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "exec %s", truebin);
        return system(cmd) == 0 ? 0 : 6;
    }
    return 2;
}

/* A small program with the heap shapes the HTML report is built to show:
 * a list that grows and is torn down, short-lived churn on two named worker
 * threads, a buffer grown by realloc, blocks that live tens of milliseconds,
 * leaks from two functions, and (when memscope's C API is there) two named
 * variables. usage: report_workload [SCALE]  (SCALE=1 runs ~0.3 s) */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct node { struct node *next; char payload[48]; };
static void *volatile sink;
static int scale = 1;

static void pause_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

__attribute__((noinline)) static struct node *build_list(int n) {
    struct node *head = NULL;
    for (int i = 0; i < n; i++) {
        struct node *x = malloc(sizeof *x);
        x->next = head;
        head = x;
        if (i % 500 == 0) pause_ms(2);
    }
    return head;
}

__attribute__((noinline)) static void free_list(struct node *n) {
    while (n) {
        struct node *next = n->next;
        free(n);
        n = next;
    }
}

__attribute__((noinline)) static void churn(int n) {
    for (int i = 0; i < n; i++) {
        char *tmp = malloc(16 + (i * 37) % 512);
        tmp[0] = (char)i;
        sink = tmp;
        free(tmp);
    }
}

static void *worker(void *arg) {
    pthread_setname_np(pthread_self(), (const char *)arg);
    for (int round = 0; round < 10; round++) {
        churn(1000 * scale);
        pause_ms(3);
    }
    return NULL;
}

__attribute__((noinline)) static char *grow_buffer(size_t target) {
    size_t cap = 64;
    char *buf = malloc(cap);
    while (cap < target) {
        cap *= 2;
        buf = realloc(buf, cap);
        buf[cap - 1] = 1;
    }
    return buf;
}

__attribute__((noinline)) static void leak_config(int n) {
    for (int i = 0; i < n; i++) sink = calloc(1, 128);
}

__attribute__((noinline)) static void leak_big(void) { sink = malloc(4096); }

struct api {
    uint32_t version, size;
    uint64_t (*var_birth)(uintptr_t, size_t, const char *, size_t, const char *, size_t, const char *, size_t);
    void (*var_death)(uint64_t);
};

int main(int argc, char **argv) {
    if (argc > 1) scale = atoi(argv[1]) > 0 ? atoi(argv[1]) : 1;
    const struct api *(*get)(void) = (const struct api *(*)(void))dlsym(RTLD_DEFAULT, "memscope_api_v1");
    const struct api *api = get ? get() : NULL;

    struct node *list = build_list(3000 * scale);
    uint64_t list_id = api ? api->var_birth((uintptr_t)list, sizeof *list, "list", 4, "struct node *", 13, "main", 4) : 0;
    pthread_t t[2];
    pthread_create(&t[0], NULL, worker, "worker-1");
    pthread_create(&t[1], NULL, worker, "worker-2");
    char *buf = grow_buffer((size_t)1 << 20);
    uint64_t buf_id = api ? api->var_birth((uintptr_t)buf, 1 << 20, "buf", 3, "char[]", 6, "main", 4) : 0;
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    pause_ms(20);
    if (api) api->var_death(buf_id);
    free(buf);
    leak_config(40);
    leak_big();
    pause_ms(10);
    if (api) api->var_death(list_id);
    free_list(list);
    churn(2000 * scale);
    return 0;
}

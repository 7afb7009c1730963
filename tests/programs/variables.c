/* Uses libmemscope.so's C API (memscope_api_v1) the way memscope-rs does:
 *   "buffer"  (char[], scope main) owns a 64-byte block, lives ~100 ms, dropped
 *   "grown"   (Vec<u8>) owns a 16-byte block that is realloc'd to 4096, dropped
 *   "kept"    (String) owns a 200-byte block, never dropped (leaked)
 *   "counter" (i32) owns no heap block, dropped
 * Then, by argv[1]:
 *   plain     returns 0
 *   export P  also writes a snapshot to P mid-run (after "buffer" died)
 *   path P    sets the program's own export path to P
 *   panic     notes a panic and exits with 101, as a Rust panic out of main does */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct api {
    uint32_t version, size;
    uint64_t (*var_birth)(uintptr_t, size_t, const char *, size_t, const char *, size_t, const char *, size_t);
    void (*var_death)(uint64_t);
    int (*export_)(const char *, size_t);
    void (*set_export_path)(const char *, size_t);
    void (*note_panic)(void);
};

static uint64_t name(const struct api *a, void *p, size_t n, const char *var, const char *type) {
    return a->var_birth((uintptr_t)p, n, var, strlen(var), type, strlen(type), "main", 4);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "plain";
    const struct api *(*get)(void) = (const struct api *(*)(void))dlsym(RTLD_DEFAULT, "memscope_api_v1");
    if (!get) return 2;
    const struct api *a = get();
    if (a->version != 1) return 3;
    if (!strcmp(mode, "path")) a->set_export_path(argv[2], strlen(argv[2]));

    char *buffer = malloc(64);
    uint64_t b = name(a, buffer, 64, "buffer", "char[]");
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    a->var_death(b);
    free(buffer);

    char *grown = malloc(16);
    uint64_t g = name(a, grown, 16, "grown", "Vec<u8>");
    grown = realloc(grown, 4096);
    a->var_death(g);
    free(grown);

    char *kept = malloc(200);
    name(a, kept, 200, "kept", "String");
    uint64_t c = name(a, NULL, 0, "counter", "i32");
    a->var_death(c);

    if (!strcmp(mode, "export") && a->export_(argv[2], strlen(argv[2])) != 0) return 4;
    if (!strcmp(mode, "panic")) {
        a->note_panic();
        exit(101);
    }
    return 0;
}

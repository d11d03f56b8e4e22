/*
 * check.h — the tiny test harness. A failed check records the failure and the program goes
 * on; check_exit() returns non-zero if anything failed. Skips are counted separately.
 * Every test program prints one line "TESTPROG: N passed, N failed, N skipped" at the end,
 * which tests/run_tests.sh adds up.
 *
 * Hermetic: check_init() makes the program's own temporary directory (check_tmp(); removed by
 * check_exit()) and points HASS_CACHE_DIR into it, so the cost curve that speculative decoding
 * measures is cached there (and by the hass commands a test runs), never in the user's home.
 * File helpers below do in C what tests would otherwise ask a shell for.
 */
#ifndef HASS_CHECK_H
#define HASS_CHECK_H

#include <dirent.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int check_passed, check_failed, check_skipped;
static const char *check_prog = "test";

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond) {                                                                                \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                        \
        }                                                                                          \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (cond) {                                                                                \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                            \
        if (check_a_ == check_b_) {                                                                \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "FAIL %s:%d: %s == %s (%lld vs %lld)\n", __FILE__, __LINE__, #a, #b,   \
                    check_a_, check_b_);                                                           \
        }                                                                                          \
    } while (0)

/* Compares n floats: |a-b| <= atol + rtol*|b|. Prints max-abs, max-rel, first bad index. */
static inline int check_close_impl(const float *a, const float *b, long n, double atol, double rtol,
                                   const char *label, const char *file, int line) {
    double maxabs = 0, maxrel = 0;
    long first = -1, nbad = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double r = d / (fabs((double)b[i]) + 1e-30);
        if (d > maxabs)
            maxabs = d;
        if (r > maxrel && fabs((double)b[i]) > 1e-30)
            maxrel = r;
        if (!(d <= atol + rtol * fabs((double)b[i]))) {
            if (first < 0)
                first = i;
            nbad++;
        }
    }
    if (nbad == 0) {
        check_passed++;
        return 1;
    }
    check_failed++;
    fprintf(stderr, "FAIL %s:%d: %s: %ld/%ld bad, max abs %.3g, max rel %.3g, first bad [%ld]\n",
            file, line, label, nbad, n, maxabs, maxrel, first);
    for (long i = first; i < n && i < first + 4; i++)
        fprintf(stderr, "    [%ld] %.9g vs %.9g\n", i, (double)a[i], (double)b[i]);
    return 0;
}
#define CHECK_CLOSE(a, b, n, atol, rtol, label)                                                    \
    check_close_impl((a), (b), (long)(n), (atol), (rtol), (label), __FILE__, __LINE__)

/* Bit-identical float arrays. */
#define CHECK_BITEQ(a, b, n, label)                                                                \
    do {                                                                                           \
        if (memcmp((a), (b), (size_t)(n) * sizeof(float)) == 0) {                                  \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "FAIL %s:%d: %s: not bit-identical\n", __FILE__, __LINE__, (label));   \
        }                                                                                          \
    } while (0)

#define CHECK_SKIP(why)                                                                            \
    do {                                                                                           \
        check_skipped++;                                                                           \
        fprintf(stderr, "SKIP %s:%d: %s\n", __FILE__, __LINE__, (why));                            \
    } while (0)

/* ---- files ---- */
static char check_tmp_dir[256];

/* Removes path: a file, or a directory and everything below it (links are not followed).
 * Returns 0 on success. */
static inline int check_rmtree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0)
        return -1;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d)
            return -1;
        struct dirent *e;
        char sub[1024];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
                snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) < (int)sizeof sub)
                check_rmtree(sub);
        closedir(d);
        return rmdir(path);
    }
    return unlink(path);
}

/* The program's temporary directory (made by check_init). */
static inline const char *check_tmp(void) {
    return check_tmp_dir;
}

/* check_tmp()/name, in one of 8 rotating buffers. */
static inline const char *check_path(const char *name) {
    static char buf[8][1024];
    static int k;
    char *b = buf[k++ & 7];
    snprintf(b, 1024, "%s/%s", check_tmp_dir, name);
    return b;
}

/* Writes n bytes of data to path (mode "wb" or "ab"); n < 0: the string's length. 0 on
 * success. */
static inline int check_write(const char *path, const char *mode, const void *data, long n) {
    FILE *f = fopen(path, mode);
    if (!f)
        return -1;
    size_t len = n < 0 ? strlen((const char *)data) : (size_t)n;
    int bad = fwrite(data, 1, len, f) != len;
    return fclose(f) != 0 || bad ? -1 : 0;
}

/* A whole file into a heap buffer (caller frees), *n its length; NULL if unreadable. */
static inline char *check_read(const char *path, long *n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    long cap = 4096, len = 0;
    char *b = malloc((size_t)cap + 1);
    size_t got;
    while (b && (got = fread(b + len, 1, (size_t)(cap - len), f)) > 0) {
        len += (long)got;
        if (len == cap) {
            char *nb = realloc(b, (size_t)(cap *= 2) + 1);
            if (!nb)
                free(b);
            b = nb;
        }
    }
    fclose(f);
    if (b)
        b[len] = 0;
    *n = len;
    return b;
}

/* The hass binary built beside the test programs (argv0's directory/../hass) into out; 0
 * (after a skip) when it is not there. */
static inline int check_hass_binary(const char *argv0, char *out, size_t cap) {
    char self[1024];
    snprintf(self, sizeof self, "%s", argv0);
    snprintf(out, cap, "%s/../hass", dirname(self));
    if (access(out, X_OK) == 0)
        return 1;
    CHECK_SKIP("hass binary not built next to the tests");
    return 0;
}

/* The last line of text (which must end with a newline; progress lines may come before it),
 * or NULL. */
static inline const char *check_last_line(const char *text) {
    size_t n = strlen(text);
    if (n < 2 || text[n - 1] != '\n')
        return NULL;
    const char *p = text + n - 1;
    while (p > text && p[-1] != '\n')
        p--;
    return p;
}

/* 1 if both files exist and hold the same bytes. */
static inline int check_same_file(const char *a, const char *b) {
    long na = 0, nb = 0;
    char *x = check_read(a, &na), *y = check_read(b, &nb);
    int same = x && y && na == nb && !memcmp(x, y, (size_t)na);
    free(x);
    free(y);
    return same;
}

/* Copies a file, or a directory tree (cp -r). 0 on success. */
static inline int check_copy(const char *from, const char *to) {
    struct stat st;
    if (stat(from, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        long n = 0;
        char *b = check_read(from, &n);
        int rc = b ? check_write(to, "wb", b, n) : -1;
        free(b);
        return rc;
    }
    DIR *d = opendir(from);
    if (!d || (mkdir(to, 0755) != 0 && (stat(to, &st) != 0 || !S_ISDIR(st.st_mode)))) {
        if (d)
            closedir(d);
        return -1;
    }
    struct dirent *e;
    char a[1024], b[1024];
    int rc = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            int na = snprintf(a, sizeof a, "%s/%s", from, e->d_name);
            int nb = snprintf(b, sizeof b, "%s/%s", to, e->d_name);
            rc |= na < (int)sizeof a && nb < (int)sizeof b ? check_copy(a, b) : -1;
        }
    closedir(d);
    return rc;
}

static inline void check_init(const char *prog) {
    check_prog = prog;
    const char *t = getenv("TMPDIR");
    int n = snprintf(check_tmp_dir, sizeof check_tmp_dir, "%s/hass_%s_XXXXXX", t && *t ? t : "/tmp",
                     prog);
    char cache[300];
    if (n >= (int)sizeof check_tmp_dir || !mkdtemp(check_tmp_dir)) {
        fprintf(stderr, "FAIL %s: cannot create a temporary directory\n", prog);
        exit(1);
    }
    snprintf(cache, sizeof cache, "%s/cache", check_tmp_dir);
    setenv("HASS_CACHE_DIR", cache, 1);
}

static inline int check_exit(void) {
    if (check_tmp_dir[0] && check_rmtree(check_tmp_dir) != 0)
        fprintf(stderr, "warning: could not remove %s\n", check_tmp_dir);
    printf("%s: %d passed, %d failed, %d skipped\n", check_prog, check_passed, check_failed,
           check_skipped);
    return check_failed ? 1 : 0;
}

/* Path of a file in ../shared (HASS_SHARED overrides); NULL-safe existence check. */
static inline const char *check_shared(const char *rel) {
    static char buf[8][1024];
    static int k;
    const char *root = getenv("HASS_SHARED");
    if (!root)
        root = "../shared";
    char *b = buf[k++ & 7];
    snprintf(b, 1024, "%s/%s", root, rel);
    FILE *f = fopen(b, "rb");
    if (!f)
        return NULL;
    fclose(f);
    return b;
}

#endif

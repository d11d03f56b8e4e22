/*
 * check.h — the tiny test harness. A failed check records the failure and the program goes
 * on; check_exit() returns non-zero if anything failed. Skips are counted separately.
 * Every test program prints one line "TESTPROG: N passed, N failed, N skipped" at the end,
 * which tests/run_tests.sh adds up.
 */
#ifndef HASS_CHECK_H
#define HASS_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static inline void check_init(const char *prog) {
    check_prog = prog;
}

static inline int check_exit(void) {
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

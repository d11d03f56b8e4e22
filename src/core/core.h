/*
 * core — the small things every module uses: status codes and error messages,
 * assertions, logging, arenas, the thread pool, a seeded RNG, bf16/f16 conversion,
 * read-only file mappings, clocks and progress lines.
 *
 * Error handling (three tiers, see docs/STYLE.md):
 *   1. HASS_ASSERT(cond): invariants and bugs; prints file:line and aborts (always on).
 *   2. hass_status + hass_err: recoverable failures; the message goes to the
 *      caller's hass_err, never to a global buffer.
 *   3. Only src/cli prints to the user or exits.
 */
#ifndef HASS_CORE_H
#define HASS_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>

/* ---- status codes: one X-macro table gives the enum and hass_status_str() ---- */
#define HASS_STATUS_LIST(X)                                                                        \
    X(HASS_OK, 0, "ok")                                                                            \
    X(HASS_STATUS_IO, -1, "i/o error")                                                             \
    X(HASS_STATUS_FORMAT, -2, "malformed file")                                                    \
    X(HASS_STATUS_OOM, -3, "out of memory")                                                        \
    X(HASS_STATUS_UNSUPPORTED, -4, "unsupported")                                                  \
    X(HASS_STATUS_ARG, -5, "invalid argument")                                                     \
    X(HASS_STATUS_RANGE, -6, "out of range")                                                       \
    X(HASS_STATUS_SHAPE, -7, "shape mismatch")                                                     \
    X(HASS_STATUS_NOTFOUND, -8, "not found")

typedef enum {
#define HASS_X_ENUM(name, val, str) name = val,
    HASS_STATUS_LIST(HASS_X_ENUM)
#undef HASS_X_ENUM
} hass_status;

const char *hass_status_str(hass_status s);

/* Caller-supplied error detail. A zeroed struct is "no error". */
typedef struct {
    hass_status code;
    char msg[256];
} hass_err;

/* Sets err (if non-NULL) and returns code, so callers can `return hass_err_set(...)`. */
hass_status hass_err_set(hass_err *err, hass_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes err's message with "prefix: " (e.g. a file name) and returns code. */
hass_status hass_err_prefix(hass_err *err, hass_status code, const char *prefix);

/* ---- assertions (stay on in release builds) ---- */
_Noreturn void hass__assert_fail(const char *file, int line, const char *expr);
#define HASS_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond))                                                                               \
            hass__assert_fail(__FILE__, __LINE__, #cond);                                          \
    } while (0)

/* ---- logging: library code never writes to stdout; the CLI installs the sink ---- */
typedef enum {
    HASS_LOG_DEBUG = 0,
    HASS_LOG_INFO = 1,
    HASS_LOG_WARN = 2,
    HASS_LOG_ERROR = 3
} hass_log_level;
typedef void (*hass_log_fn)(hass_log_level level, const char *msg, void *user);
void hass_log_set(hass_log_fn fn, void *user, hass_log_level min_level);
void hass_log(hass_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- overflow-checked size arithmetic (parsers use these before touching memory) ---- */
static inline int hass_mul_ok(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline int hass_add_ok(size_t a, size_t b, size_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

/* ---- memory ---- */
void *hass_aligned_alloc(
    size_t size); /* 64-byte aligned, zeroed; NULL on failure; free with hass_aligned_free */
void hass_aligned_free(void *p);

/* Per-thread scratch that grows on demand and is freed when its thread ends (a pthread key with
 * a destructor), for kernels that pack operands on whichever thread runs them. Define one per
 * use as `static hass_tls_scratch s = HASS_TLS_SCRATCH_INIT;`. */
typedef struct {
    pthread_mutex_t lock;
    _Atomic int made;
    pthread_key_t key;
} hass_tls_scratch;
#define HASS_TLS_SCRATCH_INIT {PTHREAD_MUTEX_INITIALIZER, 0, 0}
/* At least `bytes` bytes, 64-byte aligned, contents undefined; valid on the calling thread
 * until its next call with the same s. Aborts when out of memory. */
void *hass_tls_scratch_get(hass_tls_scratch *s, size_t bytes);

/* Bump allocator with mark/reset. Allocations are 64-byte aligned and zeroed. */
typedef struct {
    uint8_t *base;
    size_t cap, used;
} hass_arena;
hass_status hass_arena_init(hass_arena *a, size_t cap, hass_err *err);
void hass_arena_free(hass_arena *a);
void *hass_arena_alloc(hass_arena *a, size_t size); /* NULL when the arena is full */
static inline size_t hass_arena_mark(const hass_arena *a) {
    return a->used;
}
static inline void hass_arena_reset_to(hass_arena *a, size_t mark) {
    a->used = mark;
}

/* ---- thread pool ----
 * A persistent pool of nth-1 workers plus the calling thread. hass_pool_run(pool, fn, ctx)
 * calls fn(ctx, ith, nth) for ith = 0..nth-1 (ith 0 on the caller) and returns when all are
 * done. Kernels split their own rows by (ith, nth), so each output element is written by one
 * thread with a fixed reduction order. A NULL pool, or a call made from inside a running
 * task, runs fn(ctx, 0, 1) serially. Not reentrant from several external threads at once. */
typedef struct hass_pool hass_pool;
typedef void (*hass_task_fn)(void *ctx, int ith, int nth);
hass_pool *hass_pool_create(int n_threads); /* n_threads <= 0: number of online CPUs */
void hass_pool_destroy(hass_pool *pool);
int hass_pool_size(const hass_pool *pool); /* 1 for NULL */
void hass_pool_run(hass_pool *pool, hass_task_fn fn, void *ctx);
/* Like hass_pool_run but uses only the first n threads (n clamped to [1, size]). */
void hass_pool_run_n(hass_pool *pool, int n, hass_task_fn fn, void *ctx);
int hass_cpu_count(void);
/* Contiguous split of [0, n) for thread ith of nth. */
static inline void hass_split(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi) {
    *lo = n * ith / nth;
    *hi = n * (ith + 1) / nth;
}

/* ---- rng: xorshift64*, seeded through splitmix64 (never rand()) ---- */
typedef struct {
    uint64_t s;
} hass_rng;
void hass_rng_seed(hass_rng *r, uint64_t seed);
uint64_t hass_rng_u64(hass_rng *r);
float hass_rng_uniform(hass_rng *r);    /* [0, 1), 24 random bits */
double hass_rng_uniform_d(hass_rng *r); /* [0, 1), 53 random bits */
float hass_rng_normal(hass_rng *r);     /* standard normal (Box-Muller) */

/* ---- FNV-1a, 64 bits: h = HASS_FNV_OFFSET to start, then chained over the pieces ---- */
#define HASS_FNV_OFFSET 0xcbf29ce484222325ull
uint64_t hass_fnv1a(uint64_t h, const void *p, size_t n);

/* ---- half precision ---- */
static inline float hass_bf16_to_f32(uint16_t h) {
    union {
        uint32_t u;
        float f;
    } v = {.u = (uint32_t)h << 16};
    return v.f;
}
/* round-to-nearest-even; NaN stays NaN */
static inline uint16_t hass_f32_to_bf16(float f) {
    union {
        float f;
        uint32_t u;
    } v = {.f = f};
    if ((v.u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((v.u >> 16) | 0x40);
    return (uint16_t)((v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16);
}
float hass_f16_to_f32(uint16_t h);
uint16_t hass_f32_to_f16(float f);

/* ---- read-only file mapping ---- */
typedef struct {
    const uint8_t *data; /* borrowed, valid until hass_mapfile_close */
    size_t size;
    char path[512];
} hass_mapfile;
hass_status hass_mapfile_open(hass_mapfile *mf, const char *path, hass_err *err);
void hass_mapfile_close(hass_mapfile *mf);

/* Reads a whole file into a NUL-terminated heap buffer (caller frees). */
hass_status hass_read_file(const char *path, char **out, size_t *size, hass_err *err);
/* Writes `size` bytes to path atomically: path.tmp.<pid>, fsync, rename. */
hass_status hass_write_file_atomic(const char *path, const void *data, size_t size, hass_err *err);
/* The same, streamed: open writes to path.tmp.<pid>; commit fsyncs, closes and renames it to
 * path; abort (also after a failed write or commit, and safe on a committed or zeroed file)
 * closes and removes the temp file. A reader of path never sees a partial file. */
typedef struct {
    int fd; /* -1 when closed */
    char path[1024], tmp[1100];
} hass_afile;
hass_status hass_afile_open(hass_afile *f, const char *path, hass_err *err);
hass_status hass_afile_write(hass_afile *f, const void *data, size_t size, hass_err *err);
hass_status hass_afile_commit(hass_afile *f, hass_err *err);
void hass_afile_abort(hass_afile *f);
int hass_file_exists(const char *path);
int hass_is_dir(const char *path);
/* Creates dir and its missing parents (mkdir -p, mode 0755). Errors: HASS_STATUS_IO when a
 * component cannot be created or is not a directory. */
hass_status hass_mkdir_p(const char *dir, hass_err *err);

/* ---- time and memory ---- */
double hass_now(void);            /* monotonic seconds */
size_t hass_peak_rss_bytes(void); /* peak resident set size of this process so far */

/* ---- progress line on stderr-like sink: "label  done/total  rate unit/s  ETA" ---- */
typedef struct {
    double t0, last;
    int64_t total, start;
    const char *label, *unit;
} hass_progress;
void hass_progress_init(hass_progress *p, const char *label, const char *unit, int64_t total);
/* A resumed job counts from done = start: the rate and ETA cover this run's work only. */
void hass_progress_start_at(hass_progress *p, int64_t start);
/* Logs at most every 0.5 s (and always when done == total); a rate under one unit per
   second is shown as seconds per unit. */
void hass_progress_update(hass_progress *p, int64_t done);

#endif

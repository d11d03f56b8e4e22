/*
 * core.c — status strings, errors, assertions, logging, arenas, rng, f16, files, clocks,
 * progress. See core.h for the contracts.
 */
#include "core/core.h"

#include <stdatomic.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *hass_status_str(hass_status s) {
    switch (s) {
#define HASS_X_CASE(name, val, str)                                                                \
    case name:                                                                                     \
        return str;
        HASS_STATUS_LIST(HASS_X_CASE)
#undef HASS_X_CASE
    }
    return "unknown status";
}

hass_status hass_err_set(hass_err *err, hass_status code, const char *fmt, ...) {
    if (err) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

hass_status hass_err_prefix(hass_err *err, hass_status code, const char *prefix) {
    if (err) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        hass_err_set(err, code, "%s: %s", prefix, msg);
    }
    return code;
}

_Noreturn void hass__assert_fail(const char *file, int line, const char *expr) {
    fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, expr);
    fflush(stderr);
    abort();
}

/* ---- logging ---- */
static hass_log_fn g_log_fn; /* set once by the CLI before any work starts */
static void *g_log_user;
static hass_log_level g_log_min = HASS_LOG_WARN;

void hass_log_set(hass_log_fn fn, void *user, hass_log_level min_level) {
    g_log_fn = fn;
    g_log_user = user;
    g_log_min = min_level;
}

void hass_log(hass_log_level level, const char *fmt, ...) {
    if (level < g_log_min)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (g_log_fn)
        g_log_fn(level, buf, g_log_user);
    else
        fprintf(stderr, "%s\n", buf);
}

/* ---- memory ---- */
void *hass_aligned_alloc(size_t size) {
    if (size == 0)
        size = 64;
    void *p = NULL;
    if (posix_memalign(&p, 64, size) != 0)
        return NULL;
    memset(p, 0, size);
    return p;
}
void hass_aligned_free(void *p) {
    free(p);
}

hass_status hass_arena_init(hass_arena *a, size_t cap, hass_err *err) {
    memset(a, 0, sizeof *a);
    a->base = hass_aligned_alloc(cap);
    if (!a->base)
        return hass_err_set(err, HASS_STATUS_OOM, "cannot allocate %zu bytes", cap);
    a->cap = cap;
    return HASS_OK;
}
void hass_arena_free(hass_arena *a) {
    if (!a)
        return;
    hass_aligned_free(a->base);
    memset(a, 0, sizeof *a);
}
void *hass_arena_alloc(hass_arena *a, size_t size) {
    size_t start = (a->used + 63) & ~(size_t)63, end;
    if (!hass_add_ok(start, size, &end) || end > a->cap)
        return NULL;
    a->used = end;
    memset(a->base + start, 0, size);
    return a->base + start;
}

/* ---- rng ---- */
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
void hass_rng_seed(hass_rng *r, uint64_t seed) {
    uint64_t x = seed;
    r->s = splitmix64(&x);
    if (r->s == 0)
        r->s = 0x9e3779b97f4a7c15ull;
}
uint64_t hass_rng_u64(hass_rng *r) {
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545f4914f6cdd1dull;
}
float hass_rng_uniform(hass_rng *r) {
    return (float)(hass_rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}
double hass_rng_uniform_d(hass_rng *r) {
    return (double)(hass_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}
float hass_rng_normal(hass_rng *r) {
    double u1 = hass_rng_uniform_d(r), u2 = hass_rng_uniform_d(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint64_t hass_fnv1a(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* ---- f16 ---- */
float hass_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            man &= 0x3ff;
            u = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    union {
        uint32_t u;
        float f;
    } v = {.u = u};
    return v.f;
}
uint16_t hass_f32_to_f16(float f) {
    union {
        float f;
        uint32_t u;
    } v = {.f = f};
    uint32_t u = v.u, sign = (u >> 16) & 0x8000;
    int32_t exp = (int32_t)((u >> 23) & 0xff) - 127 + 15;
    uint32_t man = u & 0x7fffff;
    if (((u >> 23) & 0xff) == 0xff)
        return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    if (exp >= 31)
        return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10)
            return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)exp << 10) | (man >> 13), rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1)))
        half++; /* may carry into the exponent: still correct (rounds up to inf) */
    return (uint16_t)half;
}

/* ---- files ---- */
hass_status hass_mapfile_open(hass_mapfile *mf, const char *path, hass_err *err) {
    memset(mf, 0, sizeof *mf);
    snprintf(mf->path, sizeof mf->path, "%s", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return hass_err_set(err, HASS_STATUS_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return hass_err_set(err, HASS_STATUS_IO, "%s: not a regular file", path);
    }
    mf->size = (size_t)st.st_size;
    if (mf->size == 0) {
        close(fd);
        return hass_err_set(err, HASS_STATUS_FORMAT, "%s: empty file", path);
    }
    void *p = mmap(NULL, mf->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return hass_err_set(err, HASS_STATUS_IO, "%s: mmap: %s", path, strerror(errno));
    mf->data = p;
    return HASS_OK;
}
void hass_mapfile_close(hass_mapfile *mf) {
    if (mf && mf->data)
        munmap((void *)mf->data, mf->size);
    if (mf)
        mf->data = NULL;
}

hass_status hass_read_file(const char *path, char **out, size_t *size, hass_err *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return hass_err_set(err, HASS_STATUS_IO, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf)
        return hass_err_set(err, HASS_STATUS_OOM, "%s: out of memory", path);
    if (bad) {
        free(buf);
        return hass_err_set(err, HASS_STATUS_IO, "%s: read error", path);
    }
    buf[n] = 0;
    *out = buf;
    if (size)
        *size = n;
    return HASS_OK;
}

hass_status hass_afile_open(hass_afile *f, const char *path, hass_err *err) {
    f->fd = -1;
    f->tmp[0] = 0;
    if (snprintf(f->path, sizeof f->path, "%s", path) >= (int)sizeof f->path)
        return hass_err_set(err, HASS_STATUS_ARG, "%.64s...: path too long", path);
    snprintf(f->tmp, sizeof f->tmp, "%s.tmp.%ld", path, (long)getpid());
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (f->fd < 0) {
        hass_status rc = hass_err_set(err, HASS_STATUS_IO, "%s: %s", f->tmp, strerror(errno));
        f->tmp[0] = 0;
        return rc;
    }
    return HASS_OK;
}

hass_status hass_afile_write(hass_afile *f, const void *data, size_t size, hass_err *err) {
    const uint8_t *p = data;
    while (size > 0) {
        ssize_t w = write(f->fd, p, size);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return hass_err_set(err, HASS_STATUS_IO, "%s: %s", f->tmp, strerror(errno));
        }
        p += w;
        size -= (size_t)w;
    }
    return HASS_OK;
}

hass_status hass_afile_commit(hass_afile *f, hass_err *err) {
    if (fsync(f->fd) != 0)
        return hass_err_set(err, HASS_STATUS_IO, "%s: fsync: %s", f->tmp, strerror(errno));
    int rc = close(f->fd);
    f->fd = -1;
    if (rc != 0)
        return hass_err_set(err, HASS_STATUS_IO, "%s: close: %s", f->tmp, strerror(errno));
    if (rename(f->tmp, f->path) != 0)
        return hass_err_set(err, HASS_STATUS_IO, "%s: rename: %s", f->path, strerror(errno));
    f->tmp[0] = 0;
    return HASS_OK;
}

void hass_afile_abort(hass_afile *f) {
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    if (f->tmp[0])
        unlink(f->tmp);
    f->tmp[0] = 0;
}

hass_status hass_write_file_atomic(const char *path, const void *data, size_t size, hass_err *err) {
    hass_afile f;
    hass_status rc = hass_afile_open(&f, path, err);
    if (!rc)
        rc = hass_afile_write(&f, data, size, err);
    if (!rc)
        rc = hass_afile_commit(&f, err);
    if (rc)
        hass_afile_abort(&f);
    return rc;
}

int hass_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}
int hass_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

hass_status hass_mkdir_p(const char *dir, hass_err *err) {
    char tmp[1024];
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp)
        return hass_err_set(err, HASS_STATUS_ARG, "%s: path too long", dir);
    for (char *s = tmp + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = 0;
        if (mkdir(tmp, 0755) && errno != EEXIST)
            return hass_err_set(err, HASS_STATUS_IO, "%s: cannot create: %s", tmp, strerror(errno));
        *s = '/';
    }
    if (mkdir(tmp, 0755) && errno != EEXIST)
        return hass_err_set(err, HASS_STATUS_IO, "%s: cannot create: %s", tmp, strerror(errno));
    if (!hass_is_dir(tmp))
        return hass_err_set(err, HASS_STATUS_IO, "%s: not a directory", tmp);
    return HASS_OK;
}

double hass_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

size_t hass_peak_rss_bytes(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (size_t)ru.ru_maxrss * 1024; /* Linux reports KiB */
}

/* ---- progress ---- */
void hass_progress_init(hass_progress *p, const char *label, const char *unit, int64_t total) {
    p->t0 = hass_now();
    p->last = 0;
    p->total = total;
    p->start = 0;
    p->label = label;
    p->unit = unit;
}
void hass_progress_update(hass_progress *p, int64_t done) {
    double now = hass_now();
    if (done < p->total && now - p->last < 0.5)
        return;
    p->last = now;
    double el = now - p->t0, rate = el > 0 ? (double)(done - p->start) / el : 0.0;
    double eta = rate > 0 ? (double)(p->total - done) / rate : 0.0;
    char r[48];
    if (rate >= 1.0 || rate <= 0.0)
        snprintf(r, sizeof r, "%.1f %s/s", rate, p->unit);
    else
        snprintf(r, sizeof r, "%.1f s/%s", 1.0 / rate, p->unit);
    hass_log(HASS_LOG_INFO, "%s %lld/%lld %s  %s  elapsed %.0fs  ETA %.0fs", p->label,
             (long long)done, (long long)p->total, p->unit, r, el, eta);
}
void hass_progress_start_at(hass_progress *p, int64_t start) { p->start = start; }

/* ---- per-thread scratch ---- */
typedef struct {
    void *p;
    size_t cap;
} tls_buf;

static void tls_buf_free(void *v) {
    tls_buf *b = v;
    hass_aligned_free(b->p);
    free(b);
}

void *hass_tls_scratch_get(hass_tls_scratch *s, size_t bytes) {
    if (!atomic_load_explicit(&s->made, memory_order_acquire)) {
        pthread_mutex_lock(&s->lock);
        if (!atomic_load_explicit(&s->made, memory_order_relaxed)) {
            HASS_ASSERT(pthread_key_create(&s->key, tls_buf_free) == 0);
            atomic_store_explicit(&s->made, 1, memory_order_release);
        }
        pthread_mutex_unlock(&s->lock);
    }
    tls_buf *b = pthread_getspecific(s->key);
    if (!b) {
        b = calloc(1, sizeof *b);
        HASS_ASSERT(b && pthread_setspecific(s->key, b) == 0);
    }
    if (bytes > b->cap) {
        hass_aligned_free(b->p);
        b->p = hass_aligned_alloc(bytes);
        HASS_ASSERT(b->p != NULL);
        b->cap = bytes;
    }
    return b->p;
}

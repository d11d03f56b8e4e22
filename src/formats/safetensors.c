/*
 * safetensors.c — Hugging Face safetensors: reader (single file and sharded directory) and
 * writer.
 *
 * File layout: u64 little-endian header length N, N bytes of JSON
 *   {"__metadata__": {...}, "name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...}
 * then the data section; offsets are relative to its start. The reader validates everything
 * listed in formats.h before handing out a pointer, with a reader of the header's own grammar
 * whose memory is the tensor table it returns; the writer (cJSON) produces what Hugging Face's
 * loader accepts (8-byte aligned, space-padded header, tensors tiling the data section).
 */
#include "formats/formats.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_MAX_HEADER (64u << 20) /* Hugging Face allows 100 MB; no real header comes near */

static const struct {
    const char *name;
    hass_dtype dtype;
} st_dtypes[] = {
    {"F32", HASS_DTYPE_F32}, {"F16", HASS_DTYPE_F16}, {"BF16", HASS_DTYPE_BF16},
    {"I32", HASS_DTYPE_I32}, {"I64", HASS_DTYPE_I64}, {"U8", HASS_DTYPE_U8},
};
#define N_ST_DTYPES (int)(sizeof st_dtypes / sizeof st_dtypes[0])

static int dtype_from_name(const char *s, hass_dtype *out) {
    for (int i = 0; i < N_ST_DTYPES; i++)
        if (!strcmp(s, st_dtypes[i].name)) {
            *out = st_dtypes[i].dtype;
            return 1;
        }
    return 0;
}

static const char *dtype_to_name(hass_dtype t) {
    for (int i = 0; i < N_ST_DTYPES; i++)
        if (st_dtypes[i].dtype == t)
            return st_dtypes[i].name;
    return NULL;
}

static size_t elem_size(hass_dtype t) {
    return t == HASS_DTYPE_U8 ? 1 : hass_dtype_bytes(t, 1);
}

static uint64_t rd_u64le(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

typedef struct {
    uint64_t begin, end;
    int idx;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x->idx - y->idx;
}

static int cmp_name_ptr(const void *a, const void *b) {
    const hass_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* ---------------- header parser ----------------
 * The header is parsed by a reader of its own grammar rather than a JSON library: a DOM of a
 * 64 MiB header of small arrays costs tens of times its size before a single check runs. This
 * reader keeps nothing but what it hands back: the tensor table (and two offsets a tensor) and
 * the __metadata__ object re-serialised (never longer than its text). It runs twice over the
 * header: pass 1 validates everything and counts, pass 2 fills arrays of exactly that size.
 *
 * Grammar: ws { ws [member (ws , ws member)*] ws } ws, a member being a string key, :, and
 *   - "__metadata__": an object of string values;
 *   - any other key (a tensor name, 1..159 bytes, no NUL): an object with "dtype" (string),
 *     "shape" (array of 0..4 integers) and "data_offsets" (2 integers) in any order, each once;
 *     other members are skipped (any JSON value, nested at most ST_MAX_DEPTH deep).
 * Strings: RFC 8259 (escapes incl. \uXXXX and surrogate pairs, no raw control characters,
 * valid UTF-8). Integers: JSON numbers whose exact value is an integer in [0, 2^53]. */

#define ST_MAX_DEPTH 64

/* Where a decoded string goes: buf (NULL: nowhere) up to cap bytes; n counts all of it. With
 * json set, each byte is written as cJSON prints it (escaped where JSON needs it). */
typedef struct {
    char *buf;
    size_t cap, n, w; /* w: bytes written (== n until the string outgrows cap) */
    int json, has_nul;
} sink;

static void sink_put(sink *s, const char *b, size_t k) {
    if (s->buf && s->w == s->n && k <= s->cap - s->w) {
        memcpy(s->buf + s->w, b, k);
        s->w += k;
    }
    s->n += k;
}

/* One decoded byte (a whole ASCII character, or one byte of a UTF-8 sequence). */
static void sink_byte(sink *s, unsigned char c) {
    static const char esc[] = {'b', 't', 'n', 0, 'f', 'r'}; /* \b \t \n \f \r */
    if (!c)
        s->has_nul = 1;
    if (!s->json || (c >= 0x20 && c != '"' && c != '\\')) {
        sink_put(s, (const char *)&c, 1);
        return;
    }
    char e[7] = {'\\', (char)c, 0};
    size_t k = 2;
    if (c >= 8 && c <= 13 && esc[c - 8])
        e[1] = esc[c - 8];
    else if (c < 0x20)
        k = (size_t)snprintf(e, sizeof e, "\\u%04x", c);
    sink_put(s, e, k);
}

typedef struct {
    const char *start, *p, *end; /* the header text and the cursor */
    hass_err *err;
    hass_tensor *tensors; /* pass 2: n slots; pass 1: NULL */
    span *spans;          /* pass 2: each tensor's [begin, end) and index */
    hass_tensor scratch;  /* pass 1's tensor */
    int n;                /* tensors so far */
    sink md;              /* the __metadata__ object re-serialised */
    int have_md;
} st_reader;

static hass_status bad_json(st_reader *r, const char *what) {
    return hass_err_set(r->err, HASS_STATUS_FORMAT, "header is not valid JSON (%s at byte %zu)",
                        r->p < r->end ? what : "unexpected end", (size_t)(r->p - r->start));
}

static void skip_ws(st_reader *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

/* Skips whitespace, then 1 if the next character is c (consumed). */
static int accept_char(st_reader *r, char c) {
    skip_ws(r);
    if (r->p < r->end && *r->p == c) {
        r->p++;
        return 1;
    }
    return 0;
}

static int peek(st_reader *r) {
    skip_ws(r);
    return r->p < r->end ? (unsigned char)*r->p : -1;
}

/* Length of the valid UTF-8 sequence at p (a multi-byte one), 0 if invalid. */
static int utf8_seq(const unsigned char *p, const unsigned char *end) {
    unsigned c = p[0];
    int n = c >= 0xc2 && c <= 0xdf   ? 2
            : c >= 0xe0 && c <= 0xef ? 3
            : c >= 0xf0 && c <= 0xf4 ? 4
                                     : 0;
    if (!n || end - p < n)
        return 0;
    unsigned lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
    unsigned hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (int i = 2; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

static int hex4(const char *p, const char *end, uint32_t *out) {
    if (end - p < 4)
        return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return 0;
        v = v << 4 | (uint32_t)d;
    }
    *out = v;
    return 1;
}

/* The string at r->p (its opening quote) decoded into s. */
static hass_status read_string(st_reader *r, sink *s) {
    if (r->p >= r->end || *r->p != '"')
        return bad_json(r, "expected a string");
    const char *p = ++r->p, *end = r->end;
    for (;;) {
        const char *run = p; /* plain ASCII needs no decoding: copied in one piece */
        while (p < end && (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x80 && *p != '"' &&
               *p != '\\')
            p++;
        if (p > run)
            sink_put(s, run, (size_t)(p - run));
        r->p = p;
        if (p >= end)
            return bad_json(r, "unterminated string");
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            r->p = p + 1;
            return HASS_OK;
        }
        if (c < 0x20)
            return bad_json(r, "control character in a string");
        if (c >= 0x80) {
            int k = utf8_seq((const unsigned char *)p, (const unsigned char *)end);
            if (!k)
                return bad_json(r, "invalid UTF-8 in a string");
            sink_put(s, p, (size_t)k);
            p += k;
            continue;
        }
        /* an escape */
        if (end - p < 2)
            return bad_json(r, "unterminated string");
        char e = p[1];
        p += 2;
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char val[] = "\"\\/\b\f\n\r\t";
            sink_byte(s, (unsigned char)val[simple - "\"\\/bfnrt"]);
            continue;
        }
        uint32_t cp, lo;
        if (e != 'u' || !hex4(p, end, &cp))
            return bad_json(r, "bad escape in a string");
        p += 4;
        if (cp >= 0xdc00 && cp <= 0xdfff)
            return bad_json(r, "lone low surrogate in a string");
        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !hex4(p + 2, end, &lo) ||
                lo < 0xdc00 || lo > 0xdfff)
                return bad_json(r, "lone high surrogate in a string");
            p += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        if (cp < 0x80) {
            sink_byte(s, (unsigned char)cp);
            continue;
        }
        char u[4];
        size_t k;
        if (cp < 0x800) {
            u[0] = (char)(0xc0 | cp >> 6);
            k = 2;
        } else if (cp < 0x10000) {
            u[0] = (char)(0xe0 | cp >> 12);
            k = 3;
        } else {
            u[0] = (char)(0xf0 | cp >> 18);
            k = 4;
        }
        for (size_t i = 1; i < k; i++)
            u[i] = (char)(0x80 | ((cp >> (6 * (k - 1 - i))) & 0x3f));
        sink_put(s, u, k);
    }
}

/* The number at r->p; *is_uint and *v (is_uint NULL: only checked): whether its exact value is
 * an integer in [0, 2^53] (so "16", "16.0", "1.6e1" and "-0" are integers, "0.5", "-1" and
 * "1e300" are not). */
static hass_status read_number(st_reader *r, int *is_uint, uint64_t *v) {
    const char *p = r->p, *end = r->end;
    int neg = p < end && *p == '-';
    p += neg;
    const char *ib = p;
    if (p < end && *p == '0')
        p++;
    else if (p < end && *p >= '1' && *p <= '9')
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    else
        return bad_json(r, "bad number");
    const char *ie = p, *fb = p, *fe = p;
    if (p < end && *p == '.') {
        fb = ++p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        fe = p;
        if (fe == fb) {
            r->p = p;
            return bad_json(r, "bad number");
        }
    }
    int64_t ex = 0; /* saturates far beyond any digit count a header can hold */
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        int es = p < end && *p == '-' ? -1 : 1;
        p += p < end && (*p == '-' || *p == '+');
        if (p >= end || *p < '0' || *p > '9') {
            r->p = p;
            return bad_json(r, "bad number");
        }
        for (; p < end && *p >= '0' && *p <= '9'; p++)
            ex = ex < 1000000000000000 ? ex * 10 + (*p - '0') : ex;
        ex *= es;
    }
    r->p = p;
    if (!is_uint) /* a skipped value */
        return HASS_OK;
    /* the digits D = int part, fraction part; value = D * 10^(ex - fraction length) */
    int64_t ni = ie - ib, nd = ni + (fe - fb), first = 0, last = nd - 1;
#define DIGIT(i) ((i) < ni ? ib[(i)] : fb[(i)-ni])
    while (first < nd && DIGIT(first) == '0')
        first++;
    *is_uint = 1;
    *v = 0;
    if (first == nd) /* zero, whatever its sign */
        return HASS_OK;
    while (DIGIT(last) == '0')
        last--;
    int64_t k = ex - (fe - fb) + (nd - 1 - last), len = last - first + 1;
    if (neg || k < 0 || len + k > 16) { /* 2^53 has 16 digits */
        *is_uint = 0;
        return HASS_OK;
    }
    uint64_t x = 0;
    for (int64_t i = first; i <= last; i++)
        x = x * 10 + (uint64_t)(DIGIT(i) - '0');
#undef DIGIT
    for (int64_t i = 0; i < k; i++)
        x *= 10;
    *is_uint = x <= ((uint64_t)1 << 53);
    *v = x;
    return HASS_OK;
}

/* Any JSON value at r->p, checked and dropped. */
static hass_status skip_value(st_reader *r, int depth) {
    int c = peek(r);
    if (c == '"') {
        sink none = {0};
        return read_string(r, &none);
    }
    if (c == '{' || c == '[') {
        if (depth >= ST_MAX_DEPTH)
            return bad_json(r, "nested too deeply");
        char close = c == '{' ? '}' : ']';
        r->p++;
        if (accept_char(r, close))
            return HASS_OK;
        do {
            hass_status st;
            if (c == '{') {
                sink none = {0};
                skip_ws(r);
                if ((st = read_string(r, &none)))
                    return st;
                if (!accept_char(r, ':'))
                    return bad_json(r, "expected ':'");
            }
            if ((st = skip_value(r, depth + 1)))
                return st;
        } while (accept_char(r, ','));
        return accept_char(r, close) ? HASS_OK : bad_json(r, "expected ',' or a closing bracket");
    }
    const char *lit = c == 't' ? "true" : c == 'f' ? "false" : c == 'n' ? "null" : NULL;
    if (!lit)
        return read_number(r, NULL, NULL);
    size_t n = strlen(lit);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, lit, n))
        return bad_json(r, "bad literal");
    r->p += n;
    return HASS_OK;
}

/* An array of integers (into v[0..cap), the rest counted in *n); *bad_at: the index of the
 * first element that is not an integer in [0, 2^53] (then the array is not read further), or
 * -1. Not an array: *n = -1. */
static hass_status read_uints(st_reader *r, uint64_t *v, int cap, int *n, int *bad_at) {
    *n = 0;
    *bad_at = -1;
    if (peek(r) != '[') {
        *n = -1;
        return HASS_OK;
    }
    r->p++;
    if (accept_char(r, ']'))
        return HASS_OK;
    do {
        int c = peek(r), u = 0;
        uint64_t x = 0;
        if (c == '-' || (c >= '0' && c <= '9')) {
            hass_status st = read_number(r, &u, &x);
            if (st)
                return st;
        }
        if (!u) {
            *bad_at = *n;
            return HASS_OK;
        }
        if (*n < cap)
            v[*n] = x;
        (*n)++;
    } while (accept_char(r, ','));
    return accept_char(r, ']') ? HASS_OK : bad_json(r, "expected ',' or ']'");
}

static hass_status needs_fields(st_reader *r, const char *name) {
    return hass_err_set(r->err, HASS_STATUS_FORMAT,
                        "tensor %s: needs string dtype, array shape, array data_offsets", name);
}

/* The value of tensor t's entry (t->name set, the rest zero) -> t's dtype, shape, nbytes and
 * its data's [off[0], off[1]). */
static hass_status read_tensor(st_reader *r, hass_tensor *t, uint64_t off[2]) {
    const char *name = t->name;
    int c = peek(r);
    if (c < 0)
        return bad_json(r, "unexpected end");
    if (c != '{')
        return hass_err_set(r->err, HASS_STATUS_FORMAT, "tensor %s: entry is not an object", name);
    r->p++;
    static const char *const keys[] = {"dtype", "shape", "data_offsets"};
    int seen[3] = {0, 0, 0}, n, bad_at;
    char dname[16] = "";
    uint64_t shape[HASS_MAX_DIMS];
    hass_status st;
    if (!accept_char(r, '}')) {
        do {
            char key[16];
            sink ks = {key, sizeof key - 1, 0, 0, 0, 0};
            skip_ws(r);
            if ((st = read_string(r, &ks)))
                return st;
            key[ks.w] = 0;
            if (!accept_char(r, ':'))
                return bad_json(r, "expected ':'");
            int k = 0;
            while (k < 3 && (ks.n != ks.w || ks.has_nul || strcmp(key, keys[k])))
                k++;
            if (k < 3 && seen[k]++)
                return hass_err_set(r->err, HASS_STATUS_FORMAT, "tensor %s: \"%s\" appears twice",
                                    name, keys[k]);
            if (k == 0) {
                sink ds = {dname, sizeof dname - 1, 0, 0, 0, 0};
                if (peek(r) != '"')
                    return needs_fields(r, name);
                if ((st = read_string(r, &ds)))
                    return st;
                dname[ds.w] = 0;
                if (ds.n != ds.w || ds.has_nul || !dtype_from_name(dname, &t->dtype))
                    return hass_err_set(r->err, HASS_STATUS_UNSUPPORTED,
                                        "tensor %s: dtype %.16s not supported (F32, F16, BF16, "
                                        "I32, I64, U8)",
                                        name, dname);
            } else if (k == 1) {
                if ((st = read_uints(r, shape, HASS_MAX_DIMS, &n, &bad_at)))
                    return st;
                if (n < 0)
                    return needs_fields(r, name);
                if (bad_at >= 0)
                    return hass_err_set(r->err, HASS_STATUS_FORMAT,
                                        "tensor %s: shape[%d] is not a non-negative integer", name,
                                        bad_at);
                if (n > HASS_MAX_DIMS)
                    return hass_err_set(r->err, HASS_STATUS_UNSUPPORTED,
                                        "tensor %s: %d dims (at most %d)", name, n, HASS_MAX_DIMS);
                t->ndim = n;
            } else if (k == 2) {
                if ((st = read_uints(r, off, 2, &n, &bad_at)))
                    return st;
                if (n < 0)
                    return needs_fields(r, name);
                if (bad_at >= 0 || n != 2)
                    return hass_err_set(r->err, HASS_STATUS_FORMAT,
                                        "tensor %s: data_offsets must be two non-negative "
                                        "integers",
                                        name);
            } else if ((st = skip_value(r, 2))) {
                return st;
            }
        } while (accept_char(r, ','));
        if (!accept_char(r, '}'))
            return bad_json(r, "expected ',' or '}'");
    }
    if (!seen[0] || !seen[1] || !seen[2])
        return needs_fields(r, name);
    size_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (!hass_mul_ok(numel, (size_t)shape[i], &numel))
            return hass_err_set(r->err, HASS_STATUS_FORMAT, "tensor %s: shape overflows", name);
        t->shape[i] = (int64_t)shape[i];
    }
    if (off[1] < off[0])
        return hass_err_set(r->err, HASS_STATUS_FORMAT,
                            "tensor %s: data_offsets end %llu < begin %llu", name,
                            (unsigned long long)off[1], (unsigned long long)off[0]);
    size_t need = elem_size(t->dtype);
    if (!hass_mul_ok(numel, need, &need))
        return hass_err_set(r->err, HASS_STATUS_FORMAT, "tensor %s: byte size overflows", name);
    if ((uint64_t)need != off[1] - off[0])
        return hass_err_set(r->err, HASS_STATUS_FORMAT,
                            "tensor %s: %s x %zu elements = %zu bytes, but data_offsets span %llu",
                            name, dname, numel, need, (unsigned long long)(off[1] - off[0]));
    t->nbytes = need;
    return HASS_OK;
}

/* The value of "__metadata__": an object of strings, re-serialised into r->md. */
static hass_status read_metadata(st_reader *r) {
    if (peek(r) != '{')
        return r->p < r->end
                   ? hass_err_set(r->err, HASS_STATUS_FORMAT, "__metadata__ is not an object")
                   : bad_json(r, "unexpected end");
    if (r->have_md++)
        return hass_err_set(r->err, HASS_STATUS_FORMAT, "__metadata__ appears twice");
    r->p++;
    sink_put(&r->md, "{", 1);
    if (!accept_char(r, '}')) {
        do {
            for (int v = 0; v < 2; v++) { /* key, value */
                hass_status st;
                if (v && !accept_char(r, ':'))
                    return bad_json(r, "expected ':'");
                if (peek(r) != '"')
                    return v ? hass_err_set(r->err, HASS_STATUS_FORMAT,
                                            "__metadata__ has a value that is not a string")
                             : bad_json(r, "expected a string");
                sink_put(&r->md, "\"", 1);
                if ((st = read_string(r, &r->md)))
                    return st;
                sink_put(&r->md, v ? "\"" : "\":", v ? 1 : 2);
            }
            if (accept_char(r, ','))
                sink_put(&r->md, ",", 1);
            else
                break;
        } while (1);
        if (!accept_char(r, '}'))
            return bad_json(r, "expected ',' or '}'");
    }
    sink_put(&r->md, "}", 1);
    return HASS_OK;
}

/* The whole header: pass 1 (r->tensors NULL) checks and counts, pass 2 fills. */
static hass_status read_header(st_reader *r) {
    r->p = r->start;
    r->n = 0;
    r->have_md = 0;
    r->md.n = r->md.w = 0;
    if (peek(r) != '{')
        return hass_err_set(r->err, HASS_STATUS_FORMAT, "header is not a JSON object");
    r->p++;
    if (!accept_char(r, '}')) {
        do {
            hass_tensor *t = &r->scratch; /* the key first: "__metadata__" is no tensor */
            memset(t, 0, sizeof *t);
            sink ns = {t->name, sizeof t->name - 1, 0, 0, 0, 0};
            skip_ws(r);
            hass_status st = read_string(r, &ns);
            if (st)
                return st;
            t->name[ns.w] = 0;
            if (!accept_char(r, ':'))
                return bad_json(r, "expected ':'");
            if (ns.n == 12 && !ns.has_nul && !strcmp(t->name, "__metadata__")) {
                if ((st = read_metadata(r)))
                    return st;
                continue;
            }
            if (ns.n != ns.w)
                return hass_err_set(r->err, HASS_STATUS_FORMAT,
                                    "tensor name too long (%zu bytes): %.40s...", ns.n, t->name);
            if (!ns.n)
                return hass_err_set(r->err, HASS_STATUS_FORMAT, "empty tensor name");
            if (ns.has_nul)
                return hass_err_set(r->err, HASS_STATUS_FORMAT,
                                    "tensor name with a NUL character: %.40s", t->name);
            uint64_t off[2];
            if (r->tensors) {
                memcpy(&r->tensors[r->n], t, sizeof *t);
                t = &r->tensors[r->n];
            }
            if ((st = read_tensor(r, t, off)))
                return st;
            if (r->spans)
                r->spans[r->n] = (span){off[0], off[1], r->n};
            r->n++;
        } while (accept_char(r, ','));
        if (!accept_char(r, '}'))
            return bad_json(r, "expected ',' or '}'");
    }
    skip_ws(r);
    if (r->p < r->end)
        return hass_err_set(r->err, HASS_STATUS_FORMAT, "garbage after the JSON header");
    return HASS_OK;
}

hass_status hass_safetensors_parse(hass_safetensors *st, const uint8_t *data, size_t size,
                                   hass_err *err) {
    memset(st, 0, sizeof *st);
    if (size < 8)
        return hass_err_set(err, HASS_STATUS_FORMAT, "file too short (%zu bytes) for a header",
                            size);
    uint64_t hlen = rd_u64le(data);
    if (hlen >= ST_MAX_HEADER)
        return hass_err_set(err, HASS_STATUS_FORMAT, "header length %llu too large (limit %u)",
                            (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen > size - 8)
        return hass_err_set(err, HASS_STATUS_FORMAT,
                            "header length %llu exceeds the file (%zu bytes)",
                            (unsigned long long)hlen, size);
    st_reader r;
    memset(&r, 0, sizeof r);
    r.start = (const char *)data + 8;
    r.end = r.start + hlen;
    r.err = err;
    r.md.json = 1;
    hass_status rc = read_header(&r); /* pass 1: checks and counts */
    if (rc)
        return rc;
    /* n < hlen: each entry took header bytes, so these sizes are file-bounded */
    int n = r.n;
    span *spans = calloc(n ? (size_t)n : 1, sizeof *spans);
    const hass_tensor **names = NULL;
    st->tensors = calloc(n ? (size_t)n : 1, sizeof *st->tensors);
    if (r.have_md)
        st->metadata_json = malloc(r.md.n + 1);
    if (!spans || !st->tensors || (r.have_md && !st->metadata_json)) {
        rc = hass_err_set(err, HASS_STATUS_OOM, "out of memory for %d tensors", n);
        goto done;
    }
    r.tensors = st->tensors;
    r.spans = spans;
    r.md.buf = st->metadata_json;
    r.md.cap = r.md.n;
    rc = read_header(&r); /* pass 2: the same text, into arrays of the counted size */
    HASS_ASSERT(rc == HASS_OK && r.n == n && r.md.w == r.md.n);
    if (st->metadata_json)
        st->metadata_json[r.md.w] = 0;
    names = malloc((n ? (size_t)n : 1) * sizeof *names);
    if (!names) {
        rc = hass_err_set(err, HASS_STATUS_OOM, "out of memory for %d tensors", n);
        goto done;
    }
    for (int i = 0; i < n; i++)
        names[i] = &st->tensors[i];
    qsort(names, (size_t)n, sizeof *names, cmp_name_ptr);
    for (int i = 1; i < n; i++)
        if (!strcmp(names[i]->name, names[i - 1]->name)) {
            rc = hass_err_set(err, HASS_STATUS_FORMAT, "duplicate tensor name %s", names[i]->name);
            goto done;
        }
    free(names);
    names = NULL;
    /* Tile check: sorted by offset, each tensor starts where the previous one ended. */
    size_t data_start = 8 + (size_t)hlen, data_size = size - data_start;
    qsort(spans, (size_t)n, sizeof *spans, cmp_span);
    uint64_t pos = 0;
    for (int i = 0; i < n; i++) {
        hass_tensor *t = &st->tensors[spans[i].idx];
        if (spans[i].end > data_size) {
            rc = hass_err_set(err, HASS_STATUS_FORMAT,
                              "tensor %s: data_offsets [%llu, %llu) past the end of the data "
                              "(%zu bytes)",
                              t->name, (unsigned long long)spans[i].begin,
                              (unsigned long long)spans[i].end, data_size);
            goto done;
        }
        if (spans[i].begin != pos) {
            rc = hass_err_set(err, HASS_STATUS_FORMAT, "tensor %s: data %s at %llu (expected %llu)",
                              t->name, spans[i].begin < pos ? "overlaps" : "leaves a hole",
                              (unsigned long long)spans[i].begin, (unsigned long long)pos);
            goto done;
        }
        if (t->nbytes && (data_start + spans[i].begin) % elem_size(t->dtype)) {
            rc = hass_err_set(err, HASS_STATUS_FORMAT,
                              "tensor %s: data at file offset %llu is not %zu-byte aligned",
                              t->name, (unsigned long long)(data_start + spans[i].begin),
                              elem_size(t->dtype));
            goto done;
        }
        t->data = data + data_start + spans[i].begin;
        pos = spans[i].end;
    }
    if (pos != data_size) {
        rc = hass_err_set(err, HASS_STATUS_FORMAT, "%llu unindexed bytes after the last tensor",
                          (unsigned long long)(data_size - pos));
        goto done;
    }
    /* Into file order, in place: slot i takes tensor spans[i].idx (each cycle of the
     * permutation is followed once; a placed slot's idx becomes -1). */
    hass_tensor *t = st->tensors;
    for (int i = 0; i < n; i++) {
        if (spans[i].idx < 0)
            continue;
        hass_tensor first = t[i];
        for (int j = i;;) {
            int k = spans[j].idx;
            spans[j].idx = -1;
            if (k == i) {
                t[j] = first;
                break;
            }
            t[j] = t[k];
            j = k;
        }
    }
    st->n_tensors = n;
done:
    free(spans);
    free(names);
    if (rc)
        hass_safetensors_close(st); /* st->mf is still empty here */
    return rc;
}

hass_status hass_safetensors_open(hass_safetensors *st, const char *path, hass_err *err) {
    memset(st, 0, sizeof *st);
    hass_mapfile mf;
    hass_status rc = hass_mapfile_open(&mf, path, err);
    if (rc)
        return rc;
    rc = hass_safetensors_parse(st, mf.data, mf.size, err);
    if (rc) {
        hass_mapfile_close(&mf);
        return hass_err_prefix(err, rc, path);
    }
    st->mf = mf;
    return HASS_OK;
}

void hass_safetensors_close(hass_safetensors *st) {
    if (!st)
        return;
    hass_mapfile_close(&st->mf);
    free(st->tensors);
    free(st->metadata_json);
    memset(st, 0, sizeof *st);
}

const hass_tensor *hass_safetensors_find(const hass_safetensors *st, const char *name) {
    for (int i = 0; i < st->n_tensors; i++)
        if (!strcmp(st->tensors[i].name, name))
            return &st->tensors[i];
    return NULL;
}

/* ---------------- writer ---------------- */

/* Order for the data section: larger elements first (keeps every tensor aligned), stable. */
static const hass_tensor *const *write_order(const hass_tensor *tensors, int n) {
    const hass_tensor **o = malloc((n ? (size_t)n : 1) * sizeof *o);
    if (!o)
        return NULL;
    int k = 0;
    static const size_t sizes[] = {8, 4, 2, 1};
    for (int s = 0; s < 4; s++)
        for (int i = 0; i < n; i++)
            if (elem_size(tensors[i].dtype) == sizes[s])
                o[k++] = &tensors[i];
    return o;
}

static hass_status check_write_tensors(const hass_tensor *tensors, int n, hass_err *err) {
    for (int i = 0; i < n; i++) {
        const hass_tensor *t = &tensors[i];
        if (!dtype_to_name(t->dtype))
            return hass_err_set(err, HASS_STATUS_UNSUPPORTED,
                                "tensor %s: dtype %s cannot be "
                                "written to safetensors",
                                t->name, hass_dtype_name(t->dtype));
        if (!t->name[0] || !strcmp(t->name, "__metadata__") || !memchr(t->name, 0, sizeof t->name))
            return hass_err_set(err, HASS_STATUS_ARG, "tensor %d: invalid name", i);
        if (t->ndim < 0 || t->ndim > HASS_MAX_DIMS)
            return hass_err_set(err, HASS_STATUS_ARG, "tensor %s: ndim %d", t->name, t->ndim);
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++)
            if (t->shape[d] < 0 || !hass_mul_ok(numel, (size_t)t->shape[d], &numel))
                return hass_err_set(err, HASS_STATUS_ARG, "tensor %s: bad shape", t->name);
        size_t nb;
        if (!hass_mul_ok(numel, elem_size(t->dtype), &nb) || nb != t->nbytes)
            return hass_err_set(err, HASS_STATUS_SHAPE,
                                "tensor %s: nbytes %zu does not match dtype and shape", t->name,
                                t->nbytes);
        if (nb && !t->data)
            return hass_err_set(err, HASS_STATUS_ARG, "tensor %s: no data", t->name);
        for (int j = 0; j < i; j++)
            if (!strcmp(tensors[j].name, t->name))
                return hass_err_set(err, HASS_STATUS_ARG, "duplicate tensor name %s", t->name);
    }
    return HASS_OK;
}

/* Builds the JSON header text (caller frees with cJSON_free). */
static hass_status build_header(const hass_tensor *const *order, int n, const char *metadata_json,
                                char **out, hass_err *err) {
    *out = NULL;
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    hass_status rc = HASS_OK;
    if (metadata_json) {
        cJSON *m = cJSON_Parse(metadata_json);
        int ok = cJSON_IsObject(m);
        for (const cJSON *e = ok ? m->child : NULL; e; e = e->next)
            ok &= cJSON_IsString(e);
        if (!ok) {
            cJSON_Delete(m);
            rc = hass_err_set(err, HASS_STATUS_ARG,
                              "metadata must be a JSON object of string values");
            goto done;
        }
        cJSON_AddItemToObject(root, "__metadata__", m);
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const hass_tensor *t = order[i];
        cJSON *e = cJSON_CreateObject(), *shape = cJSON_CreateArray(), *offs = cJSON_CreateArray();
        if (!e || !shape || !offs) {
            cJSON_Delete(e);
            cJSON_Delete(shape);
            cJSON_Delete(offs);
            rc = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
            goto done;
        }
        cJSON_AddItemToObject(root, t->name, e);
        cJSON_AddStringToObject(e, "dtype", dtype_to_name(t->dtype));
        for (int d = 0; d < t->ndim; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        cJSON_AddItemToObject(e, "shape", shape);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        if (!hass_add_ok(off, t->nbytes, &off) || off > ((size_t)1 << 53)) {
            rc = hass_err_set(err, HASS_STATUS_RANGE, "total size too large");
            goto done;
        }
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToObject(e, "data_offsets", offs);
    }
    *out = cJSON_PrintUnformatted(root);
    if (!*out)
        rc = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
done:
    cJSON_Delete(root);
    return rc;
}

hass_status hass_safetensors_write(const char *path, const hass_tensor *tensors, int n,
                                   const char *metadata_json, hass_err *err) {
    if (n < 0 || (n > 0 && !tensors))
        return hass_err_set(err, HASS_STATUS_ARG, "bad tensor list");
    hass_status rc = check_write_tensors(tensors, n, err);
    if (rc)
        return rc;
    const hass_tensor *const *order = write_order(tensors, n);
    if (!order)
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    char *json = NULL;
    rc = build_header(order, n, metadata_json, &json, err);
    if (rc) {
        free((void *)order);
        return rc;
    }
    size_t jlen = strlen(json), hlen = (jlen + 7) & ~(size_t)7;
    char *hdr = malloc(8 + hlen);
    if (!hdr) {
        cJSON_free(json);
        free((void *)order);
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    }
    for (int i = 0; i < 8; i++)
        hdr[i] = (char)(((uint64_t)hlen >> (8 * i)) & 0xff);
    memcpy(hdr + 8, json, jlen);
    memset(hdr + 8 + jlen, ' ', hlen - jlen);
    cJSON_free(json);

    hass_afile f;
    rc = hass_afile_open(&f, path, err);
    if (!rc)
        rc = hass_afile_write(&f, hdr, 8 + hlen, err);
    for (int i = 0; i < n && !rc; i++)
        rc = hass_afile_write(&f, order[i]->data, order[i]->nbytes, err);
    if (!rc)
        rc = hass_afile_commit(&f, err);
    if (rc)
        hass_afile_abort(&f);
    free(hdr);
    free((void *)order);
    return rc;
}

/* ---------------- sharded directory ---------------- */

static int cmp_name_key(const void *key, const void *elem) {
    const hass_tensor *const *t = elem;
    return strcmp((const char *)key, (*t)->name);
}

const hass_tensor *hass_st_set_find(const hass_st_set *set, const char *name) {
    if (!set->n_tensors)
        return NULL;
    const hass_tensor *const *p =
        bsearch(name, set->by_name, (size_t)set->n_tensors, sizeof *set->by_name, cmp_name_key);
    return p ? *p : NULL;
}

void hass_st_set_close(hass_st_set *set) {
    if (!set)
        return;
    for (int i = 0; i < set->n_shards; i++) {
        hass_safetensors_close(&set->shards[i]);
        free(set->shard_files ? set->shard_files[i] : NULL);
    }
    free(set->shards);
    free(set->shard_files);
    free((void *)set->by_name);
    cJSON_free(set->index_metadata_json);
    memset(set, 0, sizeof *set);
}

/* Opens shard `file` (relative to dir) as set->shards[set->n_shards++]. */
static hass_status add_shard(hass_st_set *set, const char *dir, const char *file, hass_err *err) {
    if (!file[0] || strchr(file, '/') || !strcmp(file, "..") || !strcmp(file, "."))
        return hass_err_set(err, HASS_STATUS_FORMAT, "bad shard file name '%.80s'", file);
    char path[1024];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, file) >= sizeof path)
        return hass_err_set(err, HASS_STATUS_ARG, "path too long");
    int i = set->n_shards;
    set->shard_files[i] = strdup(file);
    if (!set->shard_files[i])
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    set->n_shards++;
    return hass_safetensors_open(&set->shards[i], path, err);
}

static hass_status build_name_index(hass_st_set *set, hass_err *err) {
    size_t total = 0;
    for (int i = 0; i < set->n_shards; i++)
        total += (size_t)set->shards[i].n_tensors;
    if (total > 0x7fffffff)
        return hass_err_set(err, HASS_STATUS_RANGE, "too many tensors");
    const hass_tensor **idx = malloc((total ? total : 1) * sizeof *idx);
    if (!idx)
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    size_t k = 0;
    for (int i = 0; i < set->n_shards; i++)
        for (int j = 0; j < set->shards[i].n_tensors; j++)
            idx[k++] = &set->shards[i].tensors[j];
    qsort(idx, total, sizeof *idx, cmp_name_ptr);
    set->by_name = idx;
    set->n_tensors = (int)total;
    for (size_t i = 1; i < total; i++)
        if (!strcmp(idx[i]->name, idx[i - 1]->name))
            return hass_err_set(err, HASS_STATUS_FORMAT, "tensor %s appears in two shards",
                                idx[i]->name);
    return HASS_OK;
}

static hass_status open_index(hass_st_set *set, const char *dir, const char *index_path,
                              hass_err *err) {
    char *text = NULL;
    size_t len = 0;
    hass_status rc = hass_read_file(index_path, &text, &len, err);
    if (rc)
        return rc;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        cJSON_Delete(root);
        return hass_err_set(err, HASS_STATUS_FORMAT, "%s: no \"weight_map\" object", index_path);
    }
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "metadata");
    if (meta)
        set->index_metadata_json = cJSON_PrintUnformatted(meta);
    int n = cJSON_GetArraySize(wm);
    set->shards = calloc((size_t)n + 1, sizeof *set->shards);
    set->shard_files = calloc((size_t)n + 1, sizeof *set->shard_files);
    if (!set->shards || !set->shard_files) {
        cJSON_Delete(root);
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    }
    for (const cJSON *e = wm->child; e && !rc; e = e->next) {
        if (!cJSON_IsString(e)) {
            rc = hass_err_set(err, HASS_STATUS_FORMAT, "%s: weight_map[%s] is not a string",
                              index_path, e->string);
            break;
        }
        int seen = 0;
        for (int i = 0; i < set->n_shards && !seen; i++)
            seen = !strcmp(set->shard_files[i], e->valuestring);
        if (!seen)
            rc = add_shard(set, dir, e->valuestring, err);
    }
    if (!rc)
        rc = build_name_index(set, err);
    for (const cJSON *e = wm->child; e && !rc; e = e->next) {
        const hass_tensor *t = hass_st_set_find(set, e->string);
        int in_shard = 0;
        for (int i = 0; t && i < set->n_shards && !in_shard; i++)
            if (!strcmp(set->shard_files[i], e->valuestring))
                in_shard = hass_safetensors_find(&set->shards[i], e->string) == t;
        if (!in_shard)
            rc = hass_err_set(err, HASS_STATUS_FORMAT, "tensor %s: not found in shard %s",
                              e->string, e->valuestring);
    }
    cJSON_Delete(root);
    return rc;
}

hass_status hass_safetensors_open_dir(hass_st_set *set, const char *dir, hass_err *err) {
    memset(set, 0, sizeof *set);
    char path[1024];
    if ((size_t)snprintf(path, sizeof path, "%s/model.safetensors", dir) >= sizeof path)
        return hass_err_set(err, HASS_STATUS_ARG, "path too long");
    hass_status rc;
    if (hass_file_exists(path)) {
        set->shards = calloc(1, sizeof *set->shards);
        set->shard_files = calloc(1, sizeof *set->shard_files);
        rc = (set->shards && set->shard_files)
                 ? add_shard(set, dir, "model.safetensors", err)
                 : hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        if (!rc)
            rc = build_name_index(set, err);
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        if (!hass_file_exists(path))
            return hass_err_set(err, HASS_STATUS_NOTFOUND,
                                "%s: no model.safetensors or model.safetensors.index.json", dir);
        rc = open_index(set, dir, path, err);
    }
    if (rc)
        hass_st_set_close(set);
    return rc;
}

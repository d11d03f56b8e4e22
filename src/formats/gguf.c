/*
 * gguf.c — GGUF v3 (and v2) reader and v3 writer: header, metadata key/values, tensor infos,
 * data section.
 *
 * Layout (all little-endian): "GGUF", u32 version, u64 n_tensors, u64 n_kv,
 *   n_kv x { string key, u32 type, value },
 *   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset },
 *   padding to general.alignment (default 32), data section.
 * A string is u64 length + bytes (no NUL). An array is u32 element type + u64 count + elements.
 *
 * Every count and length is checked against the bytes that remain before anything is read or
 * allocated, so no allocation exceeds a small multiple of the file size. Strings are copied
 * (NUL-terminated) into a block pool owned by the hass_gguf; numeric arrays and tensor data stay
 * borrowed from the mapping.
 *
 * The writer produces the same layout (version 3, tensor data at offsets padded to the
 * alignment, each tensor padded too, as llama.cpp's gguf-py writes it) after checking every key,
 * value and tensor, and streams the tensors one at a time into a temp file renamed at the end.
 */
#include "formats/formats.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_ALIGNMENT (1u << 20)
#define KV_MIN_BYTES 13     /* key length (8) + type (4) + a 1-byte value */
#define TENSOR_MIN_BYTES 32 /* name length (8) + n_dims (4) + ne[0] (8) + type (4) + offset (8) */

/* ---- string pool: blocks freed together (by hass_gguf_close / hass_gguf_kvs_free) ---- */
typedef struct pool_block {
    struct pool_block *next;
    size_t cap, used;
    unsigned char data[]; /* 8-byte aligned: follows a pointer and two size_t */
} pool_block;

static void *pool_alloc(void **owned, size_t size) {
    pool_block *b = *owned;
    size = (size + 7) & ~(size_t)7;
    if (!b || b->cap - b->used < size) {
        size_t cap = size > (1u << 16) ? size : (1u << 16);
        b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->next = *owned;
        b->cap = cap;
        b->used = 0;
        *owned = b;
    }
    void *p = b->data + b->used;
    b->used += size;
    return p;
}

static void pool_free(void *owned) {
    for (pool_block *b = owned; b;) {
        pool_block *next = b->next;
        free(b);
        b = next;
    }
}

/* ---- bounded little-endian reader ---- */
typedef struct {
    const uint8_t *p;
    size_t n, pos;
} reader;

static size_t left(const reader *r) {
    return r->n - r->pos;
}

static int rd_uint(reader *r, int nbytes, uint64_t *out) {
    if (left(r) < (size_t)nbytes)
        return 0;
    uint64_t v = 0;
    for (int i = nbytes - 1; i >= 0; i--)
        v = (v << 8) | r->p[r->pos + (size_t)i];
    r->pos += (size_t)nbytes;
    *out = v;
    return 1;
}

static int rd_u32(reader *r, uint32_t *out) {
    uint64_t v;
    if (!rd_uint(r, 4, &v))
        return 0;
    *out = (uint32_t)v;
    return 1;
}

/* Reads a GGUF string into a NUL-terminated pool copy. */
static hass_status rd_string(hass_gguf *g, reader *r, const char *what, char **out, size_t *len,
                             hass_err *err) {
    uint64_t n;
    if (!rd_uint(r, 8, &n))
        return hass_err_set(err, HASS_STATUS_FORMAT, "%s: truncated string length at %zu", what,
                            r->pos);
    if (n > left(r))
        return hass_err_set(err, HASS_STATUS_FORMAT,
                            "%s: string length %llu past the end (%zu bytes left)", what,
                            (unsigned long long)n, left(r));
    char *s = pool_alloc(&g->owned, (size_t)n + 1);
    if (!s)
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    memcpy(s, r->p + r->pos, (size_t)n);
    s[n] = 0;
    r->pos += (size_t)n;
    *out = s;
    *len = (size_t)n;
    return HASS_OK;
}

static size_t scalar_size(uint32_t type) {
    switch (type) {
    case HASS_GGUF_U8:
    case HASS_GGUF_I8:
    case HASS_GGUF_BOOL:
        return 1;
    case HASS_GGUF_U16:
    case HASS_GGUF_I16:
        return 2;
    case HASS_GGUF_U32:
    case HASS_GGUF_I32:
    case HASS_GGUF_F32:
        return 4;
    case HASS_GGUF_U64:
    case HASS_GGUF_I64:
    case HASS_GGUF_F64:
        return 8;
    default:
        return 0;
    }
}

static void decode_scalar(hass_gguf_kv *kv, uint64_t raw) {
    switch (kv->type) {
    case HASS_GGUF_I8:
        kv->v.i = (int8_t)(uint8_t)raw;
        break;
    case HASS_GGUF_I16:
        kv->v.i = (int16_t)(uint16_t)raw;
        break;
    case HASS_GGUF_I32:
        kv->v.i = (int32_t)(uint32_t)raw;
        break;
    case HASS_GGUF_I64:
        kv->v.i = (int64_t)raw;
        break;
    case HASS_GGUF_F32: {
        uint32_t u = (uint32_t)raw;
        float f;
        memcpy(&f, &u, 4);
        kv->v.f = f;
        break;
    }
    case HASS_GGUF_F64:
        memcpy(&kv->v.f, &raw, 8);
        break;
    default:
        kv->v.u = raw;
    }
}

static hass_status parse_array(hass_gguf *g, reader *r, hass_gguf_kv *kv, hass_err *err) {
    uint32_t at;
    uint64_t n;
    if (!rd_u32(r, &at) || !rd_uint(r, 8, &n))
        return hass_err_set(err, HASS_STATUS_FORMAT, "key %s: truncated array header", kv->key);
    if (at == HASS_GGUF_ARRAY)
        return hass_err_set(err, HASS_STATUS_UNSUPPORTED, "key %s: nested arrays not supported",
                            kv->key);
    kv->arr_type = (hass_gguf_type)at;
    kv->arr_n = n;
    if (at == HASS_GGUF_STRING) {
        if (n > left(r) / 8)
            return hass_err_set(err, HASS_STATUS_FORMAT,
                                "key %s: %llu strings cannot fit in %zu bytes", kv->key,
                                (unsigned long long)n, left(r));
        const char **strs = pool_alloc(&g->owned, (size_t)n * sizeof *strs);
        uint32_t *lens = pool_alloc(&g->owned, (size_t)n * sizeof *lens);
        if (!strs || !lens)
            return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        for (uint64_t i = 0; i < n; i++) {
            char *s;
            size_t len;
            hass_status rc = rd_string(g, r, kv->key, &s, &len, err);
            if (rc)
                return rc;
            if (len > UINT32_MAX)
                return hass_err_set(err, HASS_STATUS_FORMAT, "key %s: string too long", kv->key);
            strs[i] = s;
            lens[i] = (uint32_t)len;
        }
        kv->arr_strs = strs;
        kv->arr_lens = lens;
        return HASS_OK;
    }
    size_t es = scalar_size(at);
    if (!es)
        return hass_err_set(err, HASS_STATUS_FORMAT, "key %s: unknown array element type %u",
                            kv->key, at);
    if (n > left(r) / es)
        return hass_err_set(err, HASS_STATUS_FORMAT,
                            "key %s: array of %llu x %zu bytes past the end (%zu bytes left)",
                            kv->key, (unsigned long long)n, es, left(r));
    kv->arr_data = r->p + r->pos;
    r->pos += (size_t)n * es;
    return HASS_OK;
}

static hass_status parse_kv(hass_gguf *g, reader *r, hass_gguf_kv *kv, int64_t i, hass_err *err) {
    char *key;
    size_t klen;
    char what[48];
    snprintf(what, sizeof what, "kv %lld key", (long long)i);
    hass_status rc = rd_string(g, r, what, &key, &klen, err);
    if (rc)
        return rc;
    kv->key = key;
    uint32_t type;
    if (!rd_u32(r, &type))
        return hass_err_set(err, HASS_STATUS_FORMAT, "key %s: truncated type", key);
    kv->type = (hass_gguf_type)type;
    if (type == HASS_GGUF_STRING) {
        char *s;
        rc = rd_string(g, r, key, &s, &kv->str_len, err);
        kv->str = s;
        return rc;
    }
    if (type == HASS_GGUF_ARRAY)
        return parse_array(g, r, kv, err);
    size_t es = scalar_size(type);
    if (!es)
        return hass_err_set(err, HASS_STATUS_FORMAT, "key %s: unknown value type %u", key, type);
    uint64_t raw;
    if (!rd_uint(r, (int)es, &raw))
        return hass_err_set(err, HASS_STATUS_FORMAT, "key %s: truncated value", key);
    decode_scalar(kv, raw);
    return HASS_OK;
}

static const char *ggml_type_name(uint32_t t) {
    static const char *names[] = {
        "F32",     "F16",    "Q4_0",    "Q4_1",  "Q4_2",   "Q4_3",  "Q5_0",  "Q5_1",
        "Q8_0",    "Q8_1",   "Q2_K",    "Q3_K",  "Q4_K",   "Q5_K",  "Q6_K",  "Q8_K",
        "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS",
        "I8",      "I16",    "I32",     "I64",   "F64",    "IQ1_M", "BF16"};
    return t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

/* the ggml tensor types hass reads and writes */
static const struct {
    uint32_t ggml;
    hass_dtype dt;
} ggml_types[] = {{0, HASS_DTYPE_F32},   {1, HASS_DTYPE_F16},   {2, HASS_DTYPE_Q4_0},
                  {3, HASS_DTYPE_Q4_1},  {6, HASS_DTYPE_Q5_0},  {7, HASS_DTYPE_Q5_1},
                  {8, HASS_DTYPE_Q8_0},  {12, HASS_DTYPE_Q4_K}, {13, HASS_DTYPE_Q5_K},
                  {14, HASS_DTYPE_Q6_K}, {26, HASS_DTYPE_I32},  {30, HASS_DTYPE_BF16}};
#define N_GGML_TYPES (sizeof ggml_types / sizeof ggml_types[0])

static int ggml_to_dtype(uint32_t t, hass_dtype *out) {
    for (size_t i = 0; i < N_GGML_TYPES; i++)
        if (ggml_types[i].ggml == t) {
            *out = ggml_types[i].dt;
            return 1;
        }
    return 0;
}

static int dtype_to_ggml(hass_dtype t, uint32_t *out) {
    for (size_t i = 0; i < N_GGML_TYPES; i++)
        if (ggml_types[i].dt == t) {
            *out = ggml_types[i].ggml;
            return 1;
        }
    return 0;
}

/* Tensor info i: name, dims (reversed into t->shape), type, byte size; *off its data offset. */
static hass_status parse_tensor_info(hass_gguf *g, reader *r, hass_tensor *t, uint64_t *off,
                                     int64_t i, hass_err *err) {
    char *name;
    size_t len;
    char what[48];
    snprintf(what, sizeof what, "tensor %lld name", (long long)i);
    hass_status rc = rd_string(g, r, what, &name, &len, err);
    if (rc)
        return rc;
    if (len == 0 || len >= sizeof t->name || strlen(name) != len)
        return hass_err_set(err, HASS_STATUS_FORMAT, "tensor %lld: bad name (%zu bytes)",
                            (long long)i, len);
    memcpy(t->name, name, len + 1);
    uint32_t nd, type;
    if (!rd_u32(r, &nd))
        return hass_err_set(err, HASS_STATUS_FORMAT, "tensor %s: truncated", name);
    if (nd < 1 || nd > HASS_MAX_DIMS)
        return hass_err_set(err, HASS_STATUS_FORMAT, "tensor %s: n_dims %u (need 1..%d)", name, nd,
                            HASS_MAX_DIMS);
    t->ndim = (int)nd;
    size_t numel = 1;
    uint64_t ne0 = 0;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t ne;
        if (!rd_uint(r, 8, &ne))
            return hass_err_set(err, HASS_STATUS_FORMAT, "tensor %s: truncated", name);
        if (ne > INT64_MAX || !hass_mul_ok(numel, (size_t)ne, &numel))
            return hass_err_set(err, HASS_STATUS_FORMAT, "tensor %s: shape overflows", name);
        if (d == 0)
            ne0 = ne;
        t->shape[nd - 1 - d] = (int64_t)ne;
    }
    if (!rd_u32(r, &type) || !rd_uint(r, 8, off))
        return hass_err_set(err, HASS_STATUS_FORMAT, "tensor %s: truncated", name);
    if (!ggml_to_dtype(type, &t->dtype))
        return hass_err_set(err, HASS_STATUS_UNSUPPORTED,
                            "tensor %s: ggml type %s (%u) not supported (F32, F16, BF16, I32, "
                            "Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)",
                            name, ggml_type_name(type), type);
    if (ne0 % (uint64_t)hass_dtype_block(t->dtype))
        return hass_err_set(err, HASS_STATUS_FORMAT,
                            "tensor %s: %s row length %llu not a multiple of %d (its block)", name,
                            hass_dtype_name(t->dtype), (unsigned long long)ne0,
                            hass_dtype_block(t->dtype));
    t->nbytes = hass_dtype_bytes(t->dtype, numel);
    if (numel && !t->nbytes)
        return hass_err_set(err, HASS_STATUS_FORMAT, "tensor %s: byte size overflows", name);
    return HASS_OK;
}

typedef struct {
    uint64_t begin, end;
    int64_t idx;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int cmp_kv_key(const void *a, const void *b) {
    const hass_gguf_kv *const *x = a, *const *y = b;
    return strcmp((*x)->key, (*y)->key);
}

static int cmp_tensor_name(const void *a, const void *b) {
    const hass_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* Duplicate keys / tensor names: sort pointers, compare neighbours. */
static hass_status check_unique(const hass_gguf_kv *kv, int64_t n_kv, const hass_tensor *t,
                                int64_t n_t, hass_err *err) {
    size_t n = (size_t)(n_kv > n_t ? n_kv : n_t);
    const void **p = malloc((n ? n : 1) * sizeof *p);
    if (!p)
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    hass_status rc = HASS_OK;
    for (int64_t i = 0; i < n_kv; i++)
        p[i] = &kv[i];
    qsort(p, (size_t)n_kv, sizeof *p, cmp_kv_key);
    for (int64_t i = 1; i < n_kv && !rc; i++)
        if (!strcmp(((const hass_gguf_kv *)p[i])->key, ((const hass_gguf_kv *)p[i - 1])->key))
            rc = hass_err_set(err, HASS_STATUS_FORMAT, "duplicate key %s",
                              ((const hass_gguf_kv *)p[i])->key);
    for (int64_t i = 0; i < n_t; i++)
        p[i] = &t[i];
    qsort(p, (size_t)n_t, sizeof *p, cmp_tensor_name);
    for (int64_t i = 1; i < n_t && !rc; i++)
        if (!strcmp(((const hass_tensor *)p[i])->name, ((const hass_tensor *)p[i - 1])->name))
            rc = hass_err_set(err, HASS_STATUS_FORMAT, "duplicate tensor %s",
                              ((const hass_tensor *)p[i])->name);
    free(p);
    return rc;
}

static hass_status read_alignment(hass_gguf *g, hass_err *err) {
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const hass_gguf_kv *kv = hass_gguf_find(g, "general.alignment");
    if (!kv)
        return HASS_OK;
    uint64_t a;
    if (kv->type == HASS_GGUF_ARRAY || kv->type == HASS_GGUF_STRING ||
        !hass_gguf_get_u64(g, "general.alignment", &a) || a == 0 || (a & (a - 1)) ||
        a > GGUF_MAX_ALIGNMENT)
        return hass_err_set(err, HASS_STATUS_FORMAT,
                            "general.alignment must be a power of two <= %u", GGUF_MAX_ALIGNMENT);
    g->alignment = (size_t)a;
    return HASS_OK;
}

/* Data section placement and each tensor's byte range. */
static hass_status place_tensors(hass_gguf *g, reader *r, const uint64_t *offs, hass_err *err) {
    size_t pad = (g->alignment - r->pos % g->alignment) % g->alignment;
    g->data_offset = r->pos + pad;
    if (g->n_tensors == 0) {
        if (g->data_offset > r->n)
            g->data_offset = r->n;
        return HASS_OK;
    }
    if (g->data_offset > r->n)
        return hass_err_set(err, HASS_STATUS_FORMAT,
                            "data section starts at %zu, past the end "
                            "(%zu bytes)",
                            g->data_offset, r->n);
    size_t data_size = r->n - g->data_offset;
    span *sp = malloc((size_t)g->n_tensors * sizeof *sp);
    if (!sp)
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    hass_status rc = HASS_OK;
    for (int64_t i = 0; i < g->n_tensors && !rc; i++) {
        hass_tensor *t = &g->tensors[i];
        if (offs[i] % g->alignment) {
            rc = hass_err_set(err, HASS_STATUS_FORMAT,
                              "tensor %s: offset %llu not a multiple "
                              "of the alignment %zu",
                              t->name, (unsigned long long)offs[i], g->alignment);
            break;
        }
        if (offs[i] > data_size || t->nbytes > data_size - offs[i]) {
            rc = hass_err_set(err, HASS_STATUS_FORMAT,
                              "tensor %s: bytes [%llu, +%zu) past the end of the data (%zu bytes)",
                              t->name, (unsigned long long)offs[i], t->nbytes, data_size);
            break;
        }
        sp[i].begin = offs[i];
        sp[i].end = offs[i] + t->nbytes;
        sp[i].idx = i;
        t->data = r->p + g->data_offset + offs[i];
    }
    if (!rc) {
        qsort(sp, (size_t)g->n_tensors, sizeof *sp, cmp_span);
        for (int64_t i = 1; i < g->n_tensors && !rc; i++)
            if (sp[i].begin < sp[i - 1].end)
                rc = hass_err_set(err, HASS_STATUS_FORMAT, "tensor %s overlaps tensor %s",
                                  g->tensors[sp[i].idx].name, g->tensors[sp[i - 1].idx].name);
    }
    free(sp);
    return rc;
}

static hass_status parse_body(hass_gguf *g, reader *r, hass_err *err) {
    uint64_t nt, nkv;
    if (!rd_uint(r, 8, &nt) || !rd_uint(r, 8, &nkv))
        return hass_err_set(err, HASS_STATUS_FORMAT, "truncated header");
    if (nkv > left(r) / KV_MIN_BYTES)
        return hass_err_set(err, HASS_STATUS_FORMAT, "kv count %llu cannot fit in %zu bytes",
                            (unsigned long long)nkv, left(r));
    if (nt > left(r) / TENSOR_MIN_BYTES)
        return hass_err_set(err, HASS_STATUS_FORMAT, "tensor count %llu cannot fit in %zu bytes",
                            (unsigned long long)nt, left(r));
    g->kv = calloc(nkv ? (size_t)nkv : 1, sizeof *g->kv);
    g->tensors = calloc(nt ? (size_t)nt : 1, sizeof *g->tensors);
    uint64_t *offs = calloc(nt ? (size_t)nt : 1, sizeof *offs);
    if (!g->kv || !g->tensors || !offs) {
        free(offs);
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    }
    hass_status rc = HASS_OK;
    for (uint64_t i = 0; i < nkv && !rc; i++) {
        rc = parse_kv(g, r, &g->kv[i], (int64_t)i, err);
        g->n_kv = (int64_t)i + 1;
    }
    for (uint64_t i = 0; i < nt && !rc; i++) {
        rc = parse_tensor_info(g, r, &g->tensors[i], &offs[i], (int64_t)i, err);
        g->n_tensors = (int64_t)i + 1;
    }
    if (!rc)
        rc = check_unique(g->kv, g->n_kv, g->tensors, g->n_tensors, err);
    if (!rc)
        rc = read_alignment(g, err);
    if (!rc)
        rc = place_tensors(g, r, offs, err);
    free(offs);
    return rc;
}

hass_status hass_gguf_parse(hass_gguf *g, const uint8_t *data, size_t size, hass_err *err) {
    memset(g, 0, sizeof *g);
    reader r = {data, size, 0};
    if (size < 4 || memcmp(data, "GGUF", 4))
        return hass_err_set(err, HASS_STATUS_FORMAT, "bad magic (not a GGUF file)");
    r.pos = 4;
    uint32_t version;
    if (!rd_u32(&r, &version))
        return hass_err_set(err, HASS_STATUS_FORMAT, "truncated header");
    if (version != 2 && version != 3)
        return hass_err_set(err, HASS_STATUS_UNSUPPORTED, "GGUF version %u (need 2 or 3)", version);
    g->version = version;
    hass_status rc = parse_body(g, &r, err);
    if (rc)
        hass_gguf_close(g); /* g->mf is still empty here */
    return rc;
}

hass_status hass_gguf_open(hass_gguf *g, const char *path, hass_err *err) {
    memset(g, 0, sizeof *g);
    hass_mapfile mf;
    hass_status rc = hass_mapfile_open(&mf, path, err);
    if (rc)
        return rc;
    rc = hass_gguf_parse(g, mf.data, mf.size, err);
    if (rc) {
        hass_mapfile_close(&mf);
        return hass_err_prefix(err, rc, path);
    }
    g->mf = mf;
    return HASS_OK;
}

void hass_gguf_close(hass_gguf *g) {
    if (!g)
        return;
    hass_mapfile_close(&g->mf);
    pool_free(g->owned);
    free(g->kv);
    free(g->tensors);
    memset(g, 0, sizeof *g);
}

const hass_gguf_kv *hass_gguf_find(const hass_gguf *g, const char *key) {
    for (int64_t i = 0; i < g->n_kv; i++)
        if (!strcmp(g->kv[i].key, key))
            return &g->kv[i];
    return NULL;
}

int hass_gguf_get_u64(const hass_gguf *g, const char *key, uint64_t *out) {
    const hass_gguf_kv *kv = hass_gguf_find(g, key);
    if (!kv)
        return 0;
    switch (kv->type) {
    case HASS_GGUF_U8:
    case HASS_GGUF_U16:
    case HASS_GGUF_U32:
    case HASS_GGUF_U64:
    case HASS_GGUF_BOOL:
        *out = kv->v.u;
        return 1;
    case HASS_GGUF_I8:
    case HASS_GGUF_I16:
    case HASS_GGUF_I32:
    case HASS_GGUF_I64:
        if (kv->v.i < 0)
            return 0;
        *out = (uint64_t)kv->v.i;
        return 1;
    default:
        return 0;
    }
}

int hass_gguf_get_f64(const hass_gguf *g, const char *key, double *out) {
    const hass_gguf_kv *kv = hass_gguf_find(g, key);
    if (!kv)
        return 0;
    switch (kv->type) {
    case HASS_GGUF_F32:
    case HASS_GGUF_F64:
        *out = kv->v.f;
        return 1;
    case HASS_GGUF_U8:
    case HASS_GGUF_U16:
    case HASS_GGUF_U32:
    case HASS_GGUF_U64:
        *out = (double)kv->v.u;
        return 1;
    case HASS_GGUF_I8:
    case HASS_GGUF_I16:
    case HASS_GGUF_I32:
    case HASS_GGUF_I64:
        *out = (double)kv->v.i;
        return 1;
    default:
        return 0;
    }
}

const char *hass_gguf_get_str(const hass_gguf *g, const char *key) {
    const hass_gguf_kv *kv = hass_gguf_find(g, key);
    return kv && kv->type == HASS_GGUF_STRING ? kv->str : NULL;
}

const hass_tensor *hass_gguf_find_tensor(const hass_gguf *g, const char *name) {
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (!strcmp(g->tensors[i].name, name))
            return &g->tensors[i];
    return NULL;
}

/* ================= writer ================= */

#define GGUF_MAX_KEY 65535                 /* the GGUF spec's key limit */
#define GGUF_MAX_STR (1u << 30)            /* one string (our limit) */
#define GGUF_MAX_ARRAY ((uint64_t)1 << 32) /* elements of one array (our limit) */
#define GGML_MAX_NAME 64                   /* llama.cpp: tensor names < 64 bytes */

static const char *type_name(uint32_t t) {
    static const char *names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                  "bool", "string", "array", "u64", "i64", "f64"};
    return t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

/* GGUF keys are short ASCII names (general.name, llama.block_count, ...). */
static int key_ok(const char *k) {
    size_t n = k ? strlen(k) : 0;
    if (n == 0 || n > GGUF_MAX_KEY)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)k[i] <= ' ' || (unsigned char)k[i] >= 0x7f)
            return 0;
    return 1;
}

static hass_status check_scalar(const hass_gguf_kv *kv, hass_err *err) {
    int ok = 1;
    switch (kv->type) {
    case HASS_GGUF_U8:
        ok = kv->v.u <= UINT8_MAX;
        break;
    case HASS_GGUF_U16:
        ok = kv->v.u <= UINT16_MAX;
        break;
    case HASS_GGUF_U32:
        ok = kv->v.u <= UINT32_MAX;
        break;
    case HASS_GGUF_BOOL:
        ok = kv->v.u <= 1;
        break;
    case HASS_GGUF_I8:
        ok = kv->v.i >= INT8_MIN && kv->v.i <= INT8_MAX;
        break;
    case HASS_GGUF_I16:
        ok = kv->v.i >= INT16_MIN && kv->v.i <= INT16_MAX;
        break;
    case HASS_GGUF_I32:
        ok = kv->v.i >= INT32_MIN && kv->v.i <= INT32_MAX;
        break;
    case HASS_GGUF_F32: /* a finite value must not overflow to infinity */
        ok = !isfinite(kv->v.f) || fabs(kv->v.f) <= FLT_MAX;
        break;
    case HASS_GGUF_U64:
    case HASS_GGUF_I64:
    case HASS_GGUF_F64:
        break;
    default:
        return hass_err_set(err, HASS_STATUS_ARG, "key %s: unknown value type %u", kv->key,
                            (unsigned)kv->type);
    }
    if (!ok)
        return hass_err_set(err, HASS_STATUS_RANGE, "key %s: value out of range for %s", kv->key,
                            type_name(kv->type));
    return HASS_OK;
}

static hass_status check_str(const char *key, const char *s, size_t n, hass_err *err) {
    if (n > GGUF_MAX_STR)
        return hass_err_set(err, HASS_STATUS_RANGE, "key %s: string of %zu bytes (max %u)", key, n,
                            GGUF_MAX_STR);
    if (n && !s)
        return hass_err_set(err, HASS_STATUS_ARG, "key %s: string without data", key);
    return HASS_OK;
}

static size_t arr_str_len(const hass_gguf_kv *kv, uint64_t i) {
    return kv->arr_lens ? kv->arr_lens[i] : strlen(kv->arr_strs[i]);
}

static hass_status check_array(const hass_gguf_kv *kv, hass_err *err) {
    const char *k = kv->key;
    if (kv->arr_type == HASS_GGUF_ARRAY)
        return hass_err_set(err, HASS_STATUS_UNSUPPORTED, "key %s: nested arrays not supported", k);
    if (kv->arr_n > GGUF_MAX_ARRAY)
        return hass_err_set(err, HASS_STATUS_RANGE, "key %s: array of %llu elements", k,
                            (unsigned long long)kv->arr_n);
    if (kv->arr_type == HASS_GGUF_STRING) {
        if (kv->arr_n && !kv->arr_strs)
            return hass_err_set(err, HASS_STATUS_ARG, "key %s: string array without data", k);
        for (uint64_t i = 0; i < kv->arr_n; i++) {
            if (!kv->arr_strs[i])
                return hass_err_set(err, HASS_STATUS_ARG, "key %s: string %llu missing", k,
                                    (unsigned long long)i);
            hass_status rc = check_str(k, kv->arr_strs[i], arr_str_len(kv, i), err);
            if (rc)
                return rc;
        }
        return HASS_OK;
    }
    size_t es = scalar_size(kv->arr_type);
    if (!es)
        return hass_err_set(err, HASS_STATUS_ARG, "key %s: unknown array element type %u", k,
                            (unsigned)kv->arr_type);
    if (kv->arr_n && !kv->arr_data)
        return hass_err_set(err, HASS_STATUS_ARG, "key %s: array without data", k);
    if (kv->arr_type == HASS_GGUF_BOOL)
        for (uint64_t i = 0; i < kv->arr_n; i++)
            if (kv->arr_data[i] > 1)
                return hass_err_set(err, HASS_STATUS_RANGE, "key %s: bool %llu is %u", k,
                                    (unsigned long long)i, kv->arr_data[i]);
    return HASS_OK;
}

static hass_status check_kv(const hass_gguf_kv *kv, hass_err *err) {
    if (!key_ok(kv->key))
        return hass_err_set(err, HASS_STATUS_ARG,
                            "GGUF key '%.40s': need 1..%d printable ASCII bytes, no spaces",
                            kv->key ? kv->key : "(null)", GGUF_MAX_KEY);
    if (kv->type == HASS_GGUF_STRING)
        return check_str(kv->key, kv->str, kv->str_len, err);
    if (kv->type == HASS_GGUF_ARRAY)
        return check_array(kv, err);
    return check_scalar(kv, err);
}

/* ---- the metadata list ---- */

const hass_gguf_kv *hass_gguf_kvs_find(const hass_gguf_kvs *l, const char *key) {
    for (int64_t i = 0; i < l->n; i++)
        if (!strcmp(l->kv[i].key, key))
            return &l->kv[i];
    return NULL;
}

static char *pool_strdup(void **owned, const char *s, size_t n) {
    char *c = pool_alloc(owned, n + 1);
    if (c) {
        if (n)
            memcpy(c, s, n);
        c[n] = 0;
    }
    return c;
}

/* deep copy of kv's key and value into the list's pool */
static int copy_value(void **owned, hass_gguf_kv *c, const hass_gguf_kv *kv) {
    c->key = pool_strdup(owned, kv->key, strlen(kv->key));
    if (!c->key)
        return 0;
    if (kv->type == HASS_GGUF_STRING)
        return (c->str = pool_strdup(owned, kv->str, kv->str_len)) != NULL;
    if (kv->type != HASS_GGUF_ARRAY)
        return 1;
    size_t n = (size_t)kv->arr_n;
    if (kv->arr_type != HASS_GGUF_STRING) {
        size_t bytes = n * scalar_size(kv->arr_type);
        uint8_t *d = pool_alloc(owned, bytes ? bytes : 1);
        if (d && bytes)
            memcpy(d, kv->arr_data, bytes);
        c->arr_data = d;
        return d != NULL;
    }
    const char **strs = pool_alloc(owned, (n ? n : 1) * sizeof *strs);
    uint32_t *lens = pool_alloc(owned, (n ? n : 1) * sizeof *lens);
    if (!strs || !lens)
        return 0;
    for (size_t i = 0; i < n; i++) {
        lens[i] = (uint32_t)arr_str_len(kv, i);
        if (!(strs[i] = pool_strdup(owned, kv->arr_strs[i], lens[i])))
            return 0;
    }
    c->arr_strs = strs;
    c->arr_lens = lens;
    return 1;
}

hass_status hass_gguf_kvs_add(hass_gguf_kvs *l, const hass_gguf_kv *kv, hass_err *err) {
    hass_status rc = check_kv(kv, err);
    if (rc)
        return rc;
    if (hass_gguf_kvs_find(l, kv->key))
        return hass_err_set(err, HASS_STATUS_FORMAT, "duplicate key %s", kv->key);
    if (l->n == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 32;
        hass_gguf_kv *p = realloc(l->kv, (size_t)cap * sizeof *p);
        if (!p)
            return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        l->kv = p;
        l->cap = cap;
    }
    hass_gguf_kv c = *kv;
    if (!copy_value(&l->owned, &c, kv))
        return hass_err_set(err, HASS_STATUS_OOM, "key %s: out of memory", kv->key);
    l->kv[l->n++] = c;
    return HASS_OK;
}

hass_status hass_gguf_kvs_u32(hass_gguf_kvs *l, const char *key, uint32_t v, hass_err *err) {
    hass_gguf_kv kv = {.key = key, .type = HASS_GGUF_U32, .v.u = v};
    return hass_gguf_kvs_add(l, &kv, err);
}

hass_status hass_gguf_kvs_f32(hass_gguf_kvs *l, const char *key, float v, hass_err *err) {
    hass_gguf_kv kv = {.key = key, .type = HASS_GGUF_F32, .v.f = v};
    return hass_gguf_kvs_add(l, &kv, err);
}

hass_status hass_gguf_kvs_bool(hass_gguf_kvs *l, const char *key, int v, hass_err *err) {
    hass_gguf_kv kv = {.key = key, .type = HASS_GGUF_BOOL, .v.u = v != 0};
    return hass_gguf_kvs_add(l, &kv, err);
}

hass_status hass_gguf_kvs_str(hass_gguf_kvs *l, const char *key, const char *s, hass_err *err) {
    hass_gguf_kv kv = {.key = key, .type = HASS_GGUF_STRING, .str = s, .str_len = strlen(s)};
    return hass_gguf_kvs_add(l, &kv, err);
}

hass_status hass_gguf_kvs_array(hass_gguf_kvs *l, const char *key, hass_gguf_type et,
                                const void *data, uint64_t n, hass_err *err) {
    hass_gguf_kv kv = {
        .key = key, .type = HASS_GGUF_ARRAY, .arr_type = et, .arr_n = n, .arr_data = data};
    return hass_gguf_kvs_add(l, &kv, err);
}

hass_status hass_gguf_kvs_strings(hass_gguf_kvs *l, const char *key, const char *const *strs,
                                  const uint32_t *lens, uint64_t n, hass_err *err) {
    hass_gguf_kv kv = {.key = key,
                       .type = HASS_GGUF_ARRAY,
                       .arr_type = HASS_GGUF_STRING,
                       .arr_n = n,
                       .arr_strs = (const char **)strs,
                       .arr_lens = lens};
    return hass_gguf_kvs_add(l, &kv, err);
}

void hass_gguf_kvs_free(hass_gguf_kvs *l) {
    if (!l)
        return;
    pool_free(l->owned);
    free(l->kv);
    memset(l, 0, sizeof *l);
}

/* ---- the file ---- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
    int oom;
} wbuf;

static void wb_put(wbuf *b, const void *s, size_t n) {
    if (b->oom || n == 0)
        return;
    if (n > b->cap - b->n) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->n < n) {
            if (cap > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            cap *= 2;
        }
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void wb_uint(wbuf *b, uint64_t v, int nbytes) {
    uint8_t le[8];
    for (int i = 0; i < nbytes; i++)
        le[i] = (uint8_t)(v >> (8 * i));
    wb_put(b, le, (size_t)nbytes);
}

static void wb_str(wbuf *b, const char *s, size_t n) {
    wb_uint(b, n, 8);
    wb_put(b, s, n);
}

static void wb_value(wbuf *b, const hass_gguf_kv *kv) {
    wb_uint(b, kv->type, 4);
    if (kv->type == HASS_GGUF_STRING) {
        wb_str(b, kv->str, kv->str_len);
    } else if (kv->type == HASS_GGUF_ARRAY) {
        wb_uint(b, kv->arr_type, 4);
        wb_uint(b, kv->arr_n, 8);
        if (kv->arr_type == HASS_GGUF_STRING)
            for (uint64_t i = 0; i < kv->arr_n; i++)
                wb_str(b, kv->arr_strs[i], arr_str_len(kv, i));
        else /* elements in host order: little-endian on every platform hass builds for */
            wb_put(b, kv->arr_data, (size_t)kv->arr_n * scalar_size(kv->arr_type));
    } else if (kv->type == HASS_GGUF_F32) {
        float f = (float)kv->v.f;
        uint32_t u;
        memcpy(&u, &f, 4);
        wb_uint(b, u, 4);
    } else if (kv->type == HASS_GGUF_F64) {
        uint64_t u;
        memcpy(&u, &kv->v.f, 8);
        wb_uint(b, u, 8);
    } else {
        int signed_t = kv->type == HASS_GGUF_I8 || kv->type == HASS_GGUF_I16 ||
                       kv->type == HASS_GGUF_I32 || kv->type == HASS_GGUF_I64;
        wb_uint(b, signed_t ? (uint64_t)kv->v.i : kv->v.u, (int)scalar_size(kv->type));
    }
}

static hass_status check_tensor(const hass_tensor *t, size_t *nbytes, hass_err *err) {
    size_t len = strnlen(t->name, sizeof t->name);
    if (len == 0 || len >= GGML_MAX_NAME)
        return hass_err_set(err, HASS_STATUS_ARG, "tensor '%.40s': name must have 1..%d bytes",
                            t->name, GGML_MAX_NAME - 1);
    uint32_t gt;
    if (!dtype_to_ggml(t->dtype, &gt))
        return hass_err_set(err, HASS_STATUS_UNSUPPORTED,
                            "tensor %s: dtype %s cannot be written (F32, F16, BF16, I32, or a "
                            "GGUF block type)",
                            t->name, hass_dtype_name(t->dtype));
    if (t->ndim < 1 || t->ndim > HASS_MAX_DIMS)
        return hass_err_set(err, HASS_STATUS_ARG, "tensor %s: %d dims (need 1..%d)", t->name,
                            t->ndim, HASS_MAX_DIMS);
    size_t numel = 1;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] < 0 || !hass_mul_ok(numel, (size_t)t->shape[d], &numel) ||
            numel > INT64_MAX)
            return hass_err_set(err, HASS_STATUS_RANGE, "tensor %s: bad shape", t->name);
    if (t->shape[t->ndim - 1] % hass_dtype_block(t->dtype))
        return hass_err_set(err, HASS_STATUS_ARG,
                            "tensor %s: %s row length %lld not a multiple of %d", t->name,
                            hass_dtype_name(t->dtype), (long long)t->shape[t->ndim - 1],
                            hass_dtype_block(t->dtype));
    *nbytes = hass_dtype_bytes(t->dtype, numel);
    if (numel && !*nbytes)
        return hass_err_set(err, HASS_STATUS_RANGE, "tensor %s: byte size overflows", t->name);
    if (t->nbytes != *nbytes)
        return hass_err_set(err, HASS_STATUS_ARG, "tensor %s: nbytes %zu, its shape needs %zu",
                            t->name, t->nbytes, *nbytes);
    return HASS_OK;
}

/* Every check before the first byte is written: keys and values, unique keys and names, the
 * alignment (llama.cpp reads general.alignment as a u32), each tensor. */
static hass_status check_write(const hass_gguf_kv *kv, int64_t n_kv, const hass_tensor *t,
                               int64_t n_t, int have_fill, size_t *align, size_t *max_bytes,
                               hass_err *err) {
    hass_status rc = HASS_OK;
    *align = GGUF_DEFAULT_ALIGNMENT;
    for (int64_t i = 0; i < n_kv && !rc; i++) {
        rc = check_kv(&kv[i], err);
        if (!rc && !strcmp(kv[i].key, "general.alignment")) {
            uint64_t a = kv[i].v.u;
            if (kv[i].type != HASS_GGUF_U32 || a == 0 || (a & (a - 1)) || a > GGUF_MAX_ALIGNMENT)
                rc = hass_err_set(err, HASS_STATUS_ARG,
                                  "general.alignment must be a u32 power of two <= %u",
                                  GGUF_MAX_ALIGNMENT);
            *align = (size_t)a;
        }
    }
    *max_bytes = 0;
    for (int64_t i = 0; i < n_t && !rc; i++) {
        size_t nb = 0;
        rc = check_tensor(&t[i], &nb, err);
        if (!rc && nb && !have_fill && !t[i].data)
            rc = hass_err_set(err, HASS_STATUS_ARG, "tensor %s: no data", t[i].name);
        if (nb > *max_bytes)
            *max_bytes = nb;
    }
    return rc ? rc : check_unique(kv, n_kv, t, n_t, err);
}

static void wb_pad(wbuf *b, size_t align) {
    static const uint8_t zeros[64];
    while (b->n % align)
        wb_put(b, zeros, align - b->n % align < sizeof zeros ? align - b->n % align : sizeof zeros);
}

/* header, metadata, tensor infos and the padding before the data section */
static void build_header(wbuf *b, const hass_gguf_kv *kv, int64_t n_kv, const hass_tensor *t,
                         int64_t n_t, size_t align) {
    wb_put(b, "GGUF", 4);
    wb_uint(b, 3, 4);
    wb_uint(b, (uint64_t)n_t, 8);
    wb_uint(b, (uint64_t)n_kv, 8);
    for (int64_t i = 0; i < n_kv; i++) {
        wb_str(b, kv[i].key, strlen(kv[i].key));
        wb_value(b, &kv[i]);
    }
    uint64_t off = 0;
    for (int64_t i = 0; i < n_t; i++) {
        uint32_t gt = 0;
        dtype_to_ggml(t[i].dtype, &gt);
        wb_str(b, t[i].name, strlen(t[i].name));
        wb_uint(b, (uint64_t)t[i].ndim, 4);
        for (int d = t[i].ndim - 1; d >= 0; d--) /* ggml order: innermost first */
            wb_uint(b, (uint64_t)t[i].shape[d], 8);
        wb_uint(b, gt, 4);
        wb_uint(b, off, 8);
        off += (t[i].nbytes + align - 1) / align * align;
    }
    wb_pad(b, align);
}

hass_status hass_gguf_write(const char *path, const hass_gguf_kv *kv, int64_t n_kv,
                            const hass_tensor *tensors, int64_t n_tensors, hass_gguf_fill_fn fill,
                            void *ctx, hass_err *err) {
    if (n_kv < 0 || n_tensors < 0 || (n_kv && !kv) || (n_tensors && !tensors))
        return hass_err_set(err, HASS_STATUS_ARG, "gguf write: bad arguments");
    size_t align, max_bytes;
    hass_status rc =
        check_write(kv, n_kv, tensors, n_tensors, fill != NULL, &align, &max_bytes, err);
    if (rc)
        return rc;
    wbuf b = {0};
    build_header(&b, kv, n_kv, tensors, n_tensors, align);
    uint8_t *buf = fill && max_bytes ? malloc(max_bytes) : NULL;
    if (b.oom || (fill && max_bytes && !buf)) {
        free(b.p);
        free(buf);
        return hass_err_set(err, HASS_STATUS_OOM, "gguf write: out of memory");
    }
    hass_afile f;
    rc = hass_afile_open(&f, path, err);
    if (!rc)
        rc = hass_afile_write(&f, b.p, b.n, err);
    free(b.p);
    static const uint8_t zeros[GGUF_MAX_ALIGNMENT < 4096 ? GGUF_MAX_ALIGNMENT : 4096];
    for (int64_t i = 0; i < n_tensors && !rc; i++) {
        const hass_tensor *t = &tensors[i];
        const void *data = t->data;
        if (fill) {
            rc = fill(ctx, i, buf, err);
            data = buf;
        }
        if (!rc)
            rc = hass_afile_write(&f, data, t->nbytes, err);
        for (size_t pad = (align - t->nbytes % align) % align; pad && !rc;) {
            size_t k = pad < sizeof zeros ? pad : sizeof zeros;
            rc = hass_afile_write(&f, zeros, k, err);
            pad -= k;
        }
    }
    free(buf);
    if (!rc)
        rc = hass_afile_commit(&f, err);
    if (rc)
        hass_afile_abort(&f);
    return rc;
}

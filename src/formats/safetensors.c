/*
 * safetensors.c — Hugging Face safetensors: reader (single file and sharded directory) and
 * writer.
 *
 * File layout: u64 little-endian header length N, N bytes of JSON
 *   {"__metadata__": {...}, "name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...}
 * then the data section; offsets are relative to its start. The reader validates everything
 * listed in formats.h before handing out a pointer; the writer produces what Hugging Face's
 * loader accepts (8-byte aligned, space-padded header, tensors tiling the data section).
 */
#include "formats/formats.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_MAX_HEADER 100000000u /* Hugging Face's limit */

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

/* A JSON number that is an exact non-negative integer below 2^53. */
static int json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j))
        return 0;
    double d = j->valuedouble;
    if (!isfinite(d) || d < 0 || d > 9007199254740992.0 || d != floor(d))
        return 0;
    *out = (uint64_t)d;
    return 1;
}

/* One tensor entry of the header -> t (name, dtype, shape, nbytes) and its [begin, end). */
static hass_status parse_entry(const cJSON *e, hass_tensor *t, uint64_t *begin, uint64_t *end,
                               hass_err *err) {
    const char *name = e->string;
    if (strlen(name) >= sizeof t->name)
        return hass_err_set(err, HASS_STATUS_FORMAT, "tensor name too long (%zu bytes): %.40s...",
                            strlen(name), name);
    if (!name[0])
        return hass_err_set(err, HASS_STATUS_FORMAT, "empty tensor name");
    snprintf(t->name, sizeof t->name, "%s", name);
    if (!cJSON_IsObject(e))
        return hass_err_set(err, HASS_STATUS_FORMAT, "tensor %s: entry is not an object", name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(jd) || !cJSON_IsArray(js) || !cJSON_IsArray(jo))
        return hass_err_set(err, HASS_STATUS_FORMAT,
                            "tensor %s: needs string dtype, array shape, array data_offsets", name);
    if (!dtype_from_name(jd->valuestring, &t->dtype))
        return hass_err_set(err, HASS_STATUS_UNSUPPORTED,
                            "tensor %s: dtype %.16s not supported (F32, F16, BF16, I32, I64, U8)",
                            name, jd->valuestring);
    int nd = cJSON_GetArraySize(js);
    if (nd > HASS_MAX_DIMS)
        return hass_err_set(err, HASS_STATUS_UNSUPPORTED, "tensor %s: %d dims (at most %d)", name,
                            nd, HASS_MAX_DIMS);
    t->ndim = nd;
    size_t numel = 1;
    int i = 0;
    for (const cJSON *d = js->child; d; d = d->next, i++) {
        uint64_t v;
        if (!json_uint(d, &v))
            return hass_err_set(err, HASS_STATUS_FORMAT,
                                "tensor %s: shape[%d] is not a non-negative integer", name, i);
        if (!hass_mul_ok(numel, (size_t)v, &numel))
            return hass_err_set(err, HASS_STATUS_FORMAT, "tensor %s: shape overflows", name);
        t->shape[i] = (int64_t)v;
    }
    if (cJSON_GetArraySize(jo) != 2 || !json_uint(jo->child, begin) ||
        !json_uint(jo->child->next, end))
        return hass_err_set(err, HASS_STATUS_FORMAT,
                            "tensor %s: data_offsets must be two non-negative integers", name);
    if (*end < *begin)
        return hass_err_set(err, HASS_STATUS_FORMAT,
                            "tensor %s: data_offsets end %llu < begin %llu", name,
                            (unsigned long long)*end, (unsigned long long)*begin);
    size_t need = elem_size(t->dtype);
    if (!hass_mul_ok(numel, need, &need))
        return hass_err_set(err, HASS_STATUS_FORMAT, "tensor %s: byte size overflows", name);
    if ((uint64_t)need != *end - *begin)
        return hass_err_set(err, HASS_STATUS_FORMAT,
                            "tensor %s: %s x %zu elements = %zu bytes, but data_offsets span %llu",
                            name, jd->valuestring, numel, need,
                            (unsigned long long)(*end - *begin));
    t->nbytes = need;
    return HASS_OK;
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
    const char *hdr = (const char *)data + 8;
    const char *end_parse = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end_parse, 0);
    if (!root)
        return hass_err_set(err, HASS_STATUS_FORMAT, "header is not valid JSON");
    hass_status rc = HASS_OK;
    span *spans = NULL;
    const hass_tensor **names = NULL;
    if (!cJSON_IsObject(root)) {
        rc = hass_err_set(err, HASS_STATUS_FORMAT, "header is not a JSON object");
        goto done;
    }
    for (const char *p = end_parse; p && p < hdr + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            rc = hass_err_set(err, HASS_STATUS_FORMAT, "garbage after the JSON header");
            goto done;
        }
    int n = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (!cJSON_IsObject(e)) {
                rc = hass_err_set(err, HASS_STATUS_FORMAT, "__metadata__ is not an object");
                goto done;
            }
            if (st->metadata_json) {
                rc = hass_err_set(err, HASS_STATUS_FORMAT, "__metadata__ appears twice");
                goto done;
            }
            st->metadata_json = cJSON_PrintUnformatted(e);
            if (!st->metadata_json) {
                rc = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
                goto done;
            }
            continue;
        }
        n++;
    }
    /* n <= hlen: each entry took at least one header byte, so these sizes are file-bounded. */
    st->tensors = calloc(n ? (size_t)n : 1, sizeof *st->tensors);
    spans = calloc(n ? (size_t)n : 1, sizeof *spans);
    names = calloc(n ? (size_t)n : 1, sizeof *names);
    if (!st->tensors || !spans || !names) {
        rc = hass_err_set(err, HASS_STATUS_OOM, "out of memory for %d tensors", n);
        goto done;
    }
    int k = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__"))
            continue;
        rc = parse_entry(e, &st->tensors[k], &spans[k].begin, &spans[k].end, err);
        if (rc)
            goto done;
        spans[k].idx = k;
        names[k] = &st->tensors[k];
        k++;
    }
    qsort(names, (size_t)n, sizeof *names, cmp_name_ptr);
    for (int i = 1; i < n; i++)
        if (!strcmp(names[i]->name, names[i - 1]->name)) {
            rc = hass_err_set(err, HASS_STATUS_FORMAT, "duplicate tensor name %s", names[i]->name);
            goto done;
        }
    /* Tile check: sorted by offset, each tensor starts where the previous one ended. */
    size_t data_start = 8 + (size_t)hlen, data_size = size - data_start;
    qsort(spans, (size_t)n, sizeof *spans, cmp_span);
    uint64_t pos = 0;
    for (int i = 0; i < n; i++) {
        const hass_tensor *t = &st->tensors[spans[i].idx];
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
        pos = spans[i].end;
    }
    if (pos != data_size) {
        rc = hass_err_set(err, HASS_STATUS_FORMAT, "%llu unindexed bytes after the last tensor",
                          (unsigned long long)(data_size - pos));
        goto done;
    }
    /* Store tensors in file order with their data pointers. */
    hass_tensor *sorted = calloc(n ? (size_t)n : 1, sizeof *sorted);
    if (!sorted) {
        rc = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        sorted[i] = st->tensors[spans[i].idx];
        sorted[i].data = data + data_start + spans[i].begin;
    }
    free(st->tensors);
    st->tensors = sorted;
    st->n_tensors = n;
done:
    cJSON_Delete(root);
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
    cJSON_free(st->metadata_json);
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

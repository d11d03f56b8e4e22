/*
 * featstore.c — feature shards (featstore.h): the index (cJSON), the shard writer with its
 * resume point, and the reader that maps every shard and validates it before use.
 */
#include "train/featstore.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the fingerprint's starting value (not FNV's usual offset basis; kept so that stores written
 * before stay valid) */
#define FINGERPRINT_SEED 1469598103934665603ull

uint64_t hass_featstore_fingerprint(const hass_model *m) {
    const hass_model_config *c = &m->cfg;
    int64_t shape[7] = {c->d, c->ffn, c->n_layers, c->H, c->Hkv, c->V, (int64_t)m->embed_t};
    uint64_t h = hass_fnv1a(FINGERPRINT_SEED, shape, sizeof shape);
    size_t n = (size_t)(c->V * c->d);
    h = hass_fnv1a(h, m->embed, hass_dtype_bytes(m->embed_t, n));
    h = hass_fnv1a(h, m->final_norm, (size_t)c->d * sizeof(float));
    if (m->lm_head != m->embed)
        h = hass_fnv1a(h, m->lm_head, hass_dtype_bytes(m->lm_head_t, n));
    return h;
}

size_t hass_featstore_seq_bytes(int64_t len, int64_t d) {
    return 8 + (size_t)len * (4 + 1) + (size_t)len * (size_t)d * 2;
}

static void put_u32(uint8_t *p, uint32_t v) {
    memcpy(p, &v, 4);
}
static void put_u64(uint8_t *p, uint64_t v) {
    memcpy(p, &v, 8);
}
static uint32_t get_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void fp_hex(char *out, uint64_t fp) {
    snprintf(out, 17, "%016llx", (unsigned long long)fp);
}

static int path_join(char *out, size_t cap, const char *dir, const char *name) {
    return snprintf(out, cap, "%s/%s", dir, name) < (int)cap;
}

/* ======================= index ======================= */

typedef struct {
    char file[64];
    int64_t sequences, tokens;
} shard_entry;

typedef struct {
    int64_t d;
    uint64_t fp;
    char *model_path, *args;
    int64_t records;
    int complete;
    shard_entry *shards;
    int64_t n_shards, cap_shards;
} index_info;

static void index_free(index_info *x) {
    free(x->model_path);
    free(x->args);
    free(x->shards);
    memset(x, 0, sizeof *x);
}

/* a count of the index: a non-negative integer, dflt when absent */
static int64_t json_int(const cJSON *o, const char *k, int64_t dflt) {
    int64_t v = dflt;
    hass_json_int(o, k, 0, 9000000000000000LL, &v);
    return v;
}

static hass_status index_read(const char *dir, index_info *x, hass_err *err) {
    memset(x, 0, sizeof *x);
    char path[1024];
    if (!path_join(path, sizeof path, dir, "index.json"))
        return hass_err_set(err, HASS_STATUS_ARG, "%s: path too long", dir);
    char *txt = NULL;
    size_t sz = 0;
    hass_status st = hass_read_file(path, &txt, &sz, err);
    if (st)
        return st;
    cJSON *root = cJSON_Parse(txt);
    free(txt);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return hass_err_set(err, HASS_STATUS_FORMAT, "%s: not a JSON object", path);
    }
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *fpj = model ? cJSON_GetObjectItemCaseSensitive(model, "fingerprint") : NULL;
    const cJSON *mp = model ? cJSON_GetObjectItemCaseSensitive(model, "path") : NULL;
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(root, "args");
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(root, "dtype");
    const cJSON *shards = cJSON_GetObjectItemCaseSensitive(root, "shards");
    const cJSON *comp = cJSON_GetObjectItemCaseSensitive(root, "complete");
    int64_t ver = json_int(root, "version", -1);
    x->d = json_int(root, "d", -1);
    x->records = json_int(root, "records_consumed", -1);
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "hass-features")) {
        st = hass_err_set(err, HASS_STATUS_FORMAT, "%s: not a hass feature index", path);
    } else if (ver != HASS_FEATSTORE_VERSION) {
        st = hass_err_set(err, HASS_STATUS_FORMAT, "%s: unsupported version %lld (expected %d)",
                          path, (long long)ver, HASS_FEATSTORE_VERSION);
    } else if (x->d <= 0 || x->records < 0 || !cJSON_IsString(fpj) ||
               strlen(fpj->valuestring) != 16 || !cJSON_IsString(dt) ||
               strcmp(dt->valuestring, "bf16") || !cJSON_IsArray(shards) || !cJSON_IsString(args) ||
               !cJSON_IsBool(comp)) {
        st = hass_err_set(err, HASS_STATUS_FORMAT,
                          "%s: missing or invalid field (d, dtype, model.fingerprint, args, "
                          "records_consumed, complete, shards)",
                          path);
    } else {
        x->fp = strtoull(fpj->valuestring, NULL, 16);
        x->model_path = strdup(cJSON_IsString(mp) ? mp->valuestring : "");
        x->args = strdup(args->valuestring);
        x->complete = cJSON_IsTrue(comp);
        int n = cJSON_GetArraySize(shards);
        x->shards = calloc((size_t)n + 1, sizeof *x->shards);
        x->cap_shards = n + 1;
        if (!x->shards || !x->model_path || !x->args)
            st = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        for (int i = 0; !st && i < n; i++) {
            const cJSON *e = cJSON_GetArrayItem(shards, i);
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(e, "file");
            shard_entry *s = &x->shards[i];
            s->sequences = json_int(e, "sequences", -1);
            s->tokens = json_int(e, "tokens", -1);
            if (!cJSON_IsString(f) || strchr(f->valuestring, '/') ||
                strlen(f->valuestring) >= sizeof s->file || !f->valuestring[0] ||
                f->valuestring[0] == '.' || s->sequences < 0 || s->tokens < 0) {
                st =
                    hass_err_set(err, HASS_STATUS_FORMAT, "%s: shard entry %d is invalid", path, i);
                break;
            }
            snprintf(s->file, sizeof s->file, "%s", f->valuestring);
            x->n_shards++;
        }
    }
    cJSON_Delete(root);
    if (st)
        index_free(x);
    return st;
}

static hass_status index_write(const char *dir, const index_info *x, const hass_model *m,
                               hass_err *err) {
    cJSON *root = cJSON_CreateObject();
    char hex[17];
    fp_hex(hex, x->fp);
    cJSON_AddStringToObject(root, "format", "hass-features");
    cJSON_AddNumberToObject(root, "version", HASS_FEATSTORE_VERSION);
    cJSON_AddNumberToObject(root, "d", (double)x->d);
    cJSON_AddStringToObject(root, "dtype", "bf16");
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "path", x->model_path ? x->model_path : "");
    cJSON_AddStringToObject(model, "fingerprint", hex);
    if (m) {
        cJSON_AddNumberToObject(model, "d", (double)m->cfg.d);
        cJSON_AddNumberToObject(model, "V", (double)m->cfg.V);
        cJSON_AddNumberToObject(model, "n_layers", (double)m->cfg.n_layers);
        cJSON_AddNumberToObject(model, "H", (double)m->cfg.H);
        cJSON_AddNumberToObject(model, "Hkv", (double)m->cfg.Hkv);
        cJSON_AddNumberToObject(model, "ffn", (double)m->cfg.ffn);
    }
    cJSON_AddStringToObject(root, "args", x->args ? x->args : "");
    cJSON_AddNumberToObject(root, "records_consumed", (double)x->records);
    cJSON_AddBoolToObject(root, "complete", x->complete);
    cJSON *arr = cJSON_AddArrayToObject(root, "shards");
    int64_t seqs = 0, toks = 0;
    for (int64_t i = 0; i < x->n_shards; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "file", x->shards[i].file);
        cJSON_AddNumberToObject(e, "sequences", (double)x->shards[i].sequences);
        cJSON_AddNumberToObject(e, "tokens", (double)x->shards[i].tokens);
        cJSON_AddItemToArray(arr, e);
        seqs += x->shards[i].sequences;
        toks += x->shards[i].tokens;
    }
    cJSON_AddNumberToObject(root, "sequences", (double)seqs);
    cJSON_AddNumberToObject(root, "tokens", (double)toks);
    hass_status st = hass_json_save(dir, "index.json", root, err);
    cJSON_Delete(root);
    return st;
}

/* ======================= reader ======================= */

typedef struct {
    hass_mapfile mf;
} shard_map;

typedef struct {
    int32_t shard;
    size_t off; /* offset of the ids in the mapping */
    int64_t len;
} seq_ref;

struct hass_featstore {
    int64_t d, n_seq, n_tok;
    shard_map *maps;
    int64_t n_maps;
    seq_ref *seqs;
};

void hass_featstore_close(hass_featstore *fs) {
    if (!fs)
        return;
    for (int64_t i = 0; i < fs->n_maps; i++)
        hass_mapfile_close(&fs->maps[i].mf);
    free(fs->maps);
    free(fs->seqs);
    free(fs);
}

/* Validates one shard and appends its sequences to fs->seqs (capacity pre-sized). */
static hass_status scan_shard(hass_featstore *fs, int32_t si, const shard_entry *e, uint64_t fp,
                              int check_fp, hass_err *err) {
    const hass_mapfile *mf = &fs->maps[si].mf;
    const uint8_t *p = mf->data;
    size_t size = mf->size;
    if (size < HASS_FEATSTORE_HEADER || memcmp(p, HASS_FEATSTORE_MAGIC, 8))
        return hass_err_set(err, HASS_STATUS_FORMAT, "%s: not a feature shard (bad magic)",
                            mf->path);
    uint32_t ver = get_u32(p + 8), dt = get_u32(p + 12);
    int64_t d = (int64_t)get_u64(p + 16), n = (int64_t)get_u64(p + 24);
    if (ver != HASS_FEATSTORE_VERSION)
        return hass_err_set(err, HASS_STATUS_FORMAT, "%s: unsupported shard version %u", mf->path,
                            ver);
    if (dt != (uint32_t)HASS_DTYPE_BF16 || d != fs->d)
        return hass_err_set(err, HASS_STATUS_FORMAT, "%s: dtype %u / d %lld, expected bf16 / %lld",
                            mf->path, dt, (long long)d, (long long)fs->d);
    if (check_fp && get_u64(p + 32) != fp)
        return hass_err_set(err, HASS_STATUS_SHAPE,
                            "%s: features were made with another model (fingerprint differs)",
                            mf->path);
    if (n != e->sequences)
        return hass_err_set(err, HASS_STATUS_FORMAT, "%s: %lld sequences, index says %lld",
                            mf->path, (long long)n, (long long)e->sequences);
    size_t off = HASS_FEATSTORE_HEADER;
    int64_t toks = 0;
    for (int64_t k = 0; k < n; k++) {
        if (size - off < 8)
            return hass_err_set(err, HASS_STATUS_FORMAT, "%s: truncated at sequence %lld", mf->path,
                                (long long)k);
        int64_t len = (int64_t)get_u64(p + off);
        size_t per = 0, body = 0;
        if (len <= 0 || len > ((int64_t)1 << 32) || !hass_mul_ok((size_t)d, 2, &per) ||
            !hass_add_ok(per, 5, &per) || !hass_mul_ok(per, (size_t)len, &body) ||
            body > size - off - 8)
            return hass_err_set(err, HASS_STATUS_FORMAT,
                                "%s: sequence %lld has a bad length or is truncated", mf->path,
                                (long long)k);
        fs->seqs[fs->n_seq++] = (seq_ref){si, off + 8, len};
        off += 8 + body;
        toks += len;
    }
    if (off != size)
        return hass_err_set(err, HASS_STATUS_FORMAT, "%s: %zu trailing bytes", mf->path,
                            size - off);
    if (toks != e->tokens)
        return hass_err_set(err, HASS_STATUS_FORMAT, "%s: %lld tokens, index says %lld", mf->path,
                            (long long)toks, (long long)e->tokens);
    fs->n_tok += toks;
    return HASS_OK;
}

hass_featstore *hass_featstore_open(const char *dir, const hass_model *m, hass_err *err) {
    index_info x;
    if (index_read(dir, &x, err))
        return NULL;
    hass_featstore *fs = calloc(1, sizeof *fs);
    int64_t total = 0;
    for (int64_t i = 0; i < x.n_shards; i++)
        total += x.shards[i].sequences;
    hass_status st = HASS_OK;
    uint64_t fp = m ? hass_featstore_fingerprint(m) : 0;
    if (fs) {
        fs->d = x.d;
        fs->maps = calloc((size_t)x.n_shards + 1, sizeof *fs->maps);
        fs->seqs = calloc((size_t)total + 1, sizeof *fs->seqs);
    }
    if (!fs || !fs->maps || !fs->seqs)
        st = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    else if (m && x.d != m->cfg.d)
        st = hass_err_set(err, HASS_STATUS_SHAPE, "%s: features have d = %lld, the model %lld", dir,
                          (long long)x.d, (long long)m->cfg.d);
    else if (m && x.fp != fp)
        st = hass_err_set(err, HASS_STATUS_SHAPE,
                          "%s: features were made with another model (fingerprint %016llx, "
                          "model %016llx)",
                          dir, (unsigned long long)x.fp, (unsigned long long)fp);
    else if (x.n_shards == 0)
        st = hass_err_set(err, HASS_STATUS_FORMAT, "%s: the store has no shards", dir);
    for (int64_t i = 0; !st && i < x.n_shards; i++) {
        char path[1024];
        if (!path_join(path, sizeof path, dir, x.shards[i].file)) {
            st = hass_err_set(err, HASS_STATUS_ARG, "%s: path too long", dir);
            break;
        }
        st = hass_mapfile_open(&fs->maps[i].mf, path, err);
        if (st)
            break;
        fs->n_maps++;
        st = scan_shard(fs, (int32_t)i, &x.shards[i], x.fp, 1, err);
    }
    index_free(&x);
    if (st) {
        hass_featstore_close(fs);
        return NULL;
    }
    return fs;
}

int64_t hass_featstore_count(const hass_featstore *fs) {
    return fs->n_seq;
}
int64_t hass_featstore_tokens(const hass_featstore *fs) {
    return fs->n_tok;
}
int64_t hass_featstore_dim(const hass_featstore *fs) {
    return fs->d;
}
int64_t hass_featstore_len(const hass_featstore *fs, int64_t i) {
    HASS_ASSERT(i >= 0 && i < fs->n_seq);
    return fs->seqs[i].len;
}

int64_t hass_featstore_read(const hass_featstore *fs, int64_t i, int64_t max_len, int32_t *ids,
                            uint8_t *mask, float *feat) {
    HASS_ASSERT(i >= 0 && i < fs->n_seq);
    const seq_ref *r = &fs->seqs[i];
    const uint8_t *p = fs->maps[r->shard].mf.data + r->off;
    int64_t L = r->len, n = L < max_len ? L : max_len, d = fs->d;
    if (ids)
        memcpy(ids, p, (size_t)n * 4);
    if (mask)
        memcpy(mask, p + (size_t)L * 4, (size_t)n);
    if (feat) {
        const uint8_t *f = p + (size_t)L * 5;
        for (int64_t k = 0; k < n * d; k++) {
            uint16_t h;
            memcpy(&h, f + 2 * (size_t)k, 2);
            feat[k] = hass_bf16_to_f32(h);
        }
    }
    return n;
}

/* ======================= writer ======================= */

struct hass_featstore_writer {
    char dir[1024];
    const hass_model *m;
    index_info x;
    int64_t shard_tokens;
    uint8_t *buf; /* header + pending sequences */
    size_t used, cap;
    int64_t pend_seqs, pend_toks, pend_records;
};

void hass_featstore_writer_destroy(hass_featstore_writer *w) {
    if (!w)
        return;
    index_free(&w->x);
    free(w->buf);
    free(w);
}

hass_featstore_writer *hass_featstore_writer_open(const char *dir, const hass_model *m,
                                                  const char *model_path, const char *args,
                                                  int64_t shard_tokens, hass_err *err) {
    if (strlen(dir) + 32 >= 1024) {
        hass_err_set(err, HASS_STATUS_ARG, "%s: path too long", dir);
        return NULL;
    }
    if (hass_mkdir_p(dir, err))
        return NULL;
    hass_featstore_writer *w = calloc(1, sizeof *w);
    if (!w) {
        hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        return NULL;
    }
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    w->m = m;
    w->shard_tokens = shard_tokens > 0 ? shard_tokens : 1;
    uint64_t fp = hass_featstore_fingerprint(m);
    char path[1100];
    snprintf(path, sizeof path, "%s/index.json", dir);
    if (hass_file_exists(path)) {
        if (index_read(dir, &w->x, err)) {
            hass_featstore_writer_destroy(w);
            return NULL;
        }
        const char *why = w->x.fp != fp || w->x.d != m->cfg.d ? "another model"
                          : strcmp(w->x.args, args)           ? "different arguments"
                                                              : NULL;
        if (why) {
            hass_err_set(err, HASS_STATUS_ARG,
                         "%s holds features made with %s (stored args: %s); use another -o "
                         "or remove it",
                         dir, why, w->x.args);
            hass_featstore_writer_destroy(w);
            return NULL;
        }
    } else {
        w->x.d = m->cfg.d;
        w->x.fp = fp;
        w->x.model_path = strdup(model_path ? model_path : "");
        w->x.args = strdup(args);
        if (!w->x.model_path || !w->x.args) {
            hass_err_set(err, HASS_STATUS_OOM, "out of memory");
            hass_featstore_writer_destroy(w);
            return NULL;
        }
    }
    w->pend_records = w->x.records;
    w->used = HASS_FEATSTORE_HEADER;
    return w;
}

int64_t hass_featstore_writer_resume_records(const hass_featstore_writer *w) {
    return w->x.records;
}
int hass_featstore_writer_complete(const hass_featstore_writer *w) {
    return w->x.complete;
}
int64_t hass_featstore_writer_shards(const hass_featstore_writer *w) {
    return w->x.n_shards;
}

static hass_status flush_shard(hass_featstore_writer *w, hass_err *err) {
    if (w->pend_seqs == 0)
        return HASS_OK;
    uint8_t *h = w->buf;
    memcpy(h, HASS_FEATSTORE_MAGIC, 8);
    put_u32(h + 8, HASS_FEATSTORE_VERSION);
    put_u32(h + 12, (uint32_t)HASS_DTYPE_BF16);
    put_u64(h + 16, (uint64_t)w->x.d);
    put_u64(h + 24, (uint64_t)w->pend_seqs);
    put_u64(h + 32, w->x.fp);
    if (w->x.n_shards == w->x.cap_shards) {
        int64_t nc = w->x.cap_shards * 2 + 8;
        shard_entry *s = realloc(w->x.shards, (size_t)nc * sizeof *s);
        if (!s)
            return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        w->x.shards = s;
        w->x.cap_shards = nc;
    }
    shard_entry *e = &w->x.shards[w->x.n_shards];
    snprintf(e->file, sizeof e->file, "shard-%05lld.bin", (long long)w->x.n_shards);
    e->sequences = w->pend_seqs;
    e->tokens = w->pend_toks;
    char path[1100];
    snprintf(path, sizeof path, "%s/%s", w->dir, e->file);
    hass_status st = hass_write_file_atomic(path, w->buf, w->used, err);
    if (st)
        return st;
    w->x.n_shards++;
    w->x.records = w->pend_records;
    st = index_write(w->dir, &w->x, w->m, err);
    if (st)
        return st;
    w->used = HASS_FEATSTORE_HEADER;
    w->pend_seqs = w->pend_toks = 0;
    return HASS_OK;
}

hass_status hass_featstore_writer_add(hass_featstore_writer *w, int64_t len, const int32_t *ids,
                                      const uint8_t *mask, const float *feat, int64_t records_after,
                                      hass_err *err) {
    HASS_ASSERT(len >= 1);
    int64_t d = w->x.d;
    size_t need = hass_featstore_seq_bytes(len, d), want;
    if (!hass_add_ok(w->used, need, &want))
        return hass_err_set(err, HASS_STATUS_OOM, "shard too large");
    if (want > w->cap) {
        size_t nc = w->cap ? w->cap : 1 << 16;
        while (nc < want)
            nc *= 2;
        uint8_t *b = realloc(w->buf, nc);
        if (!b)
            return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        w->buf = b;
        w->cap = nc;
    }
    uint8_t *p = w->buf + w->used;
    put_u64(p, (uint64_t)len);
    memcpy(p + 8, ids, (size_t)len * 4);
    memcpy(p + 8 + (size_t)len * 4, mask, (size_t)len);
    uint8_t *f = p + 8 + (size_t)len * 5;
    for (int64_t k = 0; k < len * d; k++) {
        uint16_t h = hass_f32_to_bf16(feat[k]);
        memcpy(f + 2 * (size_t)k, &h, 2);
    }
    w->used += need;
    w->pend_seqs++;
    w->pend_toks += len;
    w->pend_records = records_after;
    if (w->pend_toks >= w->shard_tokens)
        return flush_shard(w, err);
    return HASS_OK;
}

void hass_featstore_writer_skip(hass_featstore_writer *w, int64_t records_after) {
    w->pend_records = records_after;
}

hass_status hass_featstore_writer_finish(hass_featstore_writer *w, int done, hass_err *err) {
    hass_status st = flush_shard(w, err);
    if (st)
        return st;
    w->x.records = w->pend_records;
    w->x.complete = done;
    return index_write(w->dir, &w->x, w->m, err);
}

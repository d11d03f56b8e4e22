/*
 * tokload.c — tokenizer loaders: llama2.c tokenizer.bin, HF tokenizer.json (+ the
 * tokenizer_config.json beside it) and GGUF tokenizer.ggml.* metadata. Every length, id and
 * type is validated before use; a bad file gives NULL and a one-line message.
 */
#include "tokenizer/tok_internal.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_byte_piece(const char *s, size_t n) {
    static const char hex[] = "0123456789ABCDEF";
    return n == 6 && !memcmp(s, "<0x", 3) && s[5] == '>' && strchr(hex, s[3]) && s[3] &&
           strchr(hex, s[4]) && s[4];
}

/* ---------------- llama2.c tokenizer.bin ---------------- */

static int32_t rd_i32(const uint8_t *p) {
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t r;
    memcpy(&r, &v, 4);
    return r;
}

/* walks the token records; returns the count, or -1 with err set */
static int64_t bin_scan(const uint8_t *d, size_t size, int32_t maxlen, int64_t want,
                        const char *path, hass_err *err) {
    size_t off = 4;
    int64_t n = 0;
    while ((want > 0 && n < want) || (want <= 0 && off < size)) {
        if (size - off < 8) {
            hass_err_set(err, HASS_STATUS_FORMAT, "%s: truncated at token %lld", path,
                         (long long)n);
            return -1;
        }
        int32_t len = rd_i32(d + off + 4);
        float score;
        memcpy(&score, d + off, 4);
        if (len < 0 || len > maxlen || (size_t)len > size - off - 8 || isnan(score)) {
            hass_err_set(err, HASS_STATUS_FORMAT, "%s: token %lld has bad length %d or score", path,
                         (long long)n, len);
            return -1;
        }
        off += 8 + (size_t)len;
        n++;
    }
    if (want > 0 && off < size) { /* more tokens than the model has, or bytes that are none */
        int64_t more = bin_scan(d + off - 4, size - off + 4, maxlen, 0, path, err);
        if (more > 0)
            hass_err_set(err, HASS_STATUS_SHAPE,
                         "%s: the tokenizer has %lld tokens, the model only %lld", path,
                         (long long)(n + more), (long long)want);
        else
            hass_err_set(err, HASS_STATUS_FORMAT, "%s: %zu bytes after the model's %lld tokens",
                         path, size - off, (long long)want);
        return -1;
    }
    return n;
}

hass_tokenizer *hass_tokenizer_load_bin(const char *path, int32_t vocab_size_hint, hass_err *err) {
    hass_mapfile mf = {0};
    if (hass_mapfile_open(&mf, path, err) != HASS_OK)
        return NULL;
    hass_tokenizer *t = hass_tokenizer_load_bin_mem(mf.data, mf.size, vocab_size_hint, path, err);
    hass_mapfile_close(&mf);
    return t;
}

hass_tokenizer *hass_tokenizer_load_bin_mem(const uint8_t *d, size_t size, int32_t vocab_size_hint,
                                            const char *path, hass_err *err) {
    hass_tokenizer *t = NULL;
    if (size < 4) {
        hass_err_set(err, HASS_STATUS_FORMAT, "%s: too short for a tokenizer.bin", path);
        goto fail;
    }
    int32_t maxlen = rd_i32(d);
    if (maxlen <= 0 || maxlen > 65536) {
        hass_err_set(err, HASS_STATUS_FORMAT, "%s: max_token_length %d out of range", path, maxlen);
        goto fail;
    }
    int64_t n = bin_scan(d, size, maxlen, vocab_size_hint, path, err);
    if (n < 0)
        goto fail;
    if (n < 3 || n > (1 << 24)) {
        hass_err_set(err, HASS_STATUS_FORMAT, "%s: %lld tokens", path, (long long)n);
        goto fail;
    }
    t = hass__tok_new(HASS_TOK_SPM, (int32_t)n, err);
    if (!t)
        goto fail;
    t->scores = malloc((size_t)n * sizeof *t->scores);
    if (!t->scores)
        goto oom;
    t->spm_score_mode = 1;
    t->spm_prefix = 1;
    hass__buf tmp = {0};
    size_t off = 4;
    for (int32_t id = 0; id < n; id++) {
        memcpy(&t->scores[id], d + off, 4);
        size_t len = (size_t)rd_i32(d + off + 4);
        const char *s = (const char *)d + off + 8;
        off += 8 + len;
        /* llama2.c wrote <s>/</s> as "\n<s>\n"/"\n</s>\n" and U+2581 as ' ' */
        if ((id == 1 && len == 5 && !memcmp(s, "\n<s>\n", 5)) ||
            (id == 2 && len == 6 && !memcmp(s, "\n</s>\n", 6))) {
            s++;
            len -= 2;
        }
        int ty = TOKT_NORMAL;
        if (id == 0 && len == 5 && !memcmp(s, "<unk>", 5))
            ty = TOKT_UNKNOWN;
        else if ((id == 1 && len == 3 && !memcmp(s, "<s>", 3)) ||
                 (id == 2 && len == 4 && !memcmp(s, "</s>", 4)))
            ty = TOKT_CONTROL;
        else if (is_byte_piece(s, len))
            ty = TOKT_BYTE;
        tmp.n = 0;
        int bad = hass__buf_put(&tmp, "", 0);
        for (size_t i = 0; i < len && !bad; i++)
            bad = ty == TOKT_NORMAL && s[i] == ' ' ? hass__buf_put(&tmp, "\xe2\x96\x81", 3)
                                                   : hass__buf_put(&tmp, s + i, 1);
        bad = bad || hass__tok_set_piece(t, id, tmp.p, tmp.n, ty);
        if (!bad && ty != TOKT_NORMAL && ty != TOKT_BYTE)
            bad = hass__tok_add_special(t, id, tmp.p, tmp.n, 1);
        if (bad) {
            free(tmp.p);
            goto oom;
        }
        if (ty == TOKT_UNKNOWN)
            t->unk = id;
        else if (ty == TOKT_CONTROL)
            *(id == 1 ? &t->bos : &t->eos) = id;
    }
    free(tmp.p);
    if (hass__tok_finish(t, err) != HASS_OK)
        goto fail;
    return t;
oom:
    hass_err_set(err, HASS_STATUS_OOM, "%s: out of memory", path);
fail:
    hass_tokenizer_free(t);
    return NULL;
}

/* ---------------- HF tokenizer.json ---------------- */

/* integral JSON number in [0, 2^24) or -1 */
static int32_t jid(const cJSON *v) {
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < (1 << 24)) ||
        v->valuedouble != (double)(int32_t)v->valuedouble)
        return -1;
    return (int32_t)v->valuedouble;
}
/* bos_token / eos_token: a string or {"content": ...} */
static const char *jtoken(const cJSON *o, const char *k) {
    const cJSON *v = hass_json_get(o, k);
    if (cJSON_IsString(v))
        return v->valuestring;
    return hass_json_str(v, "content");
}

typedef struct {
    int spm, bbpe;     /* evidence for each algorithm */
    int prefix, split; /* SPM dummy prefix mode, Metaspace split */
    int replace;       /* spaces become U+2581 (a Replace normalizer or Metaspace) */
    const char *regex; /* byte-level pre-tokenizer regex */
    const char *why;   /* unsupported component */
} json_kind;

static void scan_normalizer(const cJSON *n, json_kind *k) {
    const char *ty = hass_json_str(n, "type");
    if (!ty)
        return;
    if (!strcmp(ty, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, hass_json_get(n, "normalizers")) scan_normalizer(e, k);
    } else if (!strcmp(ty, "Prepend")) {
        /* what hass applies: a U+2581 before the text, spaces replaced by U+2581 (both
         * SentencePiece's); any other content is refused by name, not treated as these */
        const char *pre = hass_json_str(n, "prepend");
        if (!pre || strcmp(pre, "\xe2\x96\x81"))
            k->why = "Prepend normalizer with a prepend other than U+2581";
        k->spm = 1;
        k->prefix = 1;
    } else if (!strcmp(ty, "Replace")) {
        const char *pat = hass_json_str(hass_json_get(n, "pattern"), "String");
        const char *content = hass_json_str(n, "content");
        if (!pat || strcmp(pat, " ") || !content || strcmp(content, "\xe2\x96\x81"))
            k->why = "Replace normalizer other than ' ' -> U+2581";
        k->spm = 1;
        k->replace = 1;
    } else {
        k->why = ty;
    }
}

static void scan_pretok(const cJSON *p, json_kind *k) {
    const char *ty = hass_json_str(p, "type");
    if (!ty)
        return;
    if (!strcmp(ty, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, hass_json_get(p, "pretokenizers")) scan_pretok(e, k);
    } else if (!strcmp(ty, "Metaspace")) {
        const char *rep = hass_json_str(p, "replacement");
        if (rep && strcmp(rep, "\xe2\x96\x81"))
            k->why = "Metaspace with a replacement other than U+2581";
        k->spm = 1;
        k->replace = 1;
        const char *scheme = hass_json_str(p, "prepend_scheme");
        k->prefix = scheme ? (!strcmp(scheme, "always")  ? 1
                              : !strcmp(scheme, "first") ? 2
                                                         : 0)
                           : hass_json_bool(p, "add_prefix_space", 1);
        k->split = hass_json_bool(p, "split", 1);
    } else if (!strcmp(ty, "ByteLevel")) {
        k->bbpe = 1;
        if (hass_json_bool(p, "add_prefix_space", 0))
            k->why = "ByteLevel add_prefix_space";
        if (!k->regex && hass_json_bool(p, "use_regex", 1))
            k->regex = hass__re_gpt2;
    } else if (!strcmp(ty, "Split")) {
        const char *re = hass_json_str(hass_json_get(p, "pattern"), "Regex");
        const char *beh = hass_json_str(p, "behavior");
        if (!re || (beh && strcmp(beh, "Isolated")) || hass_json_bool(p, "invert", 0) ||
            (k->regex && k->regex != hass__re_gpt2))
            k->why = "Split pre-tokenizer variant";
        k->regex = re;
    } else {
        k->why = ty;
    }
}

/* tokenizer_config.json beside path (optional) */
/* path: the tokenizer.json whose directory may hold a tokenizer_config.json; NULL: none. */
static hass_status read_config(hass_tokenizer *t, const char *path, hass_err *err) {
    char cfg[1024] = "";
    if (path) {
        const char *slash = strrchr(path, '/');
        int dl = slash ? (int)(slash - path) + 1 : 0;
        if (snprintf(cfg, sizeof cfg, "%.*stokenizer_config.json", dl, path) >= (int)sizeof cfg)
            return HASS_OK;
    }
    const char *bos = NULL, *eos = NULL;
    cJSON *root = NULL;
    if (path && hass_file_exists(cfg)) {
        char *text = NULL;
        size_t size = 0;
        if (hass_read_file(cfg, &text, &size, err) != HASS_OK)
            return err ? err->code : HASS_STATUS_IO;
        root = cJSON_ParseWithLength(text, size);
        free(text);
        if (!cJSON_IsObject(root)) {
            cJSON_Delete(root);
            return hass_err_set(err, HASS_STATUS_FORMAT, "%s: not a JSON object", cfg);
        }
        bos = jtoken(root, "bos_token");
        eos = jtoken(root, "eos_token");
        const cJSON *ab = hass_json_get(root, "add_bos_token");
        if (cJSON_IsBool(ab))
            t->add_bos = cJSON_IsTrue(ab);
        const cJSON *ct = hass_json_get(root, "chat_template");
        const char *tmpl = cJSON_IsString(ct) ? ct->valuestring : NULL;
        const cJSON *e;
        if (cJSON_IsArray(ct)) /* [{"name": "default", "template": ...}, ...] */
            cJSON_ArrayForEach(e, ct) if (!tmpl || (hass_json_str(e, "name") &&
                                                    !strcmp(hass_json_str(e, "name"), "default")))
                tmpl = hass_json_str(e, "template");
        if (tmpl && !(t->chat_template = strdup(tmpl))) {
            cJSON_Delete(root);
            return hass_err_set(err, HASS_STATUS_OOM, "%s: out of memory", cfg);
        }
    }
    if (!bos)
        bos = t->kind == HASS_TOK_SPM ? "<s>" : "<|begin_of_text|>";
    if (!eos)
        eos = t->kind == HASS_TOK_SPM ? "</s>" : "<|end_of_text|>";
    t->bos = hass_tokenizer_find(t, bos, strlen(bos));
    t->eos = hass_tokenizer_find(t, eos, strlen(eos));
    if (t->eos < 0 && t->kind == HASS_TOK_BYTE_BPE) /* GPT-2 */
        t->eos = hass_tokenizer_find(t, "<|endoftext|>", 13);
    cJSON_Delete(root);
    return HASS_OK;
}

static hass_status json_merges(hass_tokenizer *t, const cJSON *merges, const char *path,
                               hass_err *err) {
    int64_t n = cJSON_GetArraySize(merges);
    hass_status st = hass__tok_reserve_merges(t, n, err);
    if (st != HASS_OK)
        return st;
    hass__buf a = {0}, b = {0}, ab = {0};
    const cJSON *e;
    int32_t rank = 0;
    st = HASS_OK;
    cJSON_ArrayForEach(e, merges) {
        const char *sa = NULL, *sb = NULL;
        size_t la = 0, lb = 0;
        if (cJSON_IsString(e)) {
            const char *sp = strchr(e->valuestring, ' ');
            if (sp && !strchr(sp + 1, ' ')) {
                sa = e->valuestring;
                la = (size_t)(sp - sa);
                sb = sp + 1;
                lb = strlen(sb);
            }
        } else if (cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            sa = cJSON_GetArrayItem(e, 0)->valuestring;
            sb = cJSON_GetArrayItem(e, 1)->valuestring;
            la = strlen(sa);
            lb = strlen(sb);
        }
        if (!sa) {
            st = hass_err_set(err, HASS_STATUS_FORMAT, "%s: merge %d is not \"a b\"", path, rank);
            break;
        }
        a.n = b.n = ab.n = 0;
        int bad;
        if (t->kind == HASS_TOK_SPM)
            bad = hass__buf_put(&a, sa, la) | hass__buf_put(&b, sb, lb);
        else
            bad = hass__bpe_decode_piece(sa, la, &a) | hass__bpe_decode_piece(sb, lb, &b);
        bad = bad || hass__buf_put(&ab, a.p, a.n) || hass__buf_put(&ab, b.p, b.n);
        int32_t ia = bad ? -1 : hass__tok_map_find(t, a.p, a.n);
        int32_t ib = bad ? -1 : hass__tok_map_find(t, b.p, b.n);
        int32_t im = bad ? -1 : hass__tok_map_find(t, ab.p, ab.n);
        if (ia < 0 || ib < 0 || im < 0) {
            st = hass_err_set(err, HASS_STATUS_FORMAT, "%s: merge %d (%.40s) is out of the vocab",
                              path, rank, sa);
            break;
        }
        st = hass__tok_add_merge(t, ia, ib, rank, im, err);
        if (st != HASS_OK)
            break;
        rank++;
    }
    free(a.p);
    free(b.p);
    free(ab.p);
    return st;
}

/* path names the file in messages; cfg_path (may be NULL) locates tokenizer_config.json. */
static hass_tokenizer *json_build(const cJSON *root, const char *path, const char *cfg_path,
                                  hass_err *err) {
    const cJSON *model = hass_json_get(root, "model");
    const cJSON *vocab = hass_json_get(model, "vocab");
    const cJSON *merges = hass_json_get(model, "merges");
    const char *mtype = hass_json_str(model, "type");
    if (!cJSON_IsObject(model) || !cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) {
        hass_err_set(err, HASS_STATUS_FORMAT, "%s: missing model.vocab or model.merges", path);
        return NULL;
    }
    if (mtype && strcmp(mtype, "BPE")) {
        hass_err_set(err, HASS_STATUS_UNSUPPORTED, "%s: model type %s is not BPE", path, mtype);
        return NULL;
    }
    json_kind k = {0};
    scan_normalizer(hass_json_get(root, "normalizer"), &k);
    scan_pretok(hass_json_get(root, "pre_tokenizer"), &k);
    if (hass_json_bool(model, "byte_fallback", 0) && !k.bbpe)
        k.spm = 1;
    if (!k.why && k.prefix && !k.replace)
        k.why = "a Prepend normalizer without the Replace of spaces";
    if (k.why || k.spm == k.bbpe || (k.bbpe && !k.regex)) {
        hass_err_set(err, HASS_STATUS_UNSUPPORTED, "%s: unsupported tokenizer (%s)", path,
                     k.why ? k.why : "neither SentencePiece-BPE nor byte-level BPE");
        return NULL;
    }
    /* vocab size: one past the largest id */
    int32_t n = 0;
    const cJSON *e;
    const cJSON *added = hass_json_get(root, "added_tokens");
    cJSON_ArrayForEach(e, vocab) {
        int32_t id = jid(e);
        if (id < 0) {
            hass_err_set(err, HASS_STATUS_FORMAT, "%s: vocab entry %.40s has a bad id", path,
                         e->string);
            return NULL;
        }
        n = id + 1 > n ? id + 1 : n;
    }
    cJSON_ArrayForEach(e, added) {
        int32_t id = jid(hass_json_get(e, "id"));
        if (id < 0 || !hass_json_str(e, "content")) {
            hass_err_set(err, HASS_STATUS_FORMAT, "%s: bad added_tokens entry", path);
            return NULL;
        }
        n = id + 1 > n ? id + 1 : n;
    }
    hass_tokenizer *t = hass__tok_new(k.spm ? HASS_TOK_SPM : HASS_TOK_BYTE_BPE, n, err);
    if (!t)
        return NULL;
    uint8_t *seen = calloc((size_t)n, 1);
    if (!seen)
        goto oom;
    cJSON_ArrayForEach(e, vocab) {
        int32_t id = jid(e);
        size_t len = strlen(e->string);
        if (seen[id]++) {
            hass_err_set(err, HASS_STATUS_FORMAT, "%s: id %d appears twice in the vocab", path, id);
            goto fail;
        }
        int ty = k.spm && is_byte_piece(e->string, len) ? TOKT_BYTE : TOKT_NORMAL;
        if (hass__tok_set_piece(t, id, e->string, len, ty))
            goto oom;
    }
    cJSON_ArrayForEach(e, added) {
        int32_t id = jid(hass_json_get(e, "id"));
        const char *s = hass_json_str(e, "content");
        int special = hass_json_bool(e, "special", 0);
        if (hass__tok_set_piece(t, id, s, strlen(s), special ? TOKT_CONTROL : TOKT_USER) ||
            hass__tok_add_special(t, id, s, strlen(s), special))
            goto oom;
    }
    free(seen);
    seen = NULL;
    t->spm_prefix = k.prefix;
    t->spm_split = k.split;
    t->ignore_merges = hass_json_bool(model, "ignore_merges", 0);
    const char *unk = hass_json_str(model, "unk_token");
    if (unk)
        t->unk = hass_tokenizer_find(t, unk, strlen(unk));
    if (read_config(t, cfg_path, err) != HASS_OK || hass__tok_finish(t, err) != HASS_OK ||
        json_merges(t, merges, path, err) != HASS_OK ||
        (k.bbpe && hass__bpe_compile(t, k.regex, err) != HASS_OK))
        goto fail;
    return t;
oom:
    hass_err_set(err, HASS_STATUS_OOM, "%s: out of memory", path);
fail:
    free(seen);
    hass_tokenizer_free(t);
    return NULL;
}

hass_tokenizer *hass_tokenizer_load_json(const char *path, hass_err *err) {
    char *text = NULL;
    size_t size = 0;
    if (hass_read_file(path, &text, &size, err) != HASS_OK)
        return NULL;
    cJSON *root = cJSON_ParseWithLength(text, size);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        hass_err_set(err, HASS_STATUS_FORMAT, "%s: not a JSON object", path);
        return NULL;
    }
    hass_tokenizer *t = json_build(root, path, path, err);
    cJSON_Delete(root);
    return t;
}

hass_tokenizer *hass_tokenizer_load_json_mem(const char *json, size_t len, hass_err *err) {
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        hass_err_set(err, HASS_STATUS_FORMAT, "tokenizer.json: not a JSON object");
        return NULL;
    }
    hass_tokenizer *t = json_build(root, "tokenizer.json", NULL, err);
    cJSON_Delete(root);
    return t;
}

/* ---------------- GGUF ---------------- */

static const hass_gguf_kv *gguf_array(const hass_gguf *g, const char *key, hass_gguf_type et) {
    const hass_gguf_kv *kv = hass_gguf_find(g, key);
    return kv && kv->type == HASS_GGUF_ARRAY && kv->arr_type == et ? kv : NULL;
}

/* A special token id: -1 when the key is absent; -2 (err set) when it is not one of the n. */
static int32_t gguf_id(const hass_gguf *g, const char *key, int32_t n, hass_err *err) {
    uint64_t v;
    if (!hass_gguf_get_u64(g, key, &v))
        return -1;
    if (v < (uint64_t)n)
        return (int32_t)v;
    hass_err_set(err, HASS_STATUS_FORMAT, "gguf tokenizer: %s %llu is outside its %d tokens", key,
                 (unsigned long long)v, n);
    return -2;
}

static hass_status gguf_merges(hass_tokenizer *t, const hass_gguf_kv *m, hass_err *err) {
    hass_status st = hass__tok_reserve_merges(t, (int64_t)m->arr_n, err);
    hass__buf ab = {0};
    for (uint64_t r = 0; st == HASS_OK && r < m->arr_n; r++) {
        const char *s = m->arr_strs[r];
        size_t len = m->arr_lens[r];
        const char *sp = memchr(s, ' ', len);
        if (!sp || r > INT32_MAX) {
            st = hass_err_set(err, HASS_STATUS_FORMAT, "gguf tokenizer: merge %llu is not \"a b\"",
                              (unsigned long long)r);
            break;
        }
        int32_t id[3];
        size_t la = (size_t)(sp - s);
        const char *parts[3] = {s, sp + 1, NULL};
        size_t lens[3] = {la, len - la - 1, 0};
        for (int k = 0; k < 2; k++) {
            ab.n = 0;
            int rc = hass__bpe_decode_piece(parts[k], lens[k], &ab);
            id[k] = rc ? -1 : hass__tok_map_find(t, ab.p, ab.n);
        }
        ab.n = 0;
        int rc = hass__bpe_decode_piece(s, la, &ab);
        rc = rc ? rc : hass__bpe_decode_piece(sp + 1, len - la - 1, &ab);
        id[2] = rc ? -1 : hass__tok_map_find(t, ab.p, ab.n);
        if (id[0] < 0 || id[1] < 0 || id[2] < 0) {
            st = hass_err_set(err, HASS_STATUS_FORMAT,
                              "gguf tokenizer: merge %llu is out of the vocab",
                              (unsigned long long)r);
            break;
        }
        st = hass__tok_add_merge(t, id[0], id[1], (int32_t)r, id[2], err);
    }
    free(ab.p);
    return st;
}

hass_tokenizer *hass_tokenizer_load_gguf(const hass_gguf *g, hass_err *err) {
    const char *model = hass_gguf_get_str(g, "tokenizer.ggml.model");
    const hass_gguf_kv *toks = gguf_array(g, "tokenizer.ggml.tokens", HASS_GGUF_STRING);
    if (!model || !toks || toks->arr_n == 0 || toks->arr_n > (1u << 24)) {
        hass_err_set(err, HASS_STATUS_FORMAT, "gguf: no tokenizer.ggml.model/tokens");
        return NULL;
    }
    int spm = !strcmp(model, "llama");
    if (!spm && strcmp(model, "gpt2")) {
        hass_err_set(err, HASS_STATUS_UNSUPPORTED, "gguf: tokenizer model '%s' unsupported", model);
        return NULL;
    }
    int32_t n = (int32_t)toks->arr_n;
    const hass_gguf_kv *scores = gguf_array(g, "tokenizer.ggml.scores", HASS_GGUF_F32);
    const hass_gguf_kv *types = gguf_array(g, "tokenizer.ggml.token_type", HASS_GGUF_I32);
    const hass_gguf_kv *merges = gguf_array(g, "tokenizer.ggml.merges", HASS_GGUF_STRING);
    if ((types && types->arr_n != toks->arr_n) ||
        (spm && (!scores || scores->arr_n != toks->arr_n)) || (!spm && !merges)) {
        hass_err_set(err, HASS_STATUS_FORMAT,
                     "gguf: tokenizer scores/token_type/merges missing or of the wrong length");
        return NULL;
    }
    hass_tokenizer *t = hass__tok_new(spm ? HASS_TOK_SPM : HASS_TOK_BYTE_BPE, n, err);
    if (!t)
        return NULL;
    if (spm && !(t->scores = malloc((size_t)n * sizeof *t->scores)))
        goto oom;
    for (int32_t id = 0; id < n; id++) {
        const char *s = toks->arr_strs[id];
        size_t len = toks->arr_lens[id];
        int32_t ty = TOKT_NORMAL;
        if (types)
            memcpy(&ty, types->arr_data + 4 * (size_t)id, 4);
        else if (spm && is_byte_piece(s, len))
            ty = TOKT_BYTE;
        if (ty < TOKT_NORMAL || ty > TOKT_BYTE)
            ty = TOKT_NORMAL;
        if (spm) {
            memcpy(&t->scores[id], scores->arr_data + 4 * (size_t)id, 4);
            if (isnan(t->scores[id]))
                t->scores[id] = -INFINITY;
        }
        if (hass__tok_set_piece(t, id, s, len, ty))
            goto oom;
        if ((ty == TOKT_CONTROL || ty == TOKT_UNKNOWN || ty == TOKT_USER) &&
            hass__tok_add_special(t, id, s, len, ty != TOKT_USER))
            goto oom;
    }
    t->spm_score_mode = spm;
    uint64_t v;
    t->spm_prefix = hass_gguf_get_u64(g, "tokenizer.ggml.add_space_prefix", &v) ? v != 0 : 1;
    t->bos = gguf_id(g, "tokenizer.ggml.bos_token_id", n, err);
    t->eos = gguf_id(g, "tokenizer.ggml.eos_token_id", n, err);
    t->unk = gguf_id(g, "tokenizer.ggml.unknown_token_id", n, err);
    if (t->bos == -2 || t->eos == -2 || t->unk == -2)
        goto fail;
    if (hass_gguf_get_u64(g, "tokenizer.ggml.add_bos_token", &v))
        t->add_bos = v != 0;
    const char *tmpl = hass_gguf_get_str(g, "tokenizer.chat_template");
    if (tmpl && !(t->chat_template = strdup(tmpl)))
        goto oom;
    /* a byte-level vocabulary's pre-tokenizer, by llama.cpp's name: only those hass applies
     * exactly; any other (or none) is refused by name, never replaced by another regex */
    const char *pre = hass_gguf_get_str(g, "tokenizer.ggml.pre");
    int llama3 =
        pre && (!strcmp(pre, "llama-bpe") || !strcmp(pre, "llama3") || !strcmp(pre, "llama-v3"));
    t->ignore_merges = llama3;
    if (!spm && !llama3 && !(pre && !strcmp(pre, "gpt-2"))) {
        hass_err_set(err, HASS_STATUS_UNSUPPORTED,
                     "gguf tokenizer: tokenizer.ggml.pre '%.64s' is not supported (gpt-2, "
                     "llama-bpe are)",
                     pre ? pre : "(missing)");
        goto fail;
    }
    if (hass__tok_finish(t, err) != HASS_OK ||
        (!spm && (gguf_merges(t, merges, err) != HASS_OK ||
                  hass__bpe_compile(t, llama3 ? hass__re_llama3 : hass__re_gpt2, err) != HASS_OK)))
        goto fail;
    return t;
oom:
    hass_err_set(err, HASS_STATUS_OOM, "gguf tokenizer: out of memory");
fail:
    hass_tokenizer_free(t);
    return NULL;
}

/* ---------------- the tokenizer of a model ---------------- */

static hass_tokenizer *open_gguf(const char *path, hass_err *err) {
    hass_gguf g;
    if (hass_gguf_open(&g, path, err) != HASS_OK)
        return NULL;
    hass_tokenizer *t = hass_tokenizer_load_gguf(&g, err);
    hass_gguf_close(&g);
    return t;
}

hass_tokenizer *hass_tokenizer_open(const char *model, const char *tokenizer, hass_err *err) {
    hass_file_kind mk = model ? hass_file_kind_of(model) : HASS_FILE_MISSING;
    if (tokenizer) {
        hass_file_kind tk = hass_file_kind_of(tokenizer);
        if (tk == HASS_FILE_JSON)
            return hass_tokenizer_load_json(tokenizer, err);
        if (tk == HASS_FILE_GGUF)
            return open_gguf(tokenizer, err);
        int32_t vocab = 0; /* a llama2.c checkpoint's header tells how many tokens it has */
        if (mk != HASS_FILE_MISSING && mk != HASS_FILE_DIR && mk != HASS_FILE_GGUF) {
            hass_llama2c ck;
            if (hass_llama2c_open(&ck, model, err) != HASS_OK)
                return NULL;
            vocab = ck.cfg.vocab_size;
            hass_llama2c_close(&ck);
        }
        return hass_tokenizer_load_bin(tokenizer, vocab, err);
    }
    char path[1024];
    switch (mk) {
    case HASS_FILE_MISSING:
        hass_err_set(err, model ? HASS_STATUS_IO : HASS_STATUS_ARG, "%s: no such file or directory",
                     model ? model : "(no model or tokenizer)");
        return NULL;
    case HASS_FILE_DIR:
        if (snprintf(path, sizeof path, "%s/tokenizer.json", model) >= (int)sizeof path) {
            hass_err_set(err, HASS_STATUS_ARG, "%s: path too long", model);
            return NULL;
        }
        return hass_tokenizer_load_json(path, err);
    case HASS_FILE_GGUF:
        return open_gguf(model, err);
    default: { /* loaded as a llama2.c checkpoint: a file that is none is a data error */
        hass_llama2c ck;
        if (hass_llama2c_open(&ck, model, err) != HASS_OK)
            return NULL;
        hass_llama2c_close(&ck);
        hass_err_set(err, HASS_STATUS_ARG,
                     "%s: a llama2.c checkpoint needs its tokenizer.bin (-z FILE, or --tokenizer)",
                     model);
        return NULL;
    }
    }
}

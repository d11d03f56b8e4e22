/*
 * draft_ckpt.c — between the trainer's flat parameter array and a draft directory in the
 * EAGLE layout (DESIGN.md section 4): writing parameters as a draft, and `draft-init`'s
 * freshly initialised drafts.
 */
#include "train/draft_ckpt.h"
#include "train/featstore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

hass_draft_config hass_draft_config_for(const hass_model *m, int has_bias) {
    hass_draft_config c;
    memset(&c, 0, sizeof c);
    c.d = m->cfg.d;
    c.H = m->cfg.H;
    c.Hkv = m->cfg.Hkv;
    c.ffn = m->cfg.ffn;
    c.V = m->cfg.V;
    c.has_bias = has_bias;
    c.rms_eps = m->cfg.eps;
    c.rope = m->cfg.rope;          /* the target's frequencies, scaling included */
    c.rope_style = HASS_ROPE_HALF; /* draft heads are Hugging Face modules (draft.c) */
    return c;
}

hass_status hass_draft_write_params(const char *dir, const hass_model_config *target_cfg,
                                    const hass_draft_config *c, const hass_draft_layout *L,
                                    const float *params, hass_dtype dtype, const char *target_name,
                                    hass_err *err) {
    hass_tensor t[HASS_DP_COUNT];
    int n = 0;
    for (int p = 0; p < HASS_DP_COUNT; p++) {
        if (L->numel[p] == 0)
            continue;
        hass_tensor *x = &t[n++];
        memset(x, 0, sizeof *x);
        snprintf(x->name, sizeof x->name, "%s", hass_draft_param_name((hass_draft_param)p));
        x->dtype = HASS_DTYPE_F32;
        x->ndim = L->ndim[p];
        x->shape[0] = L->shape[p][0];
        x->shape[1] = L->shape[p][1];
        x->data = params + L->off[p];
        x->nbytes = L->numel[p] * sizeof(float);
    }
    return hass_draft_save(dir, target_cfg, &c->rope, c->has_bias, c->ffn, t, n, dtype, target_name,
                           err);
}

hass_status hass_draft_write_fresh(const char *dir, const hass_model *m, int has_bias,
                                   uint64_t seed, hass_dtype dtype, const char *target_name,
                                   hass_err *err) {
    hass_draft_config c = hass_draft_config_for(m, has_bias);
    hass_status st = hass_draft_config_check(&c, err);
    if (st)
        return st;
    hass_draft_layout L;
    hass_draft_layout_init(&L, &c);
    float *params = hass_aligned_alloc(L.total * sizeof(float));
    if (!params)
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    hass_draft_params_init(params, &L, &c, seed);
    st = hass_draft_write_params(dir, &m->cfg, &c, &L, params, dtype, target_name, err);
    hass_aligned_free(params);
    return st;
}

typedef struct {
    int64_t count;
    int32_t id;
} id_count;

static int by_count_desc(const void *a, const void *b) {
    const id_count *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return x->id < y->id ? -1 : (x->id > y->id);
}

hass_status hass_draft_write_vocab(const char *draft_dir, const int32_t *vocab, int64_t n,
                                   hass_err *err) {
    hass_st_set st;
    memset(&st, 0, sizeof st);
    hass_status rc = hass_safetensors_open_dir(&st, draft_dir, err);
    if (rc)
        return rc;
    hass_tensor *ts = calloc((size_t)st.n_tensors + 1, sizeof *ts);
    if (!ts) {
        hass_st_set_close(&st);
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    }
    int nt = 0;
    for (int i = 0; i < st.n_tensors; i++)
        if (strcmp(st.by_name[i]->name, "draft_vocab") != 0)
            ts[nt++] = *st.by_name[i];
    hass_tensor *t = &ts[nt++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "draft_vocab");
    t->dtype = HASS_DTYPE_I32;
    t->ndim = 1;
    t->shape[0] = n;
    t->data = vocab;
    t->nbytes = (size_t)n * sizeof(int32_t);
    char path[1100];
    snprintf(path, sizeof path, "%s/model.safetensors", draft_dir);
    /* the writer renames over the file that st still maps: the mapping stays valid */
    rc = hass_safetensors_write(path, ts, nt, NULL, err);
    free(ts);
    hass_st_set_close(&st);
    return rc;
}

hass_status hass_draft_set_vocab(const char *draft_dir, const hass_model *m, const char *feat_dir,
                                 int64_t n_vocab, hass_err *err) {
    int64_t V = m->cfg.V;
    if (n_vocab < 1 || n_vocab > V)
        return hass_err_set(err, HASS_STATUS_ARG, "draft vocabulary size must be in [1, %lld]",
                            (long long)V);
    hass_featstore *fs = hass_featstore_open(feat_dir, m, err);
    if (!fs)
        return err ? err->code : HASS_STATUS_FORMAT;
    id_count *cnt = calloc((size_t)V, sizeof *cnt);
    int64_t maxlen = 0, n = hass_featstore_count(fs);
    for (int64_t i = 0; i < n; i++)
        maxlen = hass_featstore_len(fs, i) > maxlen ? hass_featstore_len(fs, i) : maxlen;
    int32_t *ids = malloc((size_t)(maxlen + 1) * sizeof(int32_t));
    uint8_t *mask = malloc((size_t)maxlen + 1);
    int32_t *vocab = NULL;
    hass_status rc = HASS_OK;
    if (!cnt || !ids || !mask) {
        rc = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        goto done;
    }
    for (int64_t v = 0; v < V; v++)
        cnt[v].id = (int32_t)v;
    /* the tokens the draft learns to propose: those at trained (masked-in) positions */
    for (int64_t i = 0; i < n; i++) {
        int64_t len = hass_featstore_read(fs, i, maxlen, ids, mask, NULL);
        for (int64_t k = 0; k < len; k++)
            if (mask[k] && ids[k] >= 0 && ids[k] < V)
                cnt[ids[k]].count++;
    }
    qsort(cnt, (size_t)V, sizeof *cnt, by_count_desc);
    vocab = malloc((size_t)n_vocab * sizeof(int32_t));
    if (!vocab) {
        rc = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n_vocab; i++)
        vocab[i] = cnt[i].id;
    rc = hass_draft_write_vocab(draft_dir, vocab, n_vocab, err);
done:
    hass_featstore_close(fs);
    free(vocab);
    free(cnt);
    free(ids);
    free(mask);
    return rc;
}

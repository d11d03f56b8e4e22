/*
 * draft_ckpt.c — between the trainer's flat parameter array and a draft directory in the
 * EAGLE layout (DESIGN.md section 4): writing parameters as a draft, and `draft-init`'s
 * freshly initialised drafts.
 */
#include "train/draft_ckpt.h"

#include <stdio.h>
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
    c.rope_theta = m->cfg.rope_theta;
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
    return hass_draft_save(dir, target_cfg, c->has_bias, c->ffn, t, n, dtype, target_name, err);
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

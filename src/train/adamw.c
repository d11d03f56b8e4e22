/*
 * adamw.c — the optimizer of EAGLE/HASS training (HASS.md section 4): AdamW with PyTorch
 * semantics (decoupled weight decay), preceded by gradient clipping BY VALUE (each element
 * clamped to +-0.5, accelerate's clip_grad_value_), and the Hugging Face linear warmup / linear
 * decay schedule. One flat loop over the parameter block (llm.c style).
 */
#include "train/gemm.h"
#include "train/train.h"

#include <math.h>

hass_adamw_config hass_adamw_default(void) {
    hass_adamw_config c = {
        .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.01f, .clip_value = 0.5f};
    return c;
}

typedef struct {
    float *params, *grads, *m, *v;
    size_t n;
    float lr, bc1, bc2, decay;
    const hass_adamw_config *c;
} adamw_ctx;

static void adamw_task(void *vc, int ith, int nth) {
    const adamw_ctx *a = vc;
    const hass_adamw_config *c = a->c;
    float b1 = c->beta1, b2 = c->beta2, clip = c->clip_value, lr = a->lr;
    int64_t lo, hi;
    hass_split((int64_t)a->n, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) {
        float g = a->grads[i];
        if (clip > 0.0f) {
            g = g > clip ? clip : (g < -clip ? -clip : g);
            a->grads[i] = g;
        }
        float mi = b1 * a->m[i] + (1.0f - b1) * g;
        float vi = b2 * a->v[i] + (1.0f - b2) * g * g;
        a->m[i] = mi, a->v[i] = vi;
        // PyTorch order: p *= 1 - lr*wd, then p -= lr * mhat / (sqrt(vhat) + eps)
        float p = a->params[i] * a->decay;
        a->params[i] = p - lr * (mi / a->bc1) / (sqrtf(vi / a->bc2) + c->eps);
    }
}

void hass_adamw_update(float *params, float *grads, float *m, float *v, size_t n, float lr,
                       int64_t t, const hass_adamw_config *c) {
    HASS_ASSERT(t >= 1);
    adamw_ctx a = {params,
                   grads,
                   m,
                   v,
                   n,
                   lr,
                   1.0f - (float)pow(c->beta1, (double)t),
                   1.0f - (float)pow(c->beta2, (double)t),
                   1.0f - lr * c->weight_decay,
                   c};
    /* elementwise, so the result does not depend on the split */
    hass_pool *pool = n >= (1u << 16) ? hass_gemm_default_pool() : NULL;
    hass_pool_run(pool, adamw_task, &a);
}

float hass_lr_schedule(int64_t step, int64_t warmup, int64_t total, float peak) {
    if (step < warmup)
        return peak * (float)step / (float)(warmup > 1 ? warmup : 1);
    int64_t span = total - warmup > 1 ? total - warmup : 1;
    double f = (double)(total - step) / (double)span;
    return peak * (float)(f > 0.0 ? f : 0.0);
}

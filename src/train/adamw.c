/*
 * adamw.c — the optimizer of EAGLE/HASS training (HASS.md section 4): AdamW with PyTorch
 * semantics (decoupled weight decay), preceded by gradient clipping BY VALUE (each element
 * clamped to +-0.5, accelerate's clip_grad_value_), and the Hugging Face linear warmup / linear
 * decay schedule. One flat loop over the parameter block (llm.c style).
 */
#include "train/train.h"

#include <math.h>

hass_adamw_config hass_adamw_default(void) {
    hass_adamw_config c = {
        .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.01f, .clip_value = 0.5f};
    return c;
}

void hass_adamw_update(float *params, float *grads, float *m, float *v, size_t n, float lr,
                       int64_t t, const hass_adamw_config *c) {
    HASS_ASSERT(t >= 1);
    float b1 = c->beta1, b2 = c->beta2, clip = c->clip_value;
    float bc1 = 1.0f - (float)pow(b1, (double)t), bc2 = 1.0f - (float)pow(b2, (double)t);
    float decay = 1.0f - lr * c->weight_decay;
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        if (clip > 0.0f) {
            g = g > clip ? clip : (g < -clip ? -clip : g);
            grads[i] = g;
        }
        float mi = b1 * m[i] + (1.0f - b1) * g;
        float vi = b2 * v[i] + (1.0f - b2) * g * g;
        m[i] = mi, v[i] = vi;
        // PyTorch order: p *= 1 - lr*wd, then p -= lr * mhat / (sqrt(vhat) + eps)
        float p = params[i] * decay;
        params[i] = p - lr * (mi / bc1) / (sqrtf(vi / bc2) + c->eps);
    }
}

float hass_lr_schedule(int64_t step, int64_t warmup, int64_t total, float peak) {
    if (step < warmup)
        return peak * (float)step / (float)(warmup > 1 ? warmup : 1);
    int64_t span = total - warmup > 1 ? total - warmup : 1;
    double f = (double)(total - step) / (double)span;
    return peak * (float)(f > 0.0 ? f : 0.0);
}

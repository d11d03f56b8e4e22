/* tensor.c — dtype names and sizes. */
#include "core/tensor.h"
#include "core/core.h"

const char *hass_dtype_name(hass_dtype t) {
    static const char *names[] = {"F32", "F16", "BF16", "Q8_0", "I32", "I64", "U8"};
    return (unsigned)t < HASS_DTYPE_COUNT ? names[t] : "?";
}

size_t hass_dtype_bytes(hass_dtype t, size_t n) {
    size_t r = 0;
    switch (t) {
    case HASS_DTYPE_F32:
    case HASS_DTYPE_I32:
        return hass_mul_ok(n, 4, &r) ? r : 0;
    case HASS_DTYPE_F16:
    case HASS_DTYPE_BF16:
        return hass_mul_ok(n, 2, &r) ? r : 0;
    case HASS_DTYPE_I64:
        return hass_mul_ok(n, 8, &r) ? r : 0;
    case HASS_DTYPE_U8:
        return n;
    case HASS_DTYPE_Q8_0:
        if (n % 32)
            return 0;
        return hass_mul_ok(n / 32, 34, &r) ? r : 0;
    default:
        return 0;
    }
}

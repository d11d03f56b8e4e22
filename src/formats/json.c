/*
 * json.c — the JSON getters every reader of a JSON file shares (config.json, tokenizer.json,
 * feature-store indexes, corpus records): typed member access that returns "absent" for a
 * member of the wrong type, so callers decide what a missing or malformed value means.
 */
#include "formats/formats.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const cJSON *hass_json_get(const cJSON *o, const char *key) {
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

const char *hass_json_str(const cJSON *o, const char *key) {
    const cJSON *v = hass_json_get(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int hass_json_num(const cJSON *o, const char *key, double *out) {
    const cJSON *v = hass_json_get(o, key);
    if (!cJSON_IsNumber(v))
        return 0;
    *out = v->valuedouble;
    return 1;
}

int hass_json_int(const cJSON *o, const char *key, int64_t lo, int64_t hi, int64_t *out) {
    double d;
    if (!hass_json_num(o, key, &d) || !(d >= (double)lo && d <= (double)hi) ||
        d != (double)(int64_t)d)
        return 0;
    *out = (int64_t)d;
    return 1;
}

int hass_json_bool(const cJSON *o, const char *key, int def) {
    const cJSON *v = hass_json_get(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

hass_status hass_json_save(const char *dir, const char *name, const cJSON *o, hass_err *err) {
    char path[1024];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return hass_err_set(err, HASS_STATUS_ARG, "%s: path too long", dir);
    char *txt = o ? cJSON_Print(o) : NULL;
    if (!txt)
        return hass_err_set(err, HASS_STATUS_OOM, "%s: out of memory", path);
    hass_status st = hass_write_file_atomic(path, txt, strlen(txt), err);
    free(txt);
    return st;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first key that appears twice in one object anywhere under o, or NULL (*oom on failure). */
static const char *dup_key(const cJSON *o, int *oom) {
    if (!cJSON_IsObject(o) && !cJSON_IsArray(o))
        return NULL;
    size_t n = 0;
    for (const cJSON *c = o->child; c; c = c->next) {
        const char *d = dup_key(c, oom);
        if (d || *oom)
            return d;
        n++;
    }
    if (!cJSON_IsObject(o) || n < 2)
        return NULL;
    const char **names = malloc(n * sizeof *names);
    if (!names) {
        *oom = 1;
        return NULL;
    }
    size_t k = 0;
    for (const cJSON *c = o->child; c; c = c->next)
        names[k++] = c->string ? c->string : "";
    qsort(names, n, sizeof *names, cmp_names);
    const char *d = NULL;
    for (size_t i = 1; i < n && !d; i++)
        if (!strcmp(names[i - 1], names[i]))
            d = names[i];
    free(names);
    return d;
}

cJSON *hass_json_parse_strict(const char *text, size_t len, const char *what, hass_err *err) {
    if (memchr(text, 0, len)) {
        hass_err_set(err, HASS_STATUS_FORMAT, "%s: a NUL byte at offset %zu", what,
                     (size_t)((const char *)memchr(text, 0, len) - text));
        return NULL;
    }
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!o) {
        const char *at = cJSON_GetErrorPtr();
        hass_err_set(err, HASS_STATUS_FORMAT, "%s: not valid JSON (near byte %zu)", what,
                     at && at >= text && at <= text + len ? (size_t)(at - text) : (size_t)0);
        return NULL;
    }
    while (end && end < text + len && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
        end++;
    int oom = 0;
    const char *d = NULL;
    if (end && end < text + len)
        hass_err_set(err, HASS_STATUS_FORMAT, "%s: trailing bytes after the JSON value (byte %zu)",
                     what, (size_t)(end - text));
    else if ((d = dup_key(o, &oom)) || oom)
        hass_err_set(err, oom ? HASS_STATUS_OOM : HASS_STATUS_FORMAT,
                     oom ? "%s: out of memory" : "%s: key \"%.64s\" appears twice in one object",
                     what, d ? d : "");
    else
        return o;
    cJSON_Delete(o);
    return NULL;
}

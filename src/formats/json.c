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

/*
 * cmd_inspect.c — `hass inspect PATH`: what a model file holds.
 *
 * PATH may be a .safetensors file, a Hugging Face model directory (config.json + model.safetensors
 * or a sharded index), a GGUF file or a llama2.c checkpoint. Prints the architecture / header
 * fields, the metadata, then a tensor table (name, dtype, shape, bytes) and totals (parameters,
 * bytes; a tensor sharing another's data, such as a tied lm_head, is counted once).
 * Exit codes: 0 ok, 1 unreadable or malformed file, 2 usage error.
 */
#include "cli/cli.h"
#include "formats/formats.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *inspect_usage =
    "usage: hass inspect PATH\n"
    "  PATH: a .safetensors file, a Hugging Face model directory (config.json +\n"
    "        model.safetensors or model.safetensors.index.json), a .gguf file or a\n"
    "        llama2.c checkpoint (.bin).\n"
    "Prints header fields, metadata and a tensor table with totals.\n";

/* ---- tensor table ---- */

static void print_shape(const hass_tensor *t, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "(");
    for (int d = 0; d < t->ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    if (k < n)
        snprintf(buf + k, n - k, ")");
}

static void print_table(const hass_tensor *const *ts, int64_t n) {
    size_t w = 4;
    for (int64_t i = 0; i < n; i++)
        if (strlen(ts[i]->name) > w)
            w = strlen(ts[i]->name);
    printf("\n%-*s  %-5s  %-22s  %12s\n", (int)w, "name", "dtype", "shape", "bytes");
    int64_t params = 0;
    size_t bytes = 0;
    for (int64_t i = 0; i < n; i++) {
        const hass_tensor *t = ts[i];
        char shape[128];
        print_shape(t, shape, sizeof shape);
        const char *shared = NULL;
        for (int64_t j = 0; j < i && !shared; j++)
            if (ts[j]->data == t->data && t->nbytes && ts[j]->nbytes == t->nbytes)
                shared = ts[j]->name;
        printf("%-*s  %-5s  %-22s  %12zu%s%s", (int)w, t->name, hass_dtype_name(t->dtype), shape,
               t->nbytes, shared ? "  (shares data with " : "", shared ? shared : "");
        if (shared)
            putchar(')');
        putchar('\n');
        if (!shared) {
            params += hass_tensor_numel(t);
            bytes += t->nbytes;
        }
    }
    printf("\ntotal: %lld tensors, %lld parameters, %zu bytes (%.2f MiB)\n", (long long)n,
           (long long)params, bytes, (double)bytes / (1024.0 * 1024.0));
}

/* ---- safetensors / HF directory ---- */

static void print_json_field(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    char *s = v ? cJSON_PrintUnformatted(v) : NULL;
    printf("  %-24s %s\n", key, s ? s : "(absent)");
    cJSON_free(s);
}

static int print_config(const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text = NULL;
    size_t len = 0;
    hass_err err = {0};
    if (hass_read_file(path, &text, &len, &err))
        return cli_fail(1, "%s", err.msg);
    cJSON *cfg = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return cli_fail(1, "%s: not a JSON object", path);
    }
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(cfg, "architectures");
    const cJSON *a0 = cJSON_IsArray(arch) ? arch->child : arch;
    printf("config.json:\n  %-24s %s\n", "architecture",
           cJSON_IsString(a0) ? a0->valuestring : "(absent)");
    static const char *keys[] = {"model_type",          "hidden_size",
                                 "intermediate_size",   "num_hidden_layers",
                                 "num_attention_heads", "num_key_value_heads",
                                 "vocab_size",          "rms_norm_eps",
                                 "rope_theta",          "rope_scaling",
                                 "tie_word_embeddings", "bos_token_id",
                                 "eos_token_id",        "max_position_embeddings",
                                 "torch_dtype"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        print_json_field(cfg, keys[i]);
    cJSON_Delete(cfg);
    return 0;
}

static int inspect_dir(const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (hass_file_exists(path)) {
        int rc = print_config(dir);
        if (rc)
            return rc;
    } else {
        printf("config.json: (absent)\n");
    }
    hass_st_set set;
    hass_err err = {0};
    if (hass_safetensors_open_dir(&set, dir, &err))
        return cli_fail(1, "%s", err.msg);
    printf("\nsafetensors: %d file(s)\n", set.n_shards);
    for (int i = 0; i < set.n_shards; i++)
        printf("  %s  (%d tensors)\n", set.shard_files[i], set.shards[i].n_tensors);
    if (set.index_metadata_json)
        printf("index metadata: %s\n", set.index_metadata_json);
    print_table(set.by_name, set.n_tensors);
    hass_st_set_close(&set);
    return 0;
}

static int inspect_safetensors(const char *path) {
    hass_safetensors st;
    hass_err err = {0};
    if (hass_safetensors_open(&st, path, &err))
        return cli_fail(1, "%s", err.msg);
    printf("safetensors: %s (%zu bytes)\n", path, st.mf.size);
    printf("metadata: %s\n", st.metadata_json ? st.metadata_json : "(none)");
    const hass_tensor **ts = malloc(((size_t)st.n_tensors + 1) * sizeof *ts);
    if (!ts) {
        hass_safetensors_close(&st);
        return cli_fail(1, "out of memory");
    }
    for (int i = 0; i < st.n_tensors; i++)
        ts[i] = &st.tensors[i];
    print_table(ts, st.n_tensors);
    free(ts);
    hass_safetensors_close(&st);
    return 0;
}

/* ---- GGUF ---- */

static const char *gguf_type_name(hass_gguf_type t) {
    static const char *names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                  "bool", "string", "array", "u64", "i64", "f64"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

/* Prints a string value quoted, escaping control bytes, cut at `max` bytes. */
static void print_str(const char *s, size_t len, size_t max) {
    putchar('"');
    for (size_t i = 0; i < len && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    putchar('"');
    if (len > max)
        printf("... (%zu bytes)", len);
}

static void print_scalar(hass_gguf_type t, const uint8_t *p) {
    uint64_t u = 0;
    size_t n = t == HASS_GGUF_U8 || t == HASS_GGUF_I8 || t == HASS_GGUF_BOOL    ? 1
               : t == HASS_GGUF_U16 || t == HASS_GGUF_I16                       ? 2
               : t == HASS_GGUF_U64 || t == HASS_GGUF_I64 || t == HASS_GGUF_F64 ? 8
                                                                                : 4;
    for (size_t i = n; i-- > 0;)
        u = (u << 8) | p[i];
    switch (t) {
    case HASS_GGUF_I8:
        printf("%d", (int8_t)u);
        break;
    case HASS_GGUF_I16:
        printf("%d", (int16_t)u);
        break;
    case HASS_GGUF_I32:
        printf("%d", (int32_t)u);
        break;
    case HASS_GGUF_I64:
        printf("%lld", (long long)(int64_t)u);
        break;
    case HASS_GGUF_F32: {
        uint32_t b = (uint32_t)u;
        float f;
        memcpy(&f, &b, 4);
        printf("%g", (double)f);
        break;
    }
    case HASS_GGUF_F64: {
        double d;
        memcpy(&d, &u, 8);
        printf("%g", d);
        break;
    }
    case HASS_GGUF_BOOL:
        printf("%s", u ? "true" : "false");
        break;
    default:
        printf("%llu", (unsigned long long)u);
    }
}

static void print_kv(const hass_gguf_kv *kv) {
    printf("  %-40s %-7s ", kv->key, gguf_type_name(kv->type));
    if (kv->type == HASS_GGUF_STRING) {
        print_str(kv->str, kv->str_len, 120);
    } else if (kv->type == HASS_GGUF_ARRAY) {
        if (kv->arr_n > 8 || kv->arr_type == HASS_GGUF_STRING) {
            printf("[%llu %s%s]", (unsigned long long)kv->arr_n,
                   kv->arr_type == HASS_GGUF_STRING ? "string" : gguf_type_name(kv->arr_type),
                   kv->arr_n == 1 ? "" : "s");
            if (kv->arr_type == HASS_GGUF_STRING && kv->arr_n > 0) {
                printf(" first: ");
                print_str(kv->arr_strs[0], kv->arr_lens[0], 40);
            }
        } else {
            size_t es = kv->arr_type == HASS_GGUF_U8 || kv->arr_type == HASS_GGUF_I8 ||
                                kv->arr_type == HASS_GGUF_BOOL
                            ? 1
                        : kv->arr_type == HASS_GGUF_U16 || kv->arr_type == HASS_GGUF_I16 ? 2
                        : kv->arr_type == HASS_GGUF_U64 || kv->arr_type == HASS_GGUF_I64 ||
                                kv->arr_type == HASS_GGUF_F64
                            ? 8
                            : 4;
            putchar('[');
            for (uint64_t i = 0; i < kv->arr_n; i++) {
                printf("%s", i ? ", " : "");
                print_scalar(kv->arr_type, kv->arr_data + i * es);
            }
            putchar(']');
        }
    } else {
        uint8_t raw[8];
        if (kv->type == HASS_GGUF_F32) {
            float f = (float)kv->v.f;
            memcpy(raw, &f, 4);
        } else {
            memcpy(raw, &kv->v, 8);
        }
        print_scalar(kv->type, raw);
    }
    putchar('\n');
}

static int inspect_gguf(const char *path) {
    hass_gguf g;
    hass_err err = {0};
    if (hass_gguf_open(&g, path, &err))
        return cli_fail(1, "%s", err.msg);
    printf("gguf: %s (%zu bytes)\n  version %u, %lld tensors, %lld metadata keys, alignment %zu, "
           "data at %zu\n\nmetadata:\n",
           path, g.mf.size, g.version, (long long)g.n_tensors, (long long)g.n_kv, g.alignment,
           g.data_offset);
    for (int64_t i = 0; i < g.n_kv; i++)
        print_kv(&g.kv[i]);
    const hass_tensor **ts = malloc(((size_t)g.n_tensors + 1) * sizeof *ts);
    if (!ts) {
        hass_gguf_close(&g);
        return cli_fail(1, "out of memory");
    }
    for (int64_t i = 0; i < g.n_tensors; i++)
        ts[i] = &g.tensors[i];
    print_table(ts, g.n_tensors);
    free(ts);
    hass_gguf_close(&g);
    return 0;
}

/* ---- llama2.c ---- */

static int inspect_llama2c(const char *path) {
    hass_llama2c m;
    hass_err err = {0};
    if (hass_llama2c_open(&m, path, &err))
        return cli_fail(1, "%s", err.msg);
    const hass_llama2c_config *c = &m.cfg;
    printf("llama2.c checkpoint: %s (%zu bytes)\n", path, m.mf.size);
    printf("  dim %d\n  hidden_dim %d\n  n_layers %d\n  n_heads %d\n  n_kv_heads %d\n"
           "  vocab_size %d\n  seq_len %d\n  head_size %d\n  classifier %s\n",
           c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len,
           c->dim / c->n_heads, c->shared_classifier ? "shared with the embedding" : "separate");
    const hass_tensor **ts = malloc(((size_t)m.n_tensors + 1) * sizeof *ts);
    if (!ts) {
        hass_llama2c_close(&m);
        return cli_fail(1, "out of memory");
    }
    for (int i = 0; i < m.n_tensors; i++)
        ts[i] = &m.tensors[i];
    print_table(ts, m.n_tensors);
    free(ts);
    hass_llama2c_close(&m);
    return 0;
}

int cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(inspect_usage, stdout);
            return 0;
        }
        if (argv[i][0] == '-' && argv[i][1])
            return cli_unknown_flag("inspect", argv[i]);
        if (path)
            return cli_fail(2, "inspect: more than one PATH (see hass inspect --help)");
        path = argv[i];
    }
    if (!path)
        return cli_fail(2, "inspect: missing PATH (see hass inspect --help)");
    switch (hass_file_kind_of(path)) {
    case HASS_FILE_DIR:
        return inspect_dir(path);
    case HASS_FILE_MISSING:
        return cli_fail(1, "%s: cannot open", path);
    case HASS_FILE_GGUF:
        return inspect_gguf(path);
    case HASS_FILE_SAFETENSORS:
        return inspect_safetensors(path);
    case HASS_FILE_LLAMA2C:
        return inspect_llama2c(path);
    default:
        return cli_fail(1, "%s: unknown file type (expected safetensors, GGUF or llama2.c .bin)",
                        path);
    }
}

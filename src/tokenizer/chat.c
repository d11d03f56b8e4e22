/*
 * chat.c — chat templates without a Jinja engine. The model's template text (from
 * tokenizer_config.json or GGUF tokenizer.chat_template) is recognised by its marker tokens
 * and the conversation is rendered by the matching C function, reproducing the output of the
 * official templates (LLaMA-2 chat, LLaMA-3 instruct, ChatML) for system/user/assistant turns.
 * The formats are spelled out in tokenizer.h. Corpus records (chat or plain text) are rendered
 * here too, so that a tokenizer trainer and a pretrainer see the same text.
 */
#include "tokenizer/tok_internal.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char *const chat_names[] = {"hass", "llama2", "llama3", "chatml"};

int hass__chat_detect(const char *tmpl) {
    if (!tmpl)
        return CHAT_HASS;
    if (strstr(tmpl, "<|start_header_id|>"))
        return CHAT_LLAMA3;
    if (strstr(tmpl, "[INST]"))
        return CHAT_LLAMA2;
    if (strstr(tmpl, "<|im_start|>"))
        return CHAT_CHATML;
    return CHAT_HASS;
}

const char *hass_tokenizer_chat_template(const hass_tokenizer *t) {
    return chat_names[t->chat];
}

hass_status hass_tokenizer_set_chat_template(hass_tokenizer *t, const char *name, hass_err *err) {
    for (int i = 0; i < (int)(sizeof chat_names / sizeof chat_names[0]); i++) {
        if (!strcmp(name, chat_names[i])) {
            t->chat = i;
            return HASS_OK;
        }
    }
    return hass_err_set(err, HASS_STATUS_ARG,
                        "unknown chat template '%s' (hass, llama2, llama3, chatml)", name);
}

/* Jinja's |trim / Python's str.strip(): drop leading and trailing ASCII/Unicode-ish spaces
 * (the templates only ever meet ASCII whitespace at the edges of a turn). */
static void trimmed(const char *s, const char **p, size_t *n) {
    size_t a = 0, b = strlen(s);
    while (a < b && strchr(" \t\n\r\v\f", s[a]))
        a++;
    while (b > a && strchr(" \t\n\r\v\f", s[b - 1]))
        b--;
    *p = s + a;
    *n = b - a;
}

static int put(hass__buf *b, const char *s) {
    return hass__buf_put(b, s, strlen(s));
}
static int put_trim(hass__buf *b, const char *s) {
    const char *p;
    size_t n;
    trimmed(s, &p, &n);
    return hass__buf_put(b, p, n);
}

static const char *special_text(const hass_tokenizer *t, int32_t id, const char *fallback) {
    size_t n;
    const char *p = id >= 0 ? hass_tokenizer_piece(t, id, &n) : NULL;
    return p && n ? p : fallback;
}

/* HF LLaMA-2 chat template: the BOS before the first [INST] is left to the encoder */
static int render_llama2(const hass_tokenizer *t, const hass_chat_msg *m, int n, hass__buf *b) {
    const char *bos = special_text(t, t->bos, "<s>"), *eos = special_text(t, t->eos, "</s>");
    const char *sys = NULL;
    int i = 0, first = 1, bad = 0;
    if (n > 0 && !strcmp(m[0].role, "system"))
        sys = m[i++].content;
    for (; i < n && !bad; i++) {
        if (!strcmp(m[i].role, "user")) {
            if (!first)
                bad |= put(b, bos);
            bad |= put(b, "[INST] ");
            if (first && sys) {
                /* the template strips the whole content, system block included */
                hass__buf c = {0};
                bad |= put(&c, "<<SYS>>\n") | put(&c, sys) | put(&c, "\n<</SYS>>\n\n") |
                       put(&c, m[i].content);
                bad |= bad ? 1 : put_trim(b, c.p);
                free(c.p);
            } else {
                bad |= put_trim(b, m[i].content);
            }
            bad |= put(b, " [/INST]");
            first = 0;
        } else if (!strcmp(m[i].role, "assistant")) {
            bad |= put(b, " ") | put_trim(b, m[i].content) | put(b, " ") | put(b, eos);
            first = 0;
        }
    }
    return bad;
}

static int render_llama3(const hass_tokenizer *t, const hass_chat_msg *m, int n, int gen,
                         hass__buf *b) {
    (void)t;
    int bad = 0;
    for (int i = 0; i < n; i++)
        bad |= put(b, "<|start_header_id|>") | put(b, m[i].role) | put(b, "<|end_header_id|>\n\n") |
               put_trim(b, m[i].content) | put(b, "<|eot_id|>");
    if (gen)
        bad |= put(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    return bad;
}

static int render_chatml(const hass_chat_msg *m, int n, int gen, hass__buf *b) {
    int bad = 0;
    for (int i = 0; i < n; i++)
        bad |= put(b, "<|im_start|>") | put(b, m[i].role) | put(b, "\n") | put(b, m[i].content) |
               put(b, "<|im_end|>\n");
    if (gen)
        bad |= put(b, "<|im_start|>assistant\n");
    return bad;
}

static int render_hass(const hass_tokenizer *t, const hass_chat_msg *m, int n, int gen,
                       hass__buf *b) {
    int bad = 0;
    for (int i = 0; i < n; i++) {
        bad |= put(b, "<|") | put(b, m[i].role) | put(b, "|>\n") | put(b, m[i].content);
        if (!strcmp(m[i].role, "assistant") && t->eos >= 0)
            bad |= put(b, special_text(t, t->eos, ""));
        bad |= put(b, "\n");
    }
    if (gen)
        bad |= put(b, "<|assistant|>\n");
    return bad;
}

char *hass_tokenizer_chat_render(const hass_tokenizer *t, const hass_chat_msg *msgs, int n,
                                 int add_generation_prompt, hass_err *err) {
    if (!t || n < 0 || (n > 0 && !msgs)) {
        hass_err_set(err, HASS_STATUS_ARG, "chat_render: bad arguments");
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        if (!msgs[i].role || !msgs[i].content) {
            hass_err_set(err, HASS_STATUS_ARG, "chat_render: message %d has no role or content", i);
            return NULL;
        }
    }
    hass__buf b = {0};
    int bad = hass__buf_put(&b, "", 0);
    switch (t->chat) {
    case CHAT_LLAMA2:
        bad |= render_llama2(t, msgs, n, &b);
        break;
    case CHAT_LLAMA3:
        bad |= render_llama3(t, msgs, n, add_generation_prompt, &b);
        break;
    case CHAT_CHATML:
        bad |= render_chatml(msgs, n, add_generation_prompt, &b);
        break;
    default:
        bad |= render_hass(t, msgs, n, add_generation_prompt, &b);
        break;
    }
    if (bad) {
        free(b.p);
        hass_err_set(err, HASS_STATUS_OOM, "chat_render: out of memory");
        return NULL;
    }
    return b.p;
}

/* the message array of a {"messages": [...]} record, or NULL with err set */
static hass_chat_msg *record_msgs(const cJSON *arr, int *n, hass_err *err) {
    *n = cJSON_GetArraySize(arr);
    if (!cJSON_IsArray(arr) || *n == 0) {
        hass_err_set(err, HASS_STATUS_FORMAT, "\"messages\" is not a non-empty array");
        return NULL;
    }
    hass_chat_msg *m = calloc((size_t)*n, sizeof *m);
    if (!m) {
        hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        return NULL;
    }
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(e, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!cJSON_IsObject(e) || !cJSON_IsString(role) || !cJSON_IsString(content) ||
            !role->valuestring[0]) {
            hass_err_set(err, HASS_STATUS_FORMAT,
                         "message %d needs a string \"role\" and a string \"content\"", i);
            free(m);
            return NULL;
        }
        m[i++] = (hass_chat_msg){role->valuestring, content->valuestring};
    }
    return m;
}

char *hass_tokenizer_render_record(const hass_tokenizer *t, const char *json, size_t len,
                                   size_t *out_len, hass_err *err) {
    cJSON *root = cJSON_ParseWithLength(json, len);
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(root, "text");
    const char *shape = !cJSON_IsObject(root) ? "not a JSON object"
                        : !msgs == !text      ? "a record has either \"messages\" or \"text\""
                        : text && !cJSON_IsString(text) ? "\"text\" is not a string"
                                                        : NULL;
    hass__buf b = {0};
    char *chat = NULL;
    hass_chat_msg *m = NULL;
    int n = 0, bad = 0;
    if (shape) {
        hass_err_set(err, HASS_STATUS_FORMAT, "%s", shape);
    } else if (text) {
        bad = put(&b, special_text(t, t->bos, "")) | put(&b, text->valuestring) |
              put(&b, special_text(t, t->eos, ""));
    } else if ((m = record_msgs(msgs, &n, err)) &&
               (chat = hass_tokenizer_chat_render(t, m, n, 0, err))) {
        bad = put(&b, special_text(t, t->bos, "")) | put(&b, chat);
    }
    free(m);
    free(chat);
    cJSON_Delete(root);
    if (bad)
        hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    if (bad || (!text && !chat) || shape) {
        free(b.p);
        return NULL;
    }
    if (out_len)
        *out_len = b.n;
    return b.p;
}

int64_t hass_tokenizer_encode_prompt(const hass_tokenizer *t, const hass_chat_msg *msgs, int n,
                                     int chat, int32_t **ids_out, hass_err *err) {
    char *rendered = NULL;
    if (n < 1) {
        hass_err_set(err, HASS_STATUS_ARG, "no prompt");
        return -1;
    }
    if (chat && !(rendered = hass_tokenizer_chat_render(t, msgs, n, 1, err)))
        return -1;
    const char *text = chat ? rendered : msgs[n - 1].content;
    size_t len = strlen(text);
    int add_bos = hass_tokenizer_wants_bos(t);
    int64_t cap = (int64_t)len + 8, got = -1;
    int32_t *ids = malloc((size_t)cap * sizeof(int32_t));
    if (ids)
        got = hass_tokenizer_encode(t, text, len, add_bos, 1, ids, cap, err);
    else
        hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    if (got > cap) { /* cannot happen with byte fallback, but stay correct */
        int32_t *b = realloc(ids, (size_t)got * sizeof(int32_t));
        if (b) {
            ids = b;
            got = hass_tokenizer_encode(t, text, len, add_bos, 1, ids, got, err);
        } else {
            got = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        }
    }
    free(rendered);
    if (got == 0)
        hass_err_set(err, HASS_STATUS_ARG,
                     "the prompt encodes to no tokens and the model has no BOS");
    if (got <= 0) {
        free(ids);
        return -1;
    }
    *ids_out = ids;
    return got;
}

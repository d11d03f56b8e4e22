/*
 * test_bpe_train.c — the byte-level BPE trainer (src/tokenizer/bpe_train.c):
 *   - its merges against a naive twin written here (all pair counts recomputed from scratch
 *     every step, the same tie rule) and a hand-worked example;
 *   - the saved tokenizer.json reloaded by hass_tokenizer_load_json: (a) decoding the ids
 *     gives back every record byte for byte (non-ASCII, emoji, invalid UTF-8, digit and
 *     whitespace runs, code), (b) encode == the trainer's own segmentation, (c) special
 *     tokens encode to their ids at the end of the vocab and no merge produces one, the stop
 *     ids include <|eot_id|> and <|end_of_text|>, and turning ignore_merges off changes no
 *     encoding (every token has one merge);
 *   - (d) identical files from two runs with different thread counts;
 *   - (e) hostile input: empty data, records of the wrong shape, too small a vocab, a missing
 *     file: one-line errors;
 * on built-in text and, when ../shared is there, a sample of the real corpus.
 */
#include "check.h"
#include "tokenizer/tok_internal.h"

#include <cJSON.h>
#include <unistd.h>

static char tmp[256];

/* ---------------- an independent byte-level alphabet (GPT-2's bytes_to_unicode) ----------------
 */

static uint32_t cp_of[256];
static int byte_of_cp[512];

static void alphabet_init(void) {
    int in[256] = {0}, n = 0;
    for (int b = 0; b < 256; b++)
        in[b] = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    for (int b = 0; b < 256; b++)
        cp_of[b] = in[b] ? (uint32_t)b : 256u + (uint32_t)n++;
    for (int i = 0; i < 512; i++)
        byte_of_cp[i] = -1;
    for (int b = 0; b < 256; b++)
        byte_of_cp[cp_of[b]] = b;
}

/* decodes a vocab string to bytes; returns the length or -1 */
static long piece_bytes(const char *s, char *out, size_t cap) {
    size_t k = 0;
    for (const uint8_t *p = (const uint8_t *)s; *p;) {
        uint32_t cp = *p < 0x80 ? *p : ((p[0] & 0x1fu) << 6) | (p[1] & 0x3fu);
        p += *p < 0x80 ? 1 : 2;
        if (cp >= 512 || byte_of_cp[cp] < 0 || k >= cap)
            return -1;
        out[k++] = (char)byte_of_cp[cp];
    }
    return (long)k;
}

/* ---------------- helpers ---------------- */

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    HASS_ASSERT(f);
    fputs(s, f);
    fclose(f);
}

static char *slurp(const char *path, size_t *n) {
    char *p = NULL;
    size_t size = 0;
    hass_err err = {0};
    if (hass_read_file(path, &p, &size, &err) != HASS_OK)
        return NULL;
    if (n)
        *n = size;
    return p;
}

/* trains on path into dir; returns the trainer (caller frees) or NULL */
static hass_bpe_trainer *train(const char *path, const char *dir, int32_t vocab, int threads) {
    hass_bpe_opts o = hass_bpe_opts_default();
    o.vocab = vocab;
    hass_err err = {0};
    hass_pool *pool = threads > 1 ? hass_pool_create(threads) : NULL;
    hass_bpe_trainer *tr = hass_bpe_trainer_create(&o, &err);
    hass_status st = tr ? hass_bpe_trainer_add_jsonl(tr, path, pool, &err) : err.code;
    if (st == HASS_OK)
        st = hass_bpe_trainer_train(tr, &err);
    if (st == HASS_OK)
        st = hass_bpe_trainer_save(tr, dir, NULL, pool, &err);
    hass_pool_destroy(pool);
    CHECK_MSG(st == HASS_OK, "training on %s: %s", path, err.msg);
    if (st != HASS_OK) {
        hass_bpe_trainer_free(tr);
        return NULL;
    }
    return tr;
}

static hass_tokenizer *load(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    hass_err err = {0};
    hass_tokenizer *t = hass_tokenizer_load_json(path, &err);
    CHECK_MSG(t != NULL, "reload %s: %s", path, err.msg);
    return t;
}

static int64_t encode(const hass_tokenizer *t, const char *s, size_t n, int special,
                      int32_t **ids) {
    hass_err err = {0};
    int64_t k = hass_tokenizer_encode(t, s, n, 0, special, NULL, 0, &err);
    *ids = malloc((size_t)(k > 0 ? k : 1) * sizeof **ids);
    return k < 0 ? k : hass_tokenizer_encode(t, s, n, 0, special, *ids, k, &err);
}

/* ---------------- the naive twin ---------------- */

#define NAIVE_MAX 1024 /* token ids of the naive twin */

typedef struct {
    char *s[NAIVE_MAX]; /* token bytes by id, NUL-terminated (no NULs in the test data) */
    int ntok;
    int merges[NAIVE_MAX][2];
    int nmerge;
} naive_vocab;

typedef struct {
    char *key;
    int *sym, n;
    long count;
} naive_word;

typedef struct {
    naive_word *w;
    int n, cap;
} naive_words;

static void naive_add(naive_words *ws, const char *s, size_t n) {
    if (ws->n == ws->cap) {
        ws->cap = ws->cap ? 2 * ws->cap : 1024;
        ws->w = realloc(ws->w, (size_t)ws->cap * sizeof *ws->w);
    }
    naive_word *w = &ws->w[ws->n++];
    w->key = strndup(s, n);
    w->sym = malloc(n * sizeof *w->sym);
    w->n = (int)n;
    w->count = 1;
    for (size_t i = 0; i < n; i++)
        w->sym[i] = (uint8_t)s[i];
}

/* splits a rendered text into pieces with the LLaMA-3 regex (matches and the gaps between
 * them) after cutting out the five named special tokens */
static void naive_pieces(const char *text, naive_words *ws) {
    static const char *const sp[5] = {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                                      "<|end_header_id|>", "<|eot_id|>"};
    int code;
    PCRE2_SIZE eo;
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)hass__re_llama3, PCRE2_ZERO_TERMINATED,
                      PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &eo, NULL);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    size_t n = strlen(text), pos = 0;
    while (pos < n) {
        size_t end = n, skip = 0;
        for (int k = 0; k < 5; k++) {
            const char *f = strstr(text + pos, sp[k]);
            if (f && (size_t)(f - text) < end) {
                end = (size_t)(f - text);
                skip = strlen(sp[k]);
            }
        }
        size_t at = pos, gap = pos;
        while (at < end) {
            size_t ms = end, me = end;
            if (pcre2_match(re, (PCRE2_SPTR)text, end, at, 0, md, NULL) >= 0) {
                ms = pcre2_get_ovector_pointer(md)[0];
                me = pcre2_get_ovector_pointer(md)[1];
            }
            if (ms == me && ms < end) {
                at = ms + 1;
                continue;
            }
            if (ms > gap)
                naive_add(ws, text + gap, ms - gap);
            if (me > ms)
                naive_add(ws, text + ms, me - ms);
            at = gap = me;
        }
        pos = end + skip;
    }
    pcre2_match_data_free(md);
    pcre2_code_free(re);
}

static int naive_cmp(const void *pa, const void *pb) {
    return strcmp(((const naive_word *)pa)->key, ((const naive_word *)pb)->key);
}

/* sorts the pieces and folds repeats into counts */
static void naive_fold(naive_words *ws) {
    qsort(ws->w, (size_t)ws->n, sizeof *ws->w, naive_cmp);
    int k = 0;
    for (int i = 0; i < ws->n; i++) {
        if (k > 0 && !strcmp(ws->w[k - 1].key, ws->w[i].key)) {
            ws->w[k - 1].count += ws->w[i].count;
            free(ws->w[i].key);
            free(ws->w[i].sym);
        } else {
            ws->w[k++] = ws->w[i];
        }
    }
    ws->n = k;
}

/* the textbook algorithm: every step recounts all pairs of all words from scratch */
static void naive_train(naive_words *ws, int target, long min_count, naive_vocab *v) {
    static long cnt[NAIVE_MAX][NAIVE_MAX];
    static int seen[2 * NAIVE_MAX * NAIVE_MAX / 4][2];
    HASS_ASSERT(target <= NAIVE_MAX);
    for (int b = 0; b < 256; b++) {
        v->s[b] = calloc(2, 1);
        v->s[b][0] = (char)b;
    }
    v->ntok = 256;
    v->nmerge = 0;
    while (v->ntok < target) {
        int ba = -1, bb = -1, nseen = 0;
        for (int i = 0; i < ws->n; i++) {
            const naive_word *w = &ws->w[i];
            for (int k = 0; k + 1 < w->n; k++) {
                int a = w->sym[k], b = w->sym[k + 1];
                if (!cnt[a][b]++) {
                    HASS_ASSERT(nseen < (int)(sizeof seen / sizeof seen[0]));
                    seen[nseen][0] = a;
                    seen[nseen++][1] = b;
                }
                cnt[a][b] += w->count - 1;
            }
        }
        for (int q = 0; q < nseen; q++) {
            int a = seen[q][0], b = seen[q][1];
            long c = cnt[a][b];
            if (c < min_count)
                continue;
            int lc = ba < 0 ? 0 : strcmp(v->s[a], v->s[ba]);
            if (ba < 0 || c > cnt[ba][bb] ||
                (c == cnt[ba][bb] && (lc < 0 || (lc == 0 && strcmp(v->s[b], v->s[bb]) < 0)))) {
                ba = a;
                bb = b;
            }
        }
        for (int q = 0; q < nseen; q++)
            cnt[seen[q][0]][seen[q][1]] = 0;
        if (ba < 0)
            break;
        size_t la = strlen(v->s[ba]), lb = strlen(v->s[bb]);
        char *cat = malloc(la + lb + 1);
        memcpy(cat, v->s[ba], la);
        memcpy(cat + la, v->s[bb], lb + 1);
        int t = v->ntok++;
        v->s[t] = cat;
        v->merges[v->nmerge][0] = ba;
        v->merges[v->nmerge++][1] = bb;
        for (int i = 0; i < ws->n; i++) {
            naive_word *w = &ws->w[i];
            int j = 0;
            for (int k = 0; k < w->n;) {
                if (k + 1 < w->n && w->sym[k] == ba && w->sym[k + 1] == bb) {
                    w->sym[j++] = t;
                    k += 2;
                } else {
                    w->sym[j++] = w->sym[k++];
                }
            }
            w->n = j;
        }
    }
}

/* the merges of a tokenizer.json, as byte strings "A" "B" (decoded from the alphabet) */
static int json_merges(const char *dir, char (**ma)[256], char (**mb)[256]) {
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    char *txt = slurp(path, NULL);
    cJSON *root = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    const cJSON *m = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "model"), "merges");
    int n = cJSON_GetArraySize(m), i = 0;
    *ma = calloc((size_t)n + 1, sizeof **ma);
    *mb = calloc((size_t)n + 1, sizeof **mb);
    const cJSON *e;
    cJSON_ArrayForEach(e, m) {
        char a[600], b[600];
        if (sscanf(e->valuestring, "%599s %599s", a, b) != 2 || piece_bytes(a, (*ma)[i], 255) < 0 ||
            piece_bytes(b, (*mb)[i], 255) < 0)
            n = -1;
        i++;
    }
    cJSON_Delete(root);
    return n;
}

/* trains hass and the naive twin on the records of path; compares the merge lists */
static void check_against_naive(const char *path, const char *dir, int32_t vocab) {
    hass_bpe_trainer *tr = train(path, dir, vocab, 2);
    hass_tokenizer *t0 = tr ? load(dir) : NULL;
    if (!t0) {
        hass_bpe_trainer_free(tr);
        return;
    }
    naive_words ws = {0};
    size_t size;
    char *data = slurp(path, &size);
    for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
        hass_err err = {0};
        char *text = hass_tokenizer_render_record(t0, line, strlen(line), NULL, &err);
        HASS_ASSERT(text);
        naive_pieces(text, &ws);
        free(text);
    }
    free(data);
    naive_fold(&ws);
    naive_vocab *v = calloc(1, sizeof *v);
    naive_train(&ws, vocab - 5, 2, v);
    for (int i = 0; i < ws.n; i++) {
        free(ws.w[i].key);
        free(ws.w[i].sym);
    }
    free(ws.w);
    char(*ma)[256], (*mb)[256];
    int n = json_merges(dir, &ma, &mb), same = n == v->nmerge;
    for (int i = 0; same && i < n; i++)
        same = !strcmp(ma[i], v->s[v->merges[i][0]]) && !strcmp(mb[i], v->s[v->merges[i][1]]);
    CHECK_MSG(same, "%s: %d merges vs the naive twin's %d (or a different order)", path, n,
              v->nmerge);
    hass_bpe_report r;
    hass_bpe_trainer_report(tr, &r);
    CHECK_EQ_INT(r.merges, v->nmerge);
    for (int i = 0; i < v->ntok; i++)
        free(v->s[i]);
    free(v);
    free(ma);
    free(mb);
    hass_tokenizer_free(t0);
    hass_bpe_trainer_free(tr);
}

/* ---------------- (a) (b) (c) on every record ---------------- */

static int valid_utf8(const char *s, size_t n) {
    const uint8_t *p = (const uint8_t *)s;
    for (size_t i = 0; i < n;) {
        int l = p[i] < 0x80                   ? 1
                : p[i] >= 0xc2 && p[i] < 0xe0 ? 2
                : p[i] >= 0xe0 && p[i] < 0xf0 ? 3
                : p[i] >= 0xf0 && p[i] < 0xf5 ? 4
                                              : 0;
        if (!l || i + (size_t)l > n)
            return 0;
        for (int k = 1; k < l; k++)
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
        i += (size_t)l;
    }
    return 1;
}

static void check_records(const char *path, const char *dir, int32_t vocab, int threads) {
    hass_bpe_trainer *tr = train(path, dir, vocab, threads);
    hass_tokenizer *t = tr ? load(dir) : NULL;
    if (!t) {
        hass_bpe_trainer_free(tr);
        return;
    }
    int32_t V = hass_tokenizer_vocab_size(t), bos = hass_tokenizer_bos(t);
    hass_bpe_report r;
    hass_bpe_trainer_report(tr, &r);
    CHECK_EQ_INT(V, vocab);
    CHECK_EQ_INT(bos, 256 + r.merges);
    CHECK_EQ_INT(hass_tokenizer_eos(t), bos + 1);
    CHECK(!strcmp(hass_tokenizer_chat_template(t), "llama3"));
    CHECK(hass_tokenizer_wants_bos(t));
    int32_t stop[8];
    int ns = hass_tokenizer_stop_ids(t, stop, 8), eot = 0, eos = 0;
    for (int i = 0; i < ns && i < 8; i++) {
        eot |= stop[i] == bos + 4;
        eos |= stop[i] == bos + 1;
    }
    CHECK(eot && eos);
    /* layout: bytes in byte order, specials at the end in order; no merge makes a special */
    int layout = 1;
    char buf[1024];
    for (int32_t id = 0; id < V; id++) {
        size_t n;
        const char *p = hass_tokenizer_piece(t, id, &n);
        if (id < bos) {
            long nb = piece_bytes(p, buf, sizeof buf - 1);
            buf[nb > 0 ? nb : 0] = 0;
            layout &= nb > 0 && (id >= 256 || (nb == 1 && (uint8_t)buf[0] == id)) &&
                      !strstr(buf, "<|begin_of_text|>") && !strstr(buf, "<|eot_id|>") &&
                      !strstr(buf, "<|end_of_text|>") && !strstr(buf, "_header_id|>");
        } else {
            static const char *const names[5] = {"<|begin_of_text|>", "<|end_of_text|>",
                                                 "<|start_header_id|>", "<|end_header_id|>",
                                                 "<|eot_id|>"};
            char want[64];
            if (id - bos < 5)
                snprintf(want, sizeof want, "%s", names[id - bos]);
            else
                snprintf(want, sizeof want, "<|reserved_special_token_%d|>", id - bos - 5);
            int32_t *ids;
            int64_t k = encode(t, want, strlen(want), 1, &ids);
            layout &= !strcmp(p, want) && k == 1 && ids[0] == id;
            free(ids);
            k = encode(t, want, strlen(want), 0, &ids); /* as plain text: never a special id */
            for (int64_t q = 0; q < k; q++)
                layout &= ids[q] < bos;
            free(ids);
        }
    }
    CHECK_MSG(layout, "%s: vocab layout or special tokens wrong", dir);
    /* the same file with ignore_merges off: every token has one merge, so nothing changes */
    char jpath[400];
    size_t jn = 0;
    snprintf(jpath, sizeof jpath, "%s/tokenizer.json", dir);
    char *js = slurp(jpath, &jn), *im = js ? strstr(js, "\"ignore_merges\":\ttrue") : NULL;
    char *plain = malloc(jn + 2);
    hass_err jerr = {0};
    hass_tokenizer *t_plain = NULL;
    if (im) {
        size_t at = (size_t)(strstr(im, "true") - js);
        memcpy(plain, js, at);
        memcpy(plain + at, "false", 5);
        memcpy(plain + at + 5, js + at + 4, jn - at - 4);
        t_plain = hass_tokenizer_load_json_mem(plain, jn + 1, &jerr);
    }
    CHECK_MSG(t_plain && !t_plain->ignore_merges && t->ignore_merges,
              "tokenizer.json without ignore_merges: %s", jerr.msg);
    free(plain);
    free(js);
    size_t size;
    char *data = slurp(path, &size);
    long nrec = 0, bad_rt = 0, bad_seg = 0, bad_dec = 0, bad_plain = 0;
    for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
        hass_err err = {0};
        size_t n;
        char *text = hass_tokenizer_render_record(t, line, strlen(line), &n, &err);
        if (!text)
            continue;
        nrec++;
        int32_t *ids, *mine = NULL;
        int64_t k = encode(t, text, n, 1, &ids);
        /* (a) byte-exact: every piece through the test's own alphabet, specials by text */
        hass__buf back = {0};
        for (int64_t q = 0; q < k; q++) {
            size_t pl;
            const char *p = hass_tokenizer_piece(t, ids[q], &pl);
            long nb = ids[q] >= bos ? (long)pl : piece_bytes(p, buf, sizeof buf);
            hass__buf_put(&back, ids[q] >= bos ? p : buf, nb > 0 ? (size_t)nb : 0);
        }
        bad_rt += back.n != n || memcmp(back.p, text, n);
        free(back.p);
        /* and the library's decoder where the text is valid UTF-8: BOS prints nothing */
        size_t dl, wl = 0;
        char *dec = hass_tokenizer_decode(t, ids, k, 0, &dl), *want = malloc(n + 1);
        for (size_t q = 0; q < n;) {
            if (!strncmp(text + q, "<|begin_of_text|>", 17))
                q += 17;
            else
                want[wl++] = text[q++];
        }
        if (valid_utf8(text, n))
            bad_dec += !dec || dl != wl || memcmp(dec, want, dl);
        free(want);
        free(dec);
        /* (b) the trainer's own segmentation */
        int64_t km = hass_bpe_trainer_encode(tr, text, n, NULL, 0, &err);
        mine = malloc((size_t)(km > 0 ? km : 1) * sizeof *mine);
        if (km >= 0)
            km = hass_bpe_trainer_encode(tr, text, n, mine, km, &err);
        bad_seg += km != k || memcmp(mine, ids, (size_t)k * sizeof *ids);
        free(mine);
        if (t_plain) {
            int64_t kp = encode(t_plain, text, n, 1, &mine);
            bad_plain += kp != k || memcmp(mine, ids, (size_t)k * sizeof *ids);
            free(mine);
        }
        free(ids);
        free(text);
    }
    free(data);
    CHECK_MSG(nrec > 0 && bad_rt == 0, "%s: %ld of %ld records do not round-trip", path, bad_rt,
              nrec);
    CHECK_MSG(bad_dec == 0, "%s: %ld records decode differently", path, bad_dec);
    CHECK_MSG(bad_seg == 0, "%s: %ld of %ld records encode unlike the trainer's segmentation", path,
              bad_seg, nrec);
    CHECK_MSG(bad_plain == 0, "%s: %ld records encode differently without ignore_merges", path,
              bad_plain);
    hass_tokenizer_free(t_plain);
    hass_tokenizer_free(t);
    hass_bpe_trainer_free(tr);
}

/* ---------------- the tests ---------------- */

static const char builtin[] =
    "{\"text\": \"The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs.\"}\n"
    "{\"text\": \"def add(a, b):\\n    return a + b\\n\\n\\nclass Point:\\n    def __init__(self, "
    "x, y):\\n        self.x = x\\n        self.y = y\\n\", \"source\": \"python\"}\n"
    "{\"text\": \"digits 1234567890 12345678901234567890 3.14159 and   spaces\\t\\ttabs\\r\\n"
    "crlf\\n\\n\\n\\nnewlines         end\"}\n"
    "{\"text\": \"Caf\\u00e9 na\\u00efve \\u00fcber \\u4e2d\\u6587\\u5b57 \\u0645\\u0631\\u062d"
    "\\u0628\\u0627 \\ud83c\\udf89\\ud83d\\udc4d\\ud83c\\udffd \\ud83d\\udc68\\u200d\\ud83d"
    "\\udc69\\u200d\\ud83d\\udc67 emoji\"}\n"
    "{\"text\": \"raw bytes \xff\xfe and a broken \xc3( sequence, then fine\"}\n"
    "{\"text\": \"literal <|eot_id|> and <|begin_of_text|> inside text, and <|not_special|>\"}\n"
    "{\"messages\": [{\"role\": \"system\", \"content\": \"You are brief.\"}, {\"role\": "
    "\"user\", \"content\": \"  What is 12 * 12?  \"}, {\"role\": \"assistant\", \"content\": "
    "\"12 * 12 = 144.\\nThe answer is 144.\"}]}\n"
    "{\"messages\": [{\"role\": \"user\", \"content\": \"Write a loop in C.\"}, {\"role\": "
    "\"assistant\", \"content\": \"for (int i = 0; i < 10; i++) {\\n    printf(\\\"%d\\\\n\\\", "
    "i);\\n}\"}]}\n"
    "{\"text\": \"the the the the there then these those they them the other thee theme\"}\n"
    "{\"text\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbbbbbbbbbbbbbb ababababababab\"}\n";

/* the classic example: aa (4), then (a,b) before (aa,a) at count 2 (the left bytes "a" <
 * "aa"), then (aa, ab); every other pair occurs once */
static void test_hand_example(void) {
    char path[300], dir[300];
    snprintf(path, sizeof path, "%s/hand.jsonl", tmp);
    snprintf(dir, sizeof dir, "%s/hand", tmp);
    write_text(path, "{\"text\": \"aaabdaaabac\"}\n");
    hass_bpe_trainer *tr = train(path, dir, 320, 1);
    char(*ma)[256], (*mb)[256];
    int n = tr ? json_merges(dir, &ma, &mb) : -1;
    CHECK_EQ_INT(n, 3);
    if (n == 3) {
        CHECK(!strcmp(ma[0], "a") && !strcmp(mb[0], "a"));
        CHECK(!strcmp(ma[1], "a") && !strcmp(mb[1], "b"));
        CHECK(!strcmp(ma[2], "aa") && !strcmp(mb[2], "ab"));
    }
    if (n >= 0) {
        free(ma);
        free(mb);
    }
    hass_tokenizer *t = tr ? load(dir) : NULL;
    if (t) { /* 320 ids: 256 bytes, 3 merges, 5 named specials, 56 reserved */
        CHECK_EQ_INT(hass_tokenizer_bos(t), 259);
        CHECK_EQ_INT(hass_tokenizer_find(t, "<|reserved_special_token_55|>", 29), 319);
        int32_t *ids;
        int64_t k = encode(t, "aaabdaaabac", 11, 1, &ids);
        /* aaab d aaab a c */
        CHECK(k == 5 && ids[0] == 258 && ids[1] == 'd' && ids[2] == 258 && ids[3] == 'a' &&
              ids[4] == 'c');
        free(ids);
        /* " aab" is no token: ' ' + aa + b by rank (aa, b are not a merge) */
        k = encode(t, "aaab aab", 8, 1, &ids);
        CHECK(k == 4 && ids[0] == 258 && ids[1] == ' ' && ids[2] == 256 && ids[3] == 'b');
        free(ids);
    }
    hass_tokenizer_free(t);
    hass_bpe_trainer_free(tr);
}

static int same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *pa = slurp(a, &na), *pb = slurp(b, &nb);
    int same = pa && pb && na == nb && !memcmp(pa, pb, na);
    free(pa);
    free(pb);
    return same;
}

static void test_determinism(const char *path) {
    char d1[300], d2[300], f1[400], f2[400];
    snprintf(d1, sizeof d1, "%s/det1", tmp);
    snprintf(d2, sizeof d2, "%s/det2", tmp);
    hass_bpe_trainer_free(train(path, d1, 384, 1));
    hass_bpe_trainer_free(train(path, d2, 384, 2));
    const char *files[2] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 2; i++) {
        snprintf(f1, sizeof f1, "%s/%s", d1, files[i]);
        snprintf(f2, sizeof f2, "%s/%s", d2, files[i]);
        CHECK_MSG(same_file(f1, f2), "%s differs between two runs", files[i]);
    }
}

/* bad inputs: the content of the data file (NULL: a missing file), the vocab, the status and a
 * fragment of the one-line message */
static const struct {
    const char *content;
    int32_t vocab;
    hass_status want;
    const char *frag;
} hostile[] = {
    {"", 512, HASS_STATUS_FORMAT, "no text"},
    {"\n  \n\n", 512, HASS_STATUS_FORMAT, "no text"},
    {"{\"text\": \"\"}\n", 512, HASS_STATUS_FORMAT, "no text"},
    {"{\"text\": \"ok\"}\n{\"text\": 5}\n", 512, HASS_STATUS_FORMAT, ":2: "},
    {"{\"messages\": \"hi\"}\n", 512, HASS_STATUS_FORMAT, ":1: "},
    {"{\"messages\": []}\n", 512, HASS_STATUS_FORMAT, "messages"},
    {"{\"messages\": [{\"role\": 1, \"content\": \"x\"}]}\n", 512, HASS_STATUS_FORMAT, "role"},
    {"{\"messages\": [{\"role\": \"user\"}]}\n", 512, HASS_STATUS_FORMAT, "content"},
    {"{\"text\": \"a\", \"messages\": []}\n", 512, HASS_STATUS_FORMAT, "either"},
    {"{\"source\": \"x\"}\n", 512, HASS_STATUS_FORMAT, "either"},
    {"[1, 2]\n", 512, HASS_STATUS_FORMAT, "not a JSON object"},
    {"{\"text\": \"unterminated\n", 512, HASS_STATUS_FORMAT, "not a JSON object"},
    {"{\"text\": \"x\"}\n", 260, HASS_STATUS_ARG, "at least 261"},
    {"{\"text\": \"x\"}\n", -3, HASS_STATUS_ARG, "vocab"},
    {NULL, 512, HASS_STATUS_IO, "/nonexistent/x.jsonl"},
};

static void test_hostile(void) {
    char path[300];
    snprintf(path, sizeof path, "%s/bad.jsonl", tmp);
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        const char *content = hostile[i].content;
        if (content)
            write_text(path, content);
        hass_bpe_opts o = hass_bpe_opts_default();
        o.vocab = hostile[i].vocab;
        hass_err err = {0};
        hass_bpe_trainer *tr = hass_bpe_trainer_create(&o, &err);
        hass_status st =
            tr ? hass_bpe_trainer_add_jsonl(tr, content ? path : "/nonexistent/x.jsonl", NULL, &err)
               : err.code;
        if (st == HASS_OK)
            st = hass_bpe_trainer_train(tr, &err);
        CHECK_MSG(st == hostile[i].want && strstr(err.msg, hostile[i].frag) &&
                      !strchr(err.msg, '\n'),
                  "bad input %.40s: status %d, message '%s'", content ? content : "(missing)", st,
                  err.msg);
        hass_bpe_trainer_free(tr);
    }
}

/* writes rec as one JSONL line and frees it */
static void put_record(FILE *out, cJSON *rec) {
    char *s = cJSON_PrintUnformatted(rec);
    fprintf(out, "%s\n", s);
    free(s);
    cJSON_Delete(rec);
}

/* a sample of the real corpus: C4 documents, GSM8K as chat, Python sources */
static int real_sample(const char *path) {
    const char *shared = getenv("HASS_SHARED");
    char src[600];
    snprintf(src, sizeof src, "%s/data/corpus/llamafactory/c4_demo.jsonl",
             shared ? shared : "../shared");
    FILE *in = fopen(src, "rb"), *out = fopen(path, "wb");
    if (!in || !out) {
        if (in)
            fclose(in);
        if (out)
            fclose(out);
        return 0;
    }
    char *line = NULL;
    size_t cap = 0;
    for (int i = 0; i < 60 && getline(&line, &cap, in) > 0; i++)
        fputs(line, out);
    fclose(in);
    snprintf(src, sizeof src, "%s/data/gsm8k/train.jsonl", shared ? shared : "../shared");
    if ((in = fopen(src, "rb"))) {
        for (int i = 0; i < 60 && getline(&line, &cap, in) > 0; i++) {
            cJSON *q = cJSON_Parse(line), *rec = cJSON_CreateObject();
            cJSON *msgs = cJSON_AddArrayToObject(rec, "messages");
            const char *roles[2] = {"user", "assistant"}, *keys[2] = {"question", "answer"};
            for (int k = 0; k < 2; k++) {
                cJSON *m = cJSON_CreateObject();
                cJSON_AddStringToObject(m, "role", roles[k]);
                cJSON_AddStringToObject(m, "content", cJSON_GetObjectItem(q, keys[k])->valuestring);
                cJSON_AddItemToArray(msgs, m);
            }
            put_record(out, rec);
            cJSON_Delete(q);
        }
        fclose(in);
    }
    static const char *const py[] = {"/usr/lib/python3.11/json/decoder.py",
                                     "/usr/lib/python3.11/textwrap.py",
                                     "/usr/lib/python3.11/bisect.py"};
    for (int i = 0; i < 3; i++) {
        char *txt = slurp(py[i], NULL);
        if (!txt)
            continue;
        cJSON *rec = cJSON_CreateObject();
        cJSON_AddStringToObject(rec, "text", txt);
        put_record(out, rec);
        free(txt);
    }
    free(line);
    fclose(out);
    return 1;
}

int main(void) {
    check_init("test_bpe_train");
    hass_log_set(NULL, NULL, HASS_LOG_ERROR); /* "only N merges" warnings are expected here */
    alphabet_init();
    snprintf(tmp, sizeof tmp, "%s", check_tmp());
    char path[300], dir[300];

    test_hand_example();
    snprintf(path, sizeof path, "%s/builtin.jsonl", tmp);
    snprintf(dir, sizeof dir, "%s/builtin", tmp);
    write_text(path, builtin);
    check_records(path, dir, 448, 2);
    check_against_naive(path, dir, 448);
    test_determinism(path);
    test_hostile();

    snprintf(path, sizeof path, "%s/real.jsonl", tmp);
    snprintf(dir, sizeof dir, "%s/real", tmp);
    if (real_sample(path)) {
        check_records(path, dir, 1024, 2);
        check_against_naive(path, dir, 512);
    } else {
        CHECK_SKIP("../shared/data not found: no real-corpus sample");
    }
    return check_exit();
}

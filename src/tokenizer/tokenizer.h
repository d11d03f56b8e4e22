/*
 * tokenizer — exact LLaMA-family tokenizers, a streaming detokenizer and chat templates.
 *
 * Two algorithms cover the models hass runs:
 *   HASS_TOK_SPM       SentencePiece-style BPE with byte fallback (LLaMA-1/2, llama2.c models).
 *                      Spaces become U+2581, each text piece gets a dummy-prefix U+2581, and the
 *                      adjacent pair with the best priority is merged until none is left: the
 *                      highest piece score (tokenizer.bin, GGUF "llama") or the lowest merge rank
 *                      (HF tokenizer.json, whose merges were made from the scores). Characters
 *                      with no piece become <0xNN> byte tokens.
 *   HASS_TOK_BYTE_BPE  GPT-2 style byte-level BPE (LLaMA-3, GPT-2): a pre-tokenizer regex
 *                      (PCRE2, UTF+UCP) splits the text, each piece's bytes are merged by rank.
 *                      With ignore_merges a piece that is a whole vocab entry is emitted directly.
 * Both merge with a binary heap over a linked list of symbols (O(n log n) per piece); vocab
 * strings and merge pairs live in open-addressing hash maps.
 *
 * Special (added) tokens such as <s> or <|eot_id|> are matched literally in the text when
 * parse_special is set (leftmost, longest first), and the text between them is encoded
 * piece by piece (HF legacy behaviour: each SPM piece gets its own dummy prefix).
 *
 * A loaded tokenizer is immutable, so encode/piece/render may be called from several threads
 * at once; hass_detok state belongs to its caller. Errors are one-line messages in hass_err.
 */
#ifndef HASS_TOKENIZER_H
#define HASS_TOKENIZER_H

#include "core/core.h"
#include "formats/formats.h"

typedef struct hass_tokenizer hass_tokenizer;
typedef enum { HASS_TOK_SPM = 0, HASS_TOK_BYTE_BPE = 1 } hass_tok_kind;

/* llama2.c tokenizer.bin: int32 max_token_length, then per token float score, int32 len, bytes.
 * The file does not store the vocab size: vocab_size_hint > 0 reads exactly that many tokens
 * (the checkpoint's vocab_size), <= 0 reads tokens until the end of the file. Ids 0/1/2 are
 * <unk>/<s>/</s> (BOS 1, EOS 2), ids 3..258 the bytes <0x00>..<0xFF>. Pieces are stored with
 * ' ' for U+2581; they are restored to U+2581 on load, so piece() returns SentencePiece's text.
 * Returns NULL and sets err on a missing, truncated or malformed file. Caller frees. */
hass_tokenizer *hass_tokenizer_load_bin(const char *path, int32_t vocab_size_hint, hass_err *err);
/* The same over size bytes in memory (path names it in messages). */
hass_tokenizer *hass_tokenizer_load_bin_mem(const uint8_t *data, size_t size,
                                            int32_t vocab_size_hint, const char *path,
                                            hass_err *err);

/* HF tokenizer.json with model.type "BPE": either SPM-BPE with byte_fallback (Prepend/Replace
 * normalizer or Metaspace pre-tokenizer, as LLaMA-2) or ByteLevel BPE (Split regex + ByteLevel,
 * as LLaMA-3, or plain ByteLevel with the GPT-2 regex). Reads tokenizer_config.json from the same
 * folder when present: bos_token, eos_token, add_bos_token, chat_template. Caller frees. */
hass_tokenizer *hass_tokenizer_load_json(const char *path, hass_err *err);
/* The same from memory (len bytes of tokenizer.json text), without a tokenizer_config.json. */
hass_tokenizer *hass_tokenizer_load_json_mem(const char *json, size_t len, hass_err *err);

/* GGUF tokenizer.ggml.* metadata: model "llama" (tokens + scores + token_type, SPM) or "gpt2"
 * (tokens + merges, byte-level; pre "llama-bpe"/"llama3" uses the LLaMA-3 regex, anything else
 * the GPT-2 one), bos/eos/unknown ids, add_bos_token, add_space_prefix, tokenizer.chat_template.
 * CONTROL and USER_DEFINED tokens become special tokens. g is only read during the call. */
hass_tokenizer *hass_tokenizer_load_gguf(const hass_gguf *g, hass_err *err);

/* The one way to open the tokenizer of a model (every command and the public API use it):
 * tokenizer, when given, by its kind (hass_file_kind_of): tokenizer.json, a GGUF file's
 * vocabulary, or else a llama2.c tokenizer.bin (with as many tokens as the llama2.c checkpoint
 * `model` says, if model is one). Without it: model's own: DIR/tokenizer.json of a Hugging Face
 * directory, a GGUF file's vocabulary. model may be NULL when tokenizer is given. Errors:
 * HASS_STATUS_ARG for a llama2.c checkpoint without its tokenizer (a usage error), the
 * loaders' otherwise. Caller frees. */
hass_tokenizer *hass_tokenizer_open(const char *model, const char *tokenizer, hass_err *err);

/* The tokenizer as GGUF metadata, appended to out the way llama.cpp's convert_hf_to_gguf.py
 * writes it: tokenizer.ggml.model ("llama" for SentencePiece-BPE, "gpt2" for byte-level BPE),
 * .pre ("default"; byte-level: "llama-bpe" for the LLaMA-3 regex with ignore_merges, "gpt-2"
 * for GPT-2's), .tokens (padded to n_vocab with "[PAD<id>]"), .scores (SentencePiece: the
 * tokenizer.bin scores, or -rank of the merge that makes each piece for a tokenizer.json),
 * .token_type (NORMAL, UNKNOWN, CONTROL for special and special-looking added tokens,
 * USER_DEFINED, UNUSED, BYTE), .merges (byte-level, "a b" by rank), bos/eos/unknown ids,
 * add_bos_token, add_eos_token (false), add_space_prefix (SentencePiece) and
 * tokenizer.chat_template. Our GGUF loader and llama.cpp then tokenize as t does.
 * HASS_STATUS_UNSUPPORTED (and nothing added) where GGUF cannot express t: another
 * pre-tokenizer regex, LLaMA-3's regex without ignore_merges, a dummy prefix on the first piece
 * only, Metaspace splitting that matters, joinable pieces no merge makes; HASS_STATUS_SHAPE when t
 * has more than n_vocab tokens. On error out may hold some of the keys. */
hass_status hass_tokenizer_gguf_kvs(const hass_tokenizer *t, int32_t n_vocab, hass_gguf_kvs *out,
                                    hass_err *err);

void hass_tokenizer_free(hass_tokenizer *t); /* NULL-safe */

int32_t hass_tokenizer_vocab_size(const hass_tokenizer *t);
/* Whether t fits a model of V tokens: its vocabulary and every special id it uses (BOS, EOS,
 * unknown, the end-of-turn ids the chat template stops on) below V. A model V larger than the
 * tokenizer's (padded embeddings, as Hugging Face allows) fits. HASS_STATUS_SHAPE with a
 * one-line message naming both sizes otherwise. */
hass_status hass_tokenizer_check_vocab(const hass_tokenizer *t, int64_t V, hass_err *err);
int32_t hass_tokenizer_bos(const hass_tokenizer *t); /* -1 if none */
int32_t hass_tokenizer_eos(const hass_tokenizer *t); /* -1 if none */
hass_tok_kind hass_tokenizer_kind(const hass_tokenizer *t);
/* Whether the model expects BOS in front of a prompt (add_bos_token; default 1 when a BOS
 * exists — LLaMA-3's tokenizer.json does not add it itself but the model expects it). */
int hass_tokenizer_wants_bos(const hass_tokenizer *t);

/* Encodes UTF-8 text (len bytes, may contain any bytes, need not be NUL-terminated).
 * add_bos: prepend BOS (if the vocab has one). parse_special: literal special/added-token
 * strings map to their ids (HF default); with 0 they are encoded as plain text.
 * Writes at most cap ids to ids (ids may be NULL when cap == 0); returns the number of ids of
 * the full encoding (may be > cap: the caller retries with a larger buffer), or a negative
 * hass_status with err set (only on out-of-memory or a byte with no token). Thread-safe. */
int64_t hass_tokenizer_encode(const hass_tokenizer *t, const char *text, size_t len, int add_bos,
                              int parse_special, int32_t *ids, int64_t cap, hass_err *err);

/* Raw piece string of id as stored in the vocab (SPM: with U+2581; byte-level: the GPT-2 byte
 * alphabet; specials: their text). Borrowed, valid until hass_tokenizer_free; NUL-terminated,
 * *len (if non-NULL) gets its byte length. NULL for an id out of range. */
const char *hass_tokenizer_piece(const hass_tokenizer *t, int32_t id, size_t *len);

/* Finds the id of an exact piece string (special tokens included); -1 if absent. */
int32_t hass_tokenizer_find(const hass_tokenizer *t, const char *piece, size_t len);

/* Streaming decoder: feed ids one at a time, get bytes that are valid UTF-8 to print.
 * Byte-fallback pieces <0xNN> and byte-level pieces are joined until a complete UTF-8
 * character is formed; invalid sequences come out as U+FFFD. U+2581 becomes a space. BOS
 * prints nothing; other special tokens print their text. SPM only: the leading space of the
 * piece after BOS is dropped, as llama2.c's run.c does, and also of the first piece when
 * `first` is set (set d.first = 1 after init to decode text encoded without BOS: this strips
 * the dummy prefix like HF's Strip decoder). Fields are internal apart from `first`. */
typedef struct {
    int32_t prev;
    uint8_t pending[8];
    int npending;
    int first;
} hass_detok;
void hass_detok_init(hass_detok *d); /* prev = -1, no pending bytes, first = 0 */
/* Returns the bytes written to out. Output never exceeds cap; a cap of at least
 * hass_tokenizer_detok_cap(t) never truncates. Ids out of range print nothing. */
size_t hass_detok_push(const hass_tokenizer *t, hass_detok *d, int32_t id, char *out, size_t cap);
/* Emits U+FFFD for an incomplete trailing character, if any, and resets the pending bytes. */
size_t hass_detok_flush(const hass_tokenizer *t, hass_detok *d, char *out, size_t cap);
size_t hass_tokenizer_detok_cap(const hass_tokenizer *t);

/* Decodes a whole id sequence into a NUL-terminated heap string (caller frees; *len gets the
 * length when non-NULL). strip_prefix has the meaning of hass_detok.first. NULL on OOM. */
char *hass_tokenizer_decode(const hass_tokenizer *t, const int32_t *ids, int64_t n,
                            int strip_prefix, size_t *len);

/* ---- chat templates (no Jinja engine: the template text is recognised, then rendered in C) ----
 * "llama2": <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s><s>[INST] ...
 *           (the system prompt is folded into the first user turn; contents are trimmed).
 * "llama3": <|begin_of_text|><|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>
 *           ...; generation prompt <|start_header_id|>assistant<|end_header_id|>\n\n.
 * "chatml": <|im_start|>{role}\n{content}<|im_end|>\n ...; generation prompt
 *           <|im_start|>assistant\n.
 * "hass":   the default for models without a template (hass's own small models):
 *           <|{role}|>\n{content}\n per message, an assistant turn ends with the EOS piece
 *           before its newline, generation prompt <|assistant|>\n. E.g.
 *           "<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\n".
 * Detected from tokenizer_config.json's chat_template (GGUF tokenizer.chat_template): text with
 * <|start_header_id|> is llama3, [INST] llama2, <|im_start|> chatml, anything else (or none)
 * hass. The rendered text never begins with BOS: encode it with add_bos =
 * hass_tokenizer_wants_bos(t) and parse_special = 1 (the BOS in the middle of llama2's
 * multi-turn text is a literal "<s>", parsed as the special token). */
typedef struct {
    const char *role; /* "system", "user", "assistant" (other roles are rendered by name) */
    const char *content;
} hass_chat_msg;
/* Returns a NUL-terminated heap string (caller frees) or NULL with err set. */
char *hass_tokenizer_chat_render(const hass_tokenizer *t, const hass_chat_msg *msgs, int n,
                                 int add_generation_prompt, hass_err *err);
/* The one prompt encoder (every command and the public API use it): with chat, the chat
 * template over msgs[0..n) plus the generation prompt; without, the text of msgs[n - 1] alone.
 * Encoded with BOS first if the model wants one, special-token strings parsed. *ids_out:
 * heap-allocated (caller frees). Returns the count (>= 1), or -1 with err set
 * (HASS_STATUS_ARG: the prompt encodes to no tokens). */
int64_t hass_tokenizer_encode_prompt(const hass_tokenizer *t, const hass_chat_msg *msgs, int n,
                                     int chat, int32_t **ids_out, hass_err *err);
const char *hass_tokenizer_chat_template(const hass_tokenizer *t); /* "llama2", ... */
/* Overrides the detected template by name; HASS_STATUS_ARG for an unknown name. Not
 * thread-safe against concurrent renders. */
hass_status hass_tokenizer_set_chat_template(hass_tokenizer *t, const char *name, hass_err *err);

/* Renders one corpus record, a JSON object of one of two shapes (other members, such as
 * "source", are ignored), as the text a model is trained on:
 *   {"messages": [{"role": R, "content": C}, ...]}  BOS piece + the chat template (no
 *                                                    generation prompt), e.g. for llama3
 *       <|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>...
 *   {"text": T}                                      BOS piece + T + EOS piece
 * Encode the result with add_bos = 0 and parse_special = 1. Returns a NUL-terminated heap
 * string (caller frees; *out_len gets its length if non-NULL), or NULL with err set
 * (HASS_STATUS_FORMAT: not JSON, no or both shapes, wrong member types). Thread-safe. */
char *hass_tokenizer_render_record(const hass_tokenizer *t, const char *json, size_t len,
                                   size_t *out_len, hass_err *err);

/* Ids the generator should stop at: EOS plus end-of-turn tokens present in the vocab
 * (<|eot_id|>, <|eom_id|>, <|im_end|>, <|end_of_text|>, <|endoftext|>). Writes at most cap,
 * returns how many there are. */
int hass_tokenizer_stop_ids(const hass_tokenizer *t, int32_t *ids, int cap);

/* ---- byte-level BPE training (bpe_train.c) ----
 * Trains a LLaMA-3-style tokenizer on corpus records (JSONL, one record a line, the two shapes
 * of hass_tokenizer_render_record). Each record is rendered with the LLaMA-3 template and
 * <|begin_of_text|>/<|end_of_text|>, split at special tokens, pre-tokenized with the LLaMA-3
 * regex, and the distinct pieces are counted; then the most frequent adjacent pair is merged
 * until the vocabulary is full, with incremental pair counts. Ties: the pair whose left
 * token's bytes are smallest (unsigned lexicographic, a prefix first), then the right token's.
 * Every merge makes a new token (each token has one merge, as in GPT-2's vocabulary), and
 * the encoder reproduces the trainer's segmentation of every training piece.
 * Vocabulary: ids 0..255 = the bytes in byte order, then one token per merge in merge order,
 * then <|begin_of_text|> (BOS), <|end_of_text|> (EOS), <|start_header_id|>,
 * <|end_header_id|>, <|eot_id|>, then <|reserved_special_token_N|> up to `vocab` ids.
 * Identical data and options give identical tokenizer.json / tokenizer_config.json bytes,
 * whatever the thread count. Use: create, add_jsonl per file, train, save, free. */
typedef struct {
    int32_t vocab;     /* total vocabulary size, special tokens included (8192); >= 261 */
    int64_t min_count; /* merge a pair only while it occurs at least this often (2) */
    int64_t max_bytes; /* read at most this many bytes of JSONL over all files (0: all) */
} hass_bpe_opts;
hass_bpe_opts hass_bpe_opts_default(void);

typedef struct {
    int64_t jsonl_bytes;   /* bytes of JSONL read */
    int64_t records;       /* records read */
    int64_t text_bytes;    /* bytes of text between special tokens */
    int64_t pieces;        /* pre-tokenizer pieces */
    int64_t unique_pieces; /* distinct pieces (the trainer's "words") */
    int32_t merges;        /* merges made (= tokens after the 256 bytes) */
    int64_t tokens;        /* tokens of the training text with the final vocabulary */
    double seconds_count, seconds_merge, seconds_save;
} hass_bpe_report;

typedef struct hass_bpe_trainer hass_bpe_trainer;
/* NULL opts: the defaults. NULL with err set on bad options (HASS_STATUS_ARG). Caller frees. */
hass_bpe_trainer *hass_bpe_trainer_create(const hass_bpe_opts *o, hass_err *err);
void hass_bpe_trainer_free(hass_bpe_trainer *tr); /* NULL-safe */
/* Reads a JSONL file and counts its pieces, on the threads of pool (NULL: one). Blank lines
 * are skipped; a bad record fails with "PATH:LINE: why" (HASS_STATUS_FORMAT). */
hass_status hass_bpe_trainer_add_jsonl(hass_bpe_trainer *tr, const char *path, hass_pool *pool,
                                       hass_err *err);
/* Makes the merges. HASS_STATUS_FORMAT if the data has no text. Logs progress (hass_log). */
hass_status hass_bpe_trainer_train(hass_bpe_trainer *tr, hass_err *err);
/* Writes DIR/tokenizer.json (HF tokenizers: BPE with ignore_merges, Split(LLaMA-3 regex) +
 * ByteLevel, a BOS-adding post-processor), DIR/tokenizer_config.json (BOS/EOS, add_bos_token,
 * the LLaMA-3 instruct chat template) and DIR/tokenizer_stats.json, each atomically; DIR is
 * created if missing. Before the stats are written the tokenizer.json is reloaded and checked:
 * sizes, special and stop ids, and every training piece must encode to the trainer's own
 * segmentation. valid_path (may be NULL): a JSONL file whose bytes per token, overall and per
 * record "source", go into the stats. */
hass_status hass_bpe_trainer_save(hass_bpe_trainer *tr, const char *dir, const char *valid_path,
                                  hass_pool *pool, hass_err *err);
/* The trainer's own segmentation of a text (special tokens parsed, no BOS added): each piece's
 * final symbols after all merges, or the piece's own id when it is a token (ignore_merges).
 * Only pieces seen in training can be segmented (else HASS_STATUS_NOTFOUND). Same return
 * convention as hass_tokenizer_encode. */
int64_t hass_bpe_trainer_encode(const hass_bpe_trainer *tr, const char *text, size_t len,
                                int32_t *ids, int64_t cap, hass_err *err);
void hass_bpe_trainer_report(const hass_bpe_trainer *tr, hass_bpe_report *r);

#endif

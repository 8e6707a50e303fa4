/* tokenizer: byte-level BPE identical to Hugging Face `tokenizers` for every DeepSeek family.
 *
 * A tok_tokenizer is loaded from a Hugging Face tokenizer.json (+ tokenizer_config.json beside
 * it) or from a GGUF vocabulary, and is immutable afterwards: encode and decode may run on many
 * threads at once on one tokenizer (each call keeps its scratch state on its own).
 *
 * The encode pipeline is HF's: added tokens are cut out of the text (which ones depends on the
 * tok_added_mode), the rest is normalized (NFC where the tokenizer asks), split by the
 * pre-tokenizer regexes (PCRE2, UTF + UCP, JIT), mapped to GPT-2 byte characters and merged by
 * ranked BPE; a post-processor may then add BOS/EOS.
 *
 * Caller content (message text, tool output) must never turn into a BOS/EOS/role/tool marker:
 * the chat template renderer passes a list of tok_segment, template text with TOK_ADDED_ALL and
 * caller content with TOK_ADDED_NONE, to tok_encode_segments(). The segments are tokenized as
 * one text (so merges and pre-token pieces are exactly HF's across segment boundaries) while
 * added tokens are only ever matched inside the segments that allow them. The normalizer
 * (NFC for Qwen2) runs per segment: a combining mark at the start of caller content does not
 * compose with template text before it.
 *
 * Token ids are int32_t; -1 means "none". */
#ifndef DS_TOKENIZER_TOKENIZER_H
#define DS_TOKENIZER_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "format/gguf.h"

typedef struct tok_tokenizer tok_tokenizer;

/* Which added tokens (tokenizer.json "added_tokens", GGUF control/user-defined tokens) are
 * recognised when they appear literally in text. */
typedef enum tok_added_mode {
    TOK_ADDED_ALL = 0,         /* (i) every added token: HF's default; for template text */
    TOK_ADDED_NON_SPECIAL = 1, /* (ii) all but those marked special: HF split_special_tokens=True */
    TOK_ADDED_NONE = 2,        /* (iii) none: caller content is always ordinary text */
} tok_added_mode;

/* A growable list of token ids. Zero-initialise it; encode functions append; free with
 * tok_ids_free. */
typedef struct tok_ids {
    int32_t *ids;
    size_t n;   /* ids in use */
    size_t cap; /* ids allocated */
} tok_ids;

/* One piece of a rendered prompt: `len` bytes of UTF-8 at `text` and how added tokens may be
 * matched inside it (TOK_ADDED_ALL for template text, TOK_ADDED_NONE for caller content). */
typedef struct tok_segment {
    const char *text;
    size_t len;
    tok_added_mode mode;
} tok_segment;

/* ---- loading ------------------------------------------------------------------------------ */

/* Loads from `path`: a directory holding tokenizer.json (and optionally tokenizer_config.json),
 * a tokenizer.json file, or a .gguf file. Unknown model / normalizer / pre-tokenizer /
 * post-processor / decoder types and unknown GGUF pre-tokenizer names are errors that name
 * the type. */
int tok_load(const char *path, tok_tokenizer **out, ds_err *err);

/* Loads from an already opened GGUF file (tokenizer.ggml.*). Copies everything it needs: `f`
 * may be closed afterwards. */
int tok_load_gguf(const gguf_file *f, tok_tokenizer **out, ds_err *err);

void tok_free(tok_tokenizer *t);

/* ---- encoding ----------------------------------------------------------------------------- */

/* Encodes `len` bytes of UTF-8 and appends the ids to `out`. add_special = HF's
 * add_special_tokens=True: adds what the post-processor (or tokenizer_config's add_bos_token /
 * add_eos_token for Llama-class tokenizers, or GGUF's add_bos_token) adds. Invalid UTF-8 is an
 * error "invalid UTF-8 at byte N" (N = 0-based offset of the first bad byte). */
int tok_encode(const tok_tokenizer *t, const char *text, size_t len, tok_added_mode mode,
               bool add_special, tok_ids *out, ds_err *err);

/* Encodes the concatenation of `n` segments (see the top of this file) and appends the ids.
 * Byte offsets in errors count from the start of the first segment. A chat prompt rendered
 * from a template already holds its BOS: pass add_special=false. */
int tok_encode_segments(const tok_tokenizer *t, const tok_segment *segs, size_t n,
                        bool add_special, tok_ids *out, ds_err *err);

/* The `dsinfer run -p TEXT` rule: mode (i), and the post-processor's BOS unless the text
 * already starts with the BOS token. */
int tok_encode_prompt(const tok_tokenizer *t, const char *text, size_t len, tok_ids *out,
                      ds_err *err);

/* Appends one id, growing the list; returns -1 only when memory runs out. */
int tok_ids_push(tok_ids *v, int32_t id);
void tok_ids_free(tok_ids *v);

/* ---- decoding ----------------------------------------------------------------------------- */

/* HF's decode(ids, skip_special_tokens) followed by transformers' clean_up_tokenization when
 * the tokenizer's clean_up_tokenization_spaces is set. Invalid UTF-8 produced by byte tokens
 * becomes U+FFFD exactly as Rust's String::from_utf8_lossy does. An id with no token is an
 * error naming it. *out is malloc'd and NUL-terminated (caller frees); *out_len excludes NUL. */
int tok_decode(const tok_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
               char **out, size_t *out_len, ds_err *err);

/* Streaming detokenizer: feed ids one at a time, get text out as soon as it forms whole UTF-8
 * characters. The concatenation of all outputs (pushes then finish) equals tok_decode without
 * the clean-up step. Never emits half a character. */
typedef struct tok_stream tok_stream;

/* Creates a stream over `t` (which must outlive it); NULL when memory runs out. */
tok_stream *tok_stream_new(const tok_tokenizer *t, bool skip_special);
void tok_stream_free(tok_stream *s);

/* Feeds one id. *text / *len receive the newly completed text (possibly empty), valid until
 * the next call on this stream. An id with no token is an error naming it. */
int tok_stream_push(tok_stream *s, int32_t id, const char **text, size_t *len, ds_err *err);

/* Ends the stream: bytes of an unfinished character come out as U+FFFD. The stream is then
 * empty and may be reused. */
void tok_stream_finish(tok_stream *s, const char **text, size_t *len);

/* ---- vocabulary --------------------------------------------------------------------------- */

/* Number of id slots (largest id + 1); some ids below it may have no token. */
int32_t tok_n_vocab(const tok_tokenizer *t);

/* BOS / EOS ids (from tokenizer_config.json, the post-processor or GGUF), -1 if none. */
int32_t tok_bos_id(const tok_tokenizer *t);
int32_t tok_eos_id(const tok_tokenizer *t);

/* Whether the tokenizer adds BOS when asked to add special tokens (see tok_encode). */
bool tok_adds_bos(const tok_tokenizer *t);

/* The token's string as written in the vocabulary (byte-level form, e.g. "Ġthe", for regular
 * tokens; the literal text for added tokens), NUL-terminated; NULL if the id has no token. */
const char *tok_token_text(const tok_tokenizer *t, int32_t id);

/* The bytes the decoder produces for this one token (may be part of a UTF-8 character). */
const char *tok_token_bytes(const tok_tokenizer *t, int32_t id, size_t *len);

/* Added token flagged special (HF special: true, GGUF control). */
bool tok_is_special(const tok_tokenizer *t, int32_t id);

/* Id of the token whose vocabulary string (or added-token content) is exactly `text`; -1 if
 * none. Example: tok_token_id(t, "<think>"). */
int32_t tok_token_id(const tok_tokenizer *t, const char *text);

/* The chat template (tokenizer_config.json "chat_template" or GGUF tokenizer.chat_template), or
 * NULL if the tokenizer ships none. Named templates (a list in tokenizer_config) give the one
 * called "default". */
const char *tok_chat_template(const tok_tokenizer *t);

/* Content strings of the BOS / EOS tokens as templates see them (bos_token / eos_token), or
 * NULL. */
const char *tok_bos_text(const tok_tokenizer *t);
const char *tok_eos_text(const tok_tokenizer *t);

#endif

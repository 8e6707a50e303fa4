/* Internal layout of a tok_tokenizer, shared by the files of src/tokenizer/ only.
 *
 *   tokenizer.c   lifecycle, string tables, vocabulary getters, UTF-8 helpers
 *   load_hf.c     tokenizer.json + tokenizer_config.json -> tok_tokenizer
 *   load_gguf.c   GGUF tokenizer.ggml.* -> tok_tokenizer
 *   pretok.c      normalizers (utf8proc) and pre-tokenizers (PCRE2)
 *   bpe.c         ranked byte-level BPE over one pre-token
 *   encode.c      added-token matching, the encode pipeline, post-processing
 *   decode.c      decode and the streaming detokenizer
 *
 * Every string of the vocabulary lives in one blob and is addressed by (offset, length), so
 * the blob may grow while loading. */
#ifndef DS_TOKENIZER_TOK_INTERNAL_H
#define DS_TOKENIZER_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "tokenizer/tokenizer.h"

/* flags[] bits per token id */
enum {
    TOKF_PRESENT = 1, /* the id has a token */
    TOKF_MODEL = 2,   /* part of the BPE model vocabulary (HF model.vocab; GGUF non-added) */
    TOKF_ADDED = 4,   /* an added token (HF added_tokens; GGUF control / user-defined) */
    TOKF_SPECIAL = 8, /* added token with special: true (GGUF control) */
    TOKF_BYTEMAP = 16, /* every character of the string is a GPT-2 byte character */
};

/* A growable byte buffer. */
typedef struct tok_buf {
    char *p;
    size_t n, cap;
} tok_buf;
int tok_buf_reserve(tok_buf *b, size_t extra);
int tok_buf_append(tok_buf *b, const void *data, size_t len);
void tok_buf_free(tok_buf *b);

/* Open-addressing map from a byte string to a token id. The key of id i is
 * blob[off[i] .. off[i] + len[i]); a slot keeps the id and the key's hash, so most misses
 * never touch the blob. */
typedef struct tok_strslot {
    uint32_t hash;
    int32_t id; /* -1 = empty */
} tok_strslot;

typedef struct tok_strmap {
    tok_strslot *slots; /* [mask + 1] */
    uint32_t mask;
    uint32_t count;
} tok_strmap;

/* Map from an ordered pair of ids to a merge (rank, resulting id); one slot is one probe. */
typedef struct tok_merge_slot {
    uint64_t key;   /* a << 32 | b; UINT64_MAX = empty */
    uint32_t rank;  /* position in the merges list: lower merges first */
    int32_t result; /* id of the merged token */
} tok_merge_slot;

typedef struct tok_merge_map {
    tok_merge_slot *slots; /* [mask + 1] */
    uint32_t mask;
    uint32_t count;
} tok_merge_map;

/* One added token. */
typedef struct tok_added {
    int32_t id;
    uint32_t off, len;   /* content (normalized by the tokenizer's normalizer when
                            `normalized`), in the blob */
    bool special, lstrip, rstrip, normalized, single_word;
} tok_added;

/* Byte trie over added-token contents: leftmost-longest matching. */
typedef struct tok_trie {
    uint32_t *child;   /* first child node, 0 = none */
    uint32_t *sibling; /* next sibling node, 0 = none */
    uint8_t *byte;     /* byte on the edge into this node */
    int32_t *term;     /* index into added[] of the token ending here, or -1 */
    uint32_t n, cap;   /* node 0 is the root */
    uint8_t first[32]; /* bitset of bytes that start some content */
    bool empty;        /* no tokens */
} tok_trie;

/* Normalizers (applied in order). */
typedef enum tok_norm_kind { TOK_NORM_NFC, TOK_NORM_NFD, TOK_NORM_NFKC, TOK_NORM_NFKD } tok_norm_kind;

/* How Split turns its matches into pieces (HF SplitDelimiterBehavior). */
typedef enum tok_split_behavior {
    TOK_SPLIT_ISOLATED,
    TOK_SPLIT_REMOVED,
    TOK_SPLIT_MERGED_PREV,
    TOK_SPLIT_MERGED_NEXT,
    TOK_SPLIT_CONTIGUOUS,
} tok_split_behavior;

/* One pre-tokenizer step. Split and Digits are regex splits; ByteLevel may add a prefix space
 * and split by the GPT-2 regex, and must be the last step (its byte mapping is implicit: the
 * BPE works on raw bytes). */
typedef struct tok_pretok {
    enum { TOK_PT_SPLIT, TOK_PT_BYTELEVEL } kind;
    pcre2_code *re;                 /* NULL for ByteLevel without regex */
    tok_split_behavior behavior;
    bool invert;
    bool add_prefix_space;          /* ByteLevel */
} tok_pretok;

struct tok_tokenizer {
    /* vocabulary: n_tokens id slots */
    int32_t n_tokens;
    uint8_t *flags;                 /* [n_tokens] TOKF_* */
    uint32_t *text_off, *text_len;  /* [n_tokens] vocabulary string, in blob */
    uint32_t *dec_off, *dec_len;    /* [n_tokens] decoder output bytes, in blob */
    tok_buf blob;                   /* all strings, each followed by a NUL */

    tok_strmap by_text;             /* vocabulary string (and added content) -> id */
    tok_strmap by_bytes;            /* raw bytes of byte-level model tokens -> id */
    int32_t byte_id[256];           /* model token of the single byte, -1 if none */
    tok_merge_map merges;

    /* BPE options */
    bool ignore_merges;             /* llama3: a piece that is a whole token is not merged */
    int32_t unk_id;                 /* -1: unknown bytes are dropped (HF without unk_token) */
    bool fuse_unk;

    /* added tokens; trie_raw holds normalized=false ones, trie_norm normalized=true ones */
    tok_added *added;
    uint32_t n_added;
    tok_trie trie_raw, trie_norm;

    /* normalizer and pre-tokenizer */
    tok_norm_kind *norms;
    uint32_t n_norms;
    tok_pretok *pretoks;
    uint32_t n_pretoks;

    /* post-processing for add_special: prefix ids + sequence + suffix ids */
    int32_t *post_prefix, *post_suffix;
    uint32_t n_post_prefix, n_post_suffix;

    /* decoding (the decoder is always ByteLevel) */
    bool clean_up_spaces;           /* transformers clean_up_tokenization_spaces */

    int32_t bos_id, eos_id;
    char *bos_text, *eos_text;      /* malloc'd or NULL */
    char *chat_template;            /* malloc'd or NULL */
};

/* ---- tokenizer.c ---- */
tok_tokenizer *tok_alloc(void);
/* Sets up n id slots (all absent). */
int tok_set_size(tok_tokenizer *t, int32_t n, ds_err *err);
/* Stores `text` as the vocabulary string of `id` and computes its decoder bytes. */
int tok_set_token(tok_tokenizer *t, int32_t id, const char *text, size_t len, uint8_t flags,
                  ds_err *err);
/* Builds by_text, by_bytes and byte_id once every token is set. */
int tok_build_maps(tok_tokenizer *t, ds_err *err);
int32_t tok_strmap_get(const tok_tokenizer *t, const tok_strmap *m, const uint32_t *off,
                       const uint32_t *len, const char *key, size_t key_len);
/* Adds merge (a, b) -> result with the given rank; a later duplicate overwrites (as HF). */
int tok_merge_put(tok_merge_map *m, int32_t a, int32_t b, uint32_t rank, int32_t result);
int tok_merges_reserve(tok_merge_map *m, size_t n);
/* Registers an added token (its id must already be set with TOKF_ADDED). */
int tok_add_added(tok_tokenizer *t, int32_t id, bool special, bool lstrip, bool rstrip,
                  bool normalized, bool single_word, ds_err *err);
/* Builds the two tries; normalizes contents of normalized tokens first. */
int tok_build_added(tok_tokenizer *t, ds_err *err);
uint64_t tok_hash(const void *p, size_t n);
/* Mixes a merge key (a << 32 | b) into a slot index. */
static inline uint32_t tok_pair_hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (uint32_t)k;
}

/* GPT-2 byte <-> unicode mapping: the code point that stands for byte b, and the byte for
 * code point cp (-1 if cp is not one of the 256). */
uint32_t tok_byte_to_cp(uint8_t b);
int tok_cp_to_byte(uint32_t cp);

/* UTF-8 helpers. tok_utf8_validate returns the offset of the first invalid byte or -1. */
long tok_utf8_validate(const char *s, size_t n);
/* Decodes one code point at s (valid UTF-8 assumed); returns its length. */
int tok_utf8_decode(const char *s, size_t n, uint32_t *cp);
int tok_utf8_encode(uint32_t cp, char *out);

/* ---- pretok.c ---- */
/* Compiles a pattern with UTF | UCP | MULTILINE (Oniguruma's Ruby syntax: ^ and $ match at
 * line breaks) and JIT. `literal` escapes it (HF Split with a String pattern). */
int tok_regex_compile(const char *pattern, size_t len, bool literal, pcre2_code **out,
                      ds_err *err);
/* Normalizes s[0..n) with the tokenizer's normalizers, appending to out. */
int tok_normalize(const tok_tokenizer *t, const char *s, size_t n, tok_buf *out, ds_err *err);
bool tok_has_normalizer(const tok_tokenizer *t);
/* NFC leaves cp unchanged in any context, and may split the text right before it. */
bool tok_nfc_stable(uint32_t cp);

/* A piece of text during pre-tokenization: [off, off+len) of a work buffer. */
typedef struct tok_span {
    uint32_t off, len;
} tok_span;

/* A regex match (m) or the gap before it, relative to a work buffer. */
typedef struct tok_part {
    uint32_t off, len;
    bool m;
} tok_part;

/* A pending merge in the BPE heap: key = rank << 32 | left symbol position. */
typedef struct tok_heap_ent {
    uint64_t key;
    int32_t new_id;
} tok_heap_ent;

/* A cached BPE result: piece bytes at cache_keys[key_off..+key_len) gave ids at
 * cache_ids[ids_off..+n_ids). n_ids == 0 marks an empty slot. */
#define TOK_CACHE_SLOTS 16384
#define TOK_CACHE_MAX_PIECE 64
#define TOK_CACHE_MAX_BYTES (8u << 20) /* past this much remembered, start afresh */
typedef struct tok_cache_ent {
    uint64_t hash;
    uint32_t key_off, ids_off;
    uint16_t key_len, n_ids;
} tok_cache_ent;

/* Scratch reused across calls of one encode. */
typedef struct tok_scratch {
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
    tok_span *a, *b;                /* ping-pong piece lists */
    size_t cap_a, cap_b;
    tok_part *parts;                /* one piece's regex matches and gaps */
    size_t cap_parts;
    tok_buf work;                   /* text with prefix spaces, when ByteLevel adds them */
    /* BPE */
    int32_t *sym_id, *sym_prev, *sym_next;
    uint32_t *sym_len;
    size_t sym_cap;
    tok_heap_ent *heap;             /* pending merges, a min-heap on (rank, position) */
    size_t heap_cap;
    /* results of short pieces already seen in this call (long texts only) */
    tok_cache_ent *cache;           /* [TOK_CACHE_SLOTS], direct-mapped; NULL = no cache */
    tok_buf cache_keys;             /* the pieces' bytes */
    tok_ids cache_ids;              /* their ids */
} tok_scratch;

/* use_cache: remember BPE results per piece (worth it from a few kilobytes of text on). */
int tok_scratch_init(tok_scratch *s, bool use_cache, ds_err *err);
void tok_scratch_free(tok_scratch *s);

/* Pre-tokenizes text[0..n) (one run between added tokens) and BPE-encodes every piece,
 * appending ids. */
int tok_pretok_and_bpe(const tok_tokenizer *t, tok_scratch *s, const char *text, size_t n,
                       tok_ids *out, ds_err *err);

/* ---- bpe.c ---- */
/* BPE over the raw bytes of one pre-token. */
int tok_bpe_piece(const tok_tokenizer *t, tok_scratch *s, const uint8_t *p, size_t n,
                  tok_ids *out, ds_err *err);

#endif

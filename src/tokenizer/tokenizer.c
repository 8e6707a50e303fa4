/* tokenizer.c — the vocabulary of a tok_tokenizer: storage, lookup tables, the GPT-2 byte
 * mapping, added-token tries, UTF-8 helpers and the public getters.
 *
 * Strings live in one blob addressed by offsets. Two hash maps index it: by_text (vocabulary
 * string -> id, what HF's token_to_id does) and by_bytes (raw bytes of byte-level model tokens
 * -> id, so the BPE can work on raw bytes and never build the "Ġ"-form of a piece). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

/* ---- growable buffers ---- */

int tok_buf_reserve(tok_buf *b, size_t extra) {
    if (b->n + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int tok_buf_append(tok_buf *b, const void *data, size_t len) {
    if (tok_buf_reserve(b, len)) return -1;
    if (len) memcpy(b->p + b->n, data, len);
    b->n += len;
    return 0;
}

void tok_buf_free(tok_buf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

int tok_ids_push(tok_ids *v, int32_t id) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *p = realloc(v->ids, cap * sizeof *p);
        if (!p) return -1;
        v->ids = p;
        v->cap = cap;
    }
    v->ids[v->n++] = id;
    return 0;
}

void tok_ids_free(tok_ids *v) {
    free(v->ids);
    v->ids = NULL;
    v->n = v->cap = 0;
}

/* ---- hashing ---- */

/* FNV-1a, 64-bit: keys are short token strings. */
uint64_t tok_hash(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int strmap_init(tok_strmap *m, size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap *= 2;
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots) return -1;
    for (size_t i = 0; i < cap; i++) m->slots[i] = (tok_strslot){0, -1};
    m->mask = (uint32_t)(cap - 1);
    m->count = 0;
    return 0;
}

/* Inserts id under its key; an existing key is replaced only when `replace`. */
static void strmap_put(const tok_tokenizer *t, tok_strmap *m, const uint32_t *off,
                       const uint32_t *len, int32_t id, bool replace) {
    const char *key = t->blob.p + off[id];
    uint64_t h64 = tok_hash(key, len[id]);
    uint32_t h = (uint32_t)(h64 >> 32), i = (uint32_t)h64 & m->mask;
    for (;;) {
        tok_strslot *e = &m->slots[i];
        if (e->id < 0) {
            *e = (tok_strslot){h, id};
            m->count++;
            return;
        }
        if (e->hash == h && len[e->id] == len[id] && !memcmp(t->blob.p + off[e->id], key, len[id])) {
            if (replace) e->id = id;
            return;
        }
        i = (i + 1) & m->mask;
    }
}

int32_t tok_strmap_get(const tok_tokenizer *t, const tok_strmap *m, const uint32_t *off,
                       const uint32_t *len, const char *key, size_t key_len) {
    if (!m->slots) return -1;
    uint64_t h64 = tok_hash(key, key_len);
    uint32_t h = (uint32_t)(h64 >> 32), i = (uint32_t)h64 & m->mask;
    for (;;) {
        const tok_strslot *e = &m->slots[i];
        if (e->id < 0) return -1;
        if (e->hash == h && len[e->id] == key_len && !memcmp(t->blob.p + off[e->id], key, key_len)) return e->id;
        i = (i + 1) & m->mask;
    }
}

int tok_merges_reserve(tok_merge_map *m, size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap *= 2;
    free(m->slots);
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots) return -1;
    for (size_t i = 0; i < cap; i++) m->slots[i].key = UINT64_MAX;
    m->mask = (uint32_t)(cap - 1);
    m->count = 0;
    return 0;
}

int tok_merge_put(tok_merge_map *m, int32_t a, int32_t b, uint32_t rank, int32_t result) {
    if (!m->slots || (size_t)(m->count + 1) * 2 > (size_t)m->mask + 1) {
        /* grow: rehash into a map twice the size */
        tok_merge_map g = {0};
        if (tok_merges_reserve(&g, m->slots ? (size_t)m->mask + 1 : 8)) return -1;
        if (m->slots)
            for (uint32_t i = 0; i <= m->mask; i++) {
                tok_merge_slot *e = &m->slots[i];
                if (e->key != UINT64_MAX)
                    tok_merge_put(&g, (int32_t)(e->key >> 32), (int32_t)(uint32_t)e->key, e->rank, e->result);
            }
        free(m->slots);
        *m = g;
    }
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    uint32_t i = tok_pair_hash(key) & m->mask;
    while (m->slots[i].key != UINT64_MAX && m->slots[i].key != key) i = (i + 1) & m->mask;
    if (m->slots[i].key == UINT64_MAX) m->count++;
    m->slots[i] = (tok_merge_slot){key, rank, result};
    return 0;
}

/* ---- GPT-2 byte <-> unicode ---- */

static bool byte_is_printable(unsigned b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t tok_byte_to_cp(uint8_t b) {
    if (byte_is_printable(b)) return b;
    /* the n-th non-printable byte (in byte order) maps to 256 + n */
    uint32_t n = 0;
    for (unsigned c = 0; c < b; c++)
        if (!byte_is_printable(c)) n++;
    return 256 + n;
}

int tok_cp_to_byte(uint32_t cp) {
    if (cp < 256) return byte_is_printable(cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1; /* 68 non-printable bytes */
    uint32_t n = cp - 256;
    for (unsigned c = 0; c < 256; c++)
        if (!byte_is_printable(c) && n-- == 0) return (int)c;
    return -1;
}

/* Table form of tok_cp_to_byte for code points below 512. */
static int16_t g_cp_byte[512];
static bool g_cp_byte_ready;

static void cp_byte_init(void) {
    /* Idempotent and the same on every thread: a benign race writes identical values. */
    if (g_cp_byte_ready) return;
    for (uint32_t cp = 0; cp < 512; cp++) g_cp_byte[cp] = (int16_t)tok_cp_to_byte(cp);
    __atomic_store_n(&g_cp_byte_ready, true, __ATOMIC_RELEASE);
}

/* ---- UTF-8 ---- */

long tok_utf8_validate(const char *s, size_t n) {
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else
            return (long)i;
        if (i + need >= n) return (long)i; /* truncated */
        if (p[i + 1] < lo || p[i + 1] > hi) return (long)i;
        for (size_t k = 2; k <= need; k++)
            if ((p[i + k] & 0xC0) != 0x80) return (long)i;
        i += need + 1;
    }
    return -1;
}

int tok_utf8_decode(const char *s, size_t n, uint32_t *cp) {
    const uint8_t *p = (const uint8_t *)s;
    if (n == 0) {
        *cp = 0;
        return 0;
    }
    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    int len = p[0] >= 0xF0 ? 4 : p[0] >= 0xE0 ? 3 : 2;
    if ((size_t)len > n) len = (int)n;
    uint32_t c = p[0] & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
    for (int k = 1; k < len; k++) c = c << 6 | (p[k] & 0x3F);
    *cp = c;
    return len;
}

int tok_utf8_encode(uint32_t cp, char *out) {
    uint8_t *o = (uint8_t *)out;
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | cp >> 6);
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | cp >> 12);
        o[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | cp >> 18);
    o[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- lifecycle ---- */

tok_tokenizer *tok_alloc(void) {
    cp_byte_init();
    tok_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->unk_id = -1;
    t->bos_id = t->eos_id = -1;
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    return t;
}

int tok_set_size(tok_tokenizer *t, int32_t n, ds_err *err) {
    if (n <= 0) return ds_errf(err, "tokenizer: empty vocabulary");
    t->n_tokens = n;
    t->flags = calloc((size_t)n, 1);
    t->text_off = calloc((size_t)n, sizeof *t->text_off);
    t->text_len = calloc((size_t)n, sizeof *t->text_len);
    t->dec_off = calloc((size_t)n, sizeof *t->dec_off);
    t->dec_len = calloc((size_t)n, sizeof *t->dec_len);
    if (!t->flags || !t->text_off || !t->text_len || !t->dec_off || !t->dec_len)
        return ds_errf(err, "tokenizer: out of memory for %d tokens", n);
    return 0;
}

int tok_set_token(tok_tokenizer *t, int32_t id, const char *text, size_t len, uint8_t flags,
                  ds_err *err) {
    if (id < 0 || id >= t->n_tokens) return ds_errf(err, "tokenizer: token id %d out of range", id);
    if (len > UINT32_MAX / 2) return ds_errf(err, "tokenizer: token %d is too long", id);
    if (tok_buf_reserve(&t->blob, 2 * len + 2)) return ds_errf(err, "tokenizer: out of memory");
    if (t->blob.n + 2 * len + 2 > UINT32_MAX) return ds_errf(err, "tokenizer: vocabulary too large");
    t->text_off[id] = (uint32_t)t->blob.n;
    t->text_len[id] = (uint32_t)len;
    tok_buf_append(&t->blob, text, len);
    tok_buf_append(&t->blob, "", 1);

    /* Decoder bytes. ByteLevel: every character maps back to its byte, unless one of them is
     * not a byte character; then the token's own UTF-8 is used (HF's ByteLevel decoder). */
    bool mapped = tok_utf8_validate(text, len) < 0;
    size_t start = t->blob.n;
    for (size_t i = 0; mapped && i < len;) {
        uint32_t cp;
        i += (size_t)tok_utf8_decode(text + i, len - i, &cp);
        int b = cp < 512 ? g_cp_byte[cp] : -1;
        if (b < 0) {
            mapped = false;
            break;
        }
        char c = (char)b;
        tok_buf_append(&t->blob, &c, 1);
    }
    if (mapped) flags |= TOKF_BYTEMAP;
    if (!mapped) {
        t->blob.n = start;
        tok_buf_append(&t->blob, text, len);
    }
    t->dec_off[id] = (uint32_t)start;
    t->dec_len[id] = (uint32_t)(t->blob.n - start);
    tok_buf_append(&t->blob, "", 1);
    t->flags[id] = flags | TOKF_PRESENT;
    return 0;
}

int tok_build_maps(tok_tokenizer *t, ds_err *err) {
    free(t->by_text.slots);
    free(t->by_bytes.slots);
    if (strmap_init(&t->by_text, (size_t)t->n_tokens) || strmap_init(&t->by_bytes, (size_t)t->n_tokens))
        return ds_errf(err, "tokenizer: out of memory");
    /* model tokens first; an added token with the same string then takes the name (HF looks
     * the added vocabulary up first) */
    for (int pass = 0; pass < 2; pass++)
        for (int32_t id = 0; id < t->n_tokens; id++) {
            uint8_t f = t->flags[id];
            if (!(f & TOKF_PRESENT)) continue;
            if (pass == 0 && (f & TOKF_ADDED)) continue;
            if (pass == 1 && !(f & TOKF_ADDED)) continue;
            strmap_put(t, &t->by_text, t->text_off, t->text_len, id, pass == 1);
        }
    for (int32_t id = 0; id < t->n_tokens; id++) {
        uint8_t f = t->flags[id];
        if ((f & (TOKF_PRESENT | TOKF_MODEL | TOKF_BYTEMAP)) != (TOKF_PRESENT | TOKF_MODEL | TOKF_BYTEMAP))
            continue;
        /* for byte-mapped tokens the decoder bytes are exactly the raw bytes */
        strmap_put(t, &t->by_bytes, t->dec_off, t->dec_len, id, false);
        if (t->dec_len[id] == 1) {
            uint8_t b = (uint8_t)t->blob.p[t->dec_off[id]];
            if (t->byte_id[b] < 0) t->byte_id[b] = id;
        }
    }
    return 0;
}

/* ---- added tokens ---- */

int tok_add_added(tok_tokenizer *t, int32_t id, bool special, bool lstrip, bool rstrip,
                  bool normalized, bool single_word, ds_err *err) {
    if (id < 0 || id >= t->n_tokens || !(t->flags[id] & TOKF_PRESENT))
        return ds_errf(err, "tokenizer: added token id %d has no token", id);
    if (t->text_len[id] == 0) return 0; /* HF ignores empty added tokens */
    for (uint32_t i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) return 0;
    tok_added *a = realloc(t->added, (t->n_added + 1) * sizeof *a);
    if (!a) return ds_errf(err, "tokenizer: out of memory");
    t->added = a;
    a[t->n_added++] = (tok_added){.id = id, .off = t->text_off[id], .len = t->text_len[id],
                                  .special = special, .lstrip = lstrip, .rstrip = rstrip,
                                  .normalized = normalized, .single_word = single_word};
    t->flags[id] |= TOKF_ADDED | (special ? TOKF_SPECIAL : 0);
    return 0;
}

static int trie_node(tok_trie *tr, uint8_t byte) {
    if (tr->n == tr->cap) {
        uint32_t cap = tr->cap ? tr->cap * 2 : 256;
        uint32_t *c = realloc(tr->child, cap * sizeof *c);
        if (c) tr->child = c;
        uint32_t *s = realloc(tr->sibling, cap * sizeof *s);
        if (s) tr->sibling = s;
        uint8_t *b = realloc(tr->byte, cap);
        if (b) tr->byte = b;
        int32_t *m = realloc(tr->term, cap * sizeof *m);
        if (m) tr->term = m;
        if (!c || !s || !b || !m) return -1;
        tr->cap = cap;
    }
    uint32_t i = tr->n++;
    tr->child[i] = tr->sibling[i] = 0;
    tr->byte[i] = byte;
    tr->term[i] = -1;
    return (int)i;
}

static int trie_insert(tok_trie *tr, const uint8_t *s, size_t n, int32_t idx) {
    if (tr->n == 0 && trie_node(tr, 0) < 0) return -1;
    uint32_t node = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = tr->child[node];
        while (c && tr->byte[c] != s[i]) c = tr->sibling[c];
        if (!c) {
            int k = trie_node(tr, s[i]);
            if (k < 0) return -1;
            c = (uint32_t)k;
            tr->sibling[c] = tr->child[node];
            tr->child[node] = c;
        }
        node = c;
    }
    /* the same content twice: the first keeps it (HF builds its automaton in this order) */
    if (tr->term[node] < 0) tr->term[node] = idx;
    tr->first[s[0] >> 3] |= (uint8_t)(1u << (s[0] & 7));
    tr->empty = false;
    return 0;
}

static void trie_free(tok_trie *tr) {
    free(tr->child);
    free(tr->sibling);
    free(tr->byte);
    free(tr->term);
    memset(tr, 0, sizeof *tr);
    tr->empty = true;
}

int tok_build_added(tok_tokenizer *t, ds_err *err) {
    trie_free(&t->trie_raw);
    trie_free(&t->trie_norm);
    /* HF's order: special tokens first, then the others (each in the order given) */
    for (int pass = 0; pass < 2; pass++)
        for (uint32_t i = 0; i < t->n_added; i++) {
            tok_added *a = &t->added[i];
            if (a->special != (pass == 0)) continue;
            if (a->normalized && tok_has_normalizer(t)) {
                tok_buf nb = {0};
                if (tok_normalize(t, t->blob.p + t->text_off[a->id], t->text_len[a->id], &nb, err)) {
                    tok_buf_free(&nb);
                    return -1;
                }
                size_t off = t->blob.n;
                if (tok_buf_append(&t->blob, nb.p, nb.n) || tok_buf_append(&t->blob, "", 1)) {
                    tok_buf_free(&nb);
                    return ds_errf(err, "tokenizer: out of memory");
                }
                a->off = (uint32_t)off;
                a->len = (uint32_t)nb.n;
                tok_buf_free(&nb);
            }
            if (a->len == 0) continue;
            tok_trie *tr = a->normalized ? &t->trie_norm : &t->trie_raw;
            if (trie_insert(tr, (const uint8_t *)t->blob.p + a->off, a->len, (int32_t)i))
                return ds_errf(err, "tokenizer: out of memory");
        }
    return 0;
}

void tok_free(tok_tokenizer *t) {
    if (!t) return;
    free(t->flags);
    free(t->text_off);
    free(t->text_len);
    free(t->dec_off);
    free(t->dec_len);
    tok_buf_free(&t->blob);
    free(t->by_text.slots);
    free(t->by_bytes.slots);
    free(t->merges.slots);
    free(t->added);
    trie_free(&t->trie_raw);
    trie_free(&t->trie_norm);
    free(t->norms);
    for (uint32_t i = 0; i < t->n_pretoks; i++) pcre2_code_free(t->pretoks[i].re);
    free(t->pretoks);
    free(t->post_prefix);
    free(t->post_suffix);
    free(t->bos_text);
    free(t->eos_text);
    free(t->chat_template);
    free(t);
}

/* ---- getters ---- */

int32_t tok_n_vocab(const tok_tokenizer *t) { return t->n_tokens; }
int32_t tok_bos_id(const tok_tokenizer *t) { return t->bos_id; }
int32_t tok_eos_id(const tok_tokenizer *t) { return t->eos_id; }
const char *tok_chat_template(const tok_tokenizer *t) { return t->chat_template; }
const char *tok_bos_text(const tok_tokenizer *t) { return t->bos_text; }
const char *tok_eos_text(const tok_tokenizer *t) { return t->eos_text; }

bool tok_adds_bos(const tok_tokenizer *t) {
    return t->bos_id >= 0 && t->n_post_prefix > 0 && t->post_prefix[0] == t->bos_id;
}

static bool has_token(const tok_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_tokens && (t->flags[id] & TOKF_PRESENT);
}

const char *tok_token_text(const tok_tokenizer *t, int32_t id) {
    return has_token(t, id) ? t->blob.p + t->text_off[id] : NULL;
}

const char *tok_token_bytes(const tok_tokenizer *t, int32_t id, size_t *len) {
    if (!has_token(t, id)) {
        *len = 0;
        return NULL;
    }
    *len = t->dec_len[id];
    return t->blob.p + t->dec_off[id];
}

bool tok_is_special(const tok_tokenizer *t, int32_t id) {
    return has_token(t, id) && (t->flags[id] & TOKF_SPECIAL);
}

int32_t tok_token_id(const tok_tokenizer *t, const char *text) {
    return tok_strmap_get(t, &t->by_text, t->text_off, t->text_len, text, strlen(text));
}

/* bpe.c — ranked byte-level BPE over one pre-token, exactly as HF tokenizers' Word::merge_all.
 *
 * The piece's bytes start as one symbol each (the model token of that byte; a byte with no
 * token becomes unk_token, or is dropped when there is none, as in HF). Every adjacent pair
 * that has a merge goes into a min-heap ordered by (rank, left position). Popping the best
 * pair merges it into its left symbol, unlinks the right one and pushes the two pairs the
 * new symbol forms with its neighbours. A popped entry is stale when its left symbol was
 * merged away or the pair there now merges into a different token; HF checks exactly that
 * (the resulting id), and so do we, so ties and stale entries resolve identically.
 * Cost: O(n log n) per piece of n bytes, so even a megabyte-long piece is fast. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

/* Looks up merge (a, b); returns its resulting id (and rank) or -1. */
static inline int32_t merge_get(const tok_merge_map *m, int32_t a, int32_t b, uint32_t *rank) {
    if (!m->slots) return -1;
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    uint32_t i = tok_pair_hash(key) & m->mask;
    for (;;) {
        const tok_merge_slot *e = &m->slots[i];
        if (e->key == key) {
            *rank = e->rank;
            return e->result;
        }
        if (e->key == UINT64_MAX) return -1;
        i = (i + 1) & m->mask;
    }
}

/* ---- min-heap on key ---- */

static void heap_push(tok_heap_ent *h, size_t *n, tok_heap_ent e) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p].key <= e.key) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static tok_heap_ent heap_pop(tok_heap_ent *h, size_t *n) {
    tok_heap_ent top = h[0];
    tok_heap_ent last = h[--(*n)];
    size_t i = 0, cnt = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= cnt) break;
        if (c + 1 < cnt && h[c + 1].key < h[c].key) c++;
        if (h[c].key >= last.key) break;
        h[i] = h[c];
        i = c;
    }
    if (cnt) h[i] = last;
    return top;
}

static int reserve(tok_scratch *s, size_t n) {
    if (n <= s->sym_cap) return 0;
    size_t c = s->sym_cap ? s->sym_cap : 64;
    while (c < n) c *= 2;
    int32_t *id = realloc(s->sym_id, c * sizeof *id);
    if (id) s->sym_id = id;
    int32_t *pv = realloc(s->sym_prev, c * sizeof *pv);
    if (pv) s->sym_prev = pv;
    int32_t *nx = realloc(s->sym_next, c * sizeof *nx);
    if (nx) s->sym_next = nx;
    uint32_t *ln = realloc(s->sym_len, c * sizeof *ln);
    if (ln) s->sym_len = ln;
    /* every merge pushes at most two entries: n initial pairs + 2 per merge */
    tok_heap_ent *h = realloc(s->heap, 3 * c * sizeof *h);
    if (h) s->heap = h;
    if (!id || !pv || !nx || !ln || !h) return -1;
    s->sym_cap = c;
    s->heap_cap = 3 * c;
    return 0;
}

static int bpe_merge(const tok_tokenizer *t, tok_scratch *s, const uint8_t *p, size_t n,
                     tok_ids *out, ds_err *err);

int tok_bpe_piece(const tok_tokenizer *t, tok_scratch *s, const uint8_t *p, size_t n,
                  tok_ids *out, ds_err *err) {
    if (n == 0) return 0;
    if (t->ignore_merges) {
        int32_t id = tok_strmap_get(t, &t->by_bytes, t->dec_off, t->dec_len, (const char *)p, n);
        if (id >= 0) return tok_ids_push(out, id) ? ds_errf(err, "tokenizer: out of memory") : 0;
    }
    if (n == 1 && t->byte_id[p[0]] >= 0)
        return tok_ids_push(out, t->byte_id[p[0]]) ? ds_errf(err, "tokenizer: out of memory") : 0;
    if (!s->cache || n > TOK_CACHE_MAX_PIECE) return bpe_merge(t, s, p, n, out, err);

    /* natural text repeats its words: look the piece up, else merge it and remember it */
    uint64_t h = tok_hash(p, n);
    tok_cache_ent *e = &s->cache[h & (TOK_CACHE_SLOTS - 1)];
    if (e->n_ids && e->hash == h && e->key_len == n && !memcmp(s->cache_keys.p + e->key_off, p, n)) {
        for (uint32_t i = 0; i < e->n_ids; i++)
            if (tok_ids_push(out, s->cache_ids.ids[e->ids_off + i])) return ds_errf(err, "tokenizer: out of memory");
        return 0;
    }
    size_t start = out->n;
    if (bpe_merge(t, s, p, n, out, err)) return -1;
    size_t k = out->n - start;
    if (k == 0 || k > UINT16_MAX) return 0;
    if (s->cache_keys.n + n > TOK_CACHE_MAX_BYTES) { /* bound the memory of huge texts */
        memset(s->cache, 0, TOK_CACHE_SLOTS * sizeof *s->cache);
        s->cache_keys.n = 0;
        s->cache_ids.n = 0;
        e = &s->cache[h & (TOK_CACHE_SLOTS - 1)];
    }
    size_t key_off = s->cache_keys.n, ids_off = s->cache_ids.n;
    if (tok_buf_append(&s->cache_keys, p, n)) return ds_errf(err, "tokenizer: out of memory");
    for (size_t i = 0; i < k; i++)
        if (tok_ids_push(&s->cache_ids, out->ids[start + i])) return ds_errf(err, "tokenizer: out of memory");
    *e = (tok_cache_ent){h, (uint32_t)key_off, (uint32_t)ids_off, (uint16_t)n, (uint16_t)k};
    return 0;
}

/* The merge loop proper (no cache). */
static int bpe_merge(const tok_tokenizer *t, tok_scratch *s, const uint8_t *p, size_t n,
                     tok_ids *out, ds_err *err) {
    if (reserve(s, n)) return ds_errf(err, "tokenizer: out of memory");

    /* initial symbols */
    int32_t *sym = s->sym_id, *prev = s->sym_prev, *next = s->sym_next;
    uint32_t *len = s->sym_len;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_id[p[i]];
        if (id < 0) {
            if (t->unk_id < 0) continue; /* HF without unk_token drops the character */
            if (t->fuse_unk && m > 0 && sym[m - 1] == t->unk_id) {
                len[m - 1]++;
                continue;
            }
            id = t->unk_id;
        }
        sym[m] = id;
        len[m] = 1;
        m++;
    }
    for (size_t i = 0; i < m; i++) {
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < m ? (int32_t)i + 1 : -1;
    }

    size_t hn = 0;
    tok_heap_ent *heap = s->heap;
    for (size_t i = 0; i + 1 < m; i++) {
        uint32_t rank;
        int32_t r = merge_get(&t->merges, sym[i], sym[i + 1], &rank);
        if (r >= 0) heap_push(heap, &hn, (tok_heap_ent){(uint64_t)rank << 32 | i, r});
    }
    while (hn > 0) {
        tok_heap_ent top = heap_pop(heap, &hn);
        uint32_t pos = (uint32_t)top.key;
        if (len[pos] == 0 || next[pos] < 0) continue;
        int32_t nx = next[pos];
        uint32_t rank;
        if (merge_get(&t->merges, sym[pos], sym[nx], &rank) != top.new_id) continue; /* stale */
        sym[pos] = top.new_id;
        len[pos] += len[nx];
        len[nx] = 0;
        next[pos] = next[nx];
        if (next[nx] >= 0) prev[next[nx]] = (int32_t)pos;
        if (hn + 2 > s->heap_cap) return ds_errf(err, "tokenizer: BPE heap overflow"); /* cannot happen */
        if (prev[pos] >= 0) {
            int32_t r = merge_get(&t->merges, sym[prev[pos]], sym[pos], &rank);
            if (r >= 0) heap_push(heap, &hn, (tok_heap_ent){(uint64_t)rank << 32 | (uint32_t)prev[pos], r});
        }
        if (next[pos] >= 0) {
            int32_t r = merge_get(&t->merges, sym[pos], sym[next[pos]], &rank);
            if (r >= 0) heap_push(heap, &hn, (tok_heap_ent){(uint64_t)rank << 32 | pos, r});
        }
    }
    for (int32_t i = m ? 0 : -1; i >= 0; i = next[i])
        if (tok_ids_push(out, sym[i])) return ds_errf(err, "tokenizer: out of memory");
    return 0;
}

/* libFuzzer target for the tokenizer: arbitrary bytes through encode (every added-token mode,
 * with and without special tokens, as one text and split into segments) and back through
 * decode and the streaming detokenizer. Beyond crashes and ASan reports it checks invariants
 * that hold for any input:
 *   - invalid UTF-8 is rejected, valid UTF-8 is accepted;
 *   - with no normalizer and no added tokens matched (mode iii) decoding gives the text back;
 *   - caller content split into segments (before an NFC-stable character) encodes exactly
 *     like the whole text;
 *   - the streamed decode equals the whole decode and never starts with a continuation byte.
 * Tokenizers: ../shared/tokenizers/deepseek-v3 and qwen2 (NFC) when present (the fuzzer runs
 * from the repository root), else a small built-in one. The first input byte picks the
 * tokenizer and mode. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokenizer/tok_internal.h"
#include "tokenizer/tokenizer.h"

static tok_tokenizer *g_tok[2];
static bool g_lossless[2]; /* no normalizer: mode (iii) round-trips exactly */
static int g_n;

static const char k_fallback[] =
    "{\"added_tokens\":[{\"id\":300,\"content\":\"<s>\",\"special\":true,\"lstrip\":false,\"rstrip\":false,"
    "\"normalized\":false,\"single_word\":false},{\"id\":301,\"content\":\"<U>\",\"special\":false,"
    "\"lstrip\":true,\"rstrip\":true,\"normalized\":true,\"single_word\":false}],"
    "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
    "\"use_regex\":true},\"post_processor\":null,\"decoder\":{\"type\":\"ByteLevel\"},"
    "\"model\":{\"type\":\"BPE\",\"vocab\":{@VOCAB@},\"merges\":[\"a b\",\"\\u0120 a\"]}}";

/* Writes the fallback tokenizer (256 byte tokens + two merges) and loads it. */
static tok_tokenizer *fallback(void) {
    static char dir[] = "/tmp/fuzz_tokenizer_XXXXXX";
    if (!mkdtemp(dir)) return NULL;
    char path[64];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return NULL;
    const char *at = strstr(k_fallback, "@VOCAB@");
    fwrite(k_fallback, 1, (size_t)(at - k_fallback), f);
    for (unsigned b = 0; b < 256; b++) {
        /* GPT-2 byte mapping, written as a JSON \u escape */
        unsigned cp = b;
        if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE))) {
            unsigned n = 0;
            for (unsigned c = 0; c < b; c++)
                if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE))) n++;
            cp = 256 + n;
        }
        fprintf(f, "%s\"\\u%04x\":%u", b ? "," : "", cp, b);
    }
    fprintf(f, ",\"ab\":256,\"\\u0120a\":257");
    fputs(at + 7, f);
    fclose(f);
    tok_tokenizer *t = NULL;
    ds_err err;
    if (tok_load(dir, &t, &err)) fprintf(stderr, "fuzz_tokenizer: %s\n", err.msg);
    unlink(path);
    rmdir(dir);
    return t;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    static const char *const paths[] = {"../shared/tokenizers/deepseek-v3", "../shared/tokenizers/qwen2"};
    for (int i = 0; i < 2; i++) {
        ds_err err;
        if (access(paths[i], R_OK) == 0 && tok_load(paths[i], &g_tok[g_n], &err) == 0) g_lossless[g_n++] = i == 0;
    }
    if (g_n == 0 && (g_tok[0] = fallback())) g_lossless[g_n++] = true;
    if (g_n == 0) abort();
    return 0;
}

static bool valid_utf8(const uint8_t *s, size_t n) {
    /* an independent check: decode and re-encode with the standard rules */
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t need = c < 0x80 ? 0 : c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xF0 && c <= 0xF4 ? 3 : 9;
        if (need == 9 || i + need >= n + (need == 0)) return need == 0 && i < n;
        uint32_t cp = need == 0 ? c : c & (0x3F >> need);
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((need == 1 && cp < 0x80) || (need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += need + 1;
    }
    return true;
}

static void check_decode(const tok_tokenizer *t, const tok_ids *ids, bool skip) {
    char *whole;
    size_t whole_n;
    ds_err err;
    if (tok_decode(t, ids->ids, ids->n, skip, &whole, &whole_n, &err)) abort();
    tok_stream *s = tok_stream_new(t, skip);
    if (!s) abort();
    size_t at = 0;
    for (size_t i = 0; i <= ids->n; i++) {
        const char *p;
        size_t n;
        if (i < ids->n) {
            if (tok_stream_push(s, ids->ids[i], &p, &n, &err)) abort();
        } else
            tok_stream_finish(s, &p, &n);
        if (n && ((unsigned char)p[0] & 0xC0) == 0x80) abort();
        /* llama3-style clean-up is off for these tokenizers, so the bytes must agree */
        if (at + n > whole_n || memcmp(whole + at, p, n)) abort();
        at += n;
    }
    if (at != whole_n) abort();
    tok_stream_free(s);
    free(whole);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    int which = data[0] % g_n;
    tok_added_mode mode = (tok_added_mode)((data[0] >> 1) % 3);
    bool add_special = data[0] & 0x80;
    const tok_tokenizer *t = g_tok[which];
    const char *text = (const char *)data + 1;
    size_t n = size - 1;

    tok_ids ids = {0};
    ds_err err;
    int rc = tok_encode(t, text, n, mode, add_special, &ids, &err);
    if ((rc == 0) != valid_utf8(data + 1, n)) abort();
    if (rc) {
        if (strncmp(err.msg, "invalid UTF-8 at byte ", 22)) abort();
        return 0;
    }
    check_decode(t, &ids, false);
    check_decode(t, &ids, true);

    /* caller content: encode as plain text, whole and split in two at a character boundary */
    tok_ids plain = {0}, split = {0};
    if (tok_encode(t, text, n, TOK_ADDED_NONE, false, &plain, &err)) abort();
    /* segments are normalized one by one, so cut where NFC may cut: before a stable character */
    size_t cut = n / 2;
    for (;; cut--) {
        while (cut > 0 && ((unsigned char)text[cut] & 0xC0) == 0x80) cut--;
        uint32_t cp;
        if (cut == 0 || (tok_utf8_decode(text + cut, n - cut, &cp) && tok_nfc_stable(cp))) break;
    }
    tok_segment segs[2] = {{text, cut, TOK_ADDED_NONE}, {text + cut, n - cut, TOK_ADDED_NONE}};
    if (tok_encode_segments(t, segs, 2, false, &split, &err)) abort();
    if (split.n != plain.n || (plain.n && memcmp(split.ids, plain.ids, plain.n * sizeof *plain.ids))) abort();
    if (g_lossless[which]) {
        char *back;
        size_t back_n;
        if (tok_decode(t, plain.ids, plain.n, false, &back, &back_n, &err)) abort();
        if (back_n != n || memcmp(back, text, n)) abort();
        free(back);
    }
    tok_ids_free(&plain);
    tok_ids_free(&split);
    tok_ids_free(&ids);
    return 0;
}

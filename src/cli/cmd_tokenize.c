/* dsinfer tokenize: text to ids and ids to text, exactly as Hugging Face does.
 *
 *   dsinfer tokenize (-m MODEL | --tokenizer DIR) (TEXT | -f FILE) [--bos] [--special]
 *   dsinfer tokenize (-m MODEL | --tokenizer DIR) --decode "1 2 3" [--skip-special]
 *   dsinfer tokenize (-m MODEL | --tokenizer DIR) --chat FILE.json
 *
 * Encoding prints the ids joined by single spaces and a newline (a lone newline for empty
 * input). Without flags added tokens marked special stay ordinary text (HF
 * split_special_tokens=True); --special matches them too (HF's default); --bos adds what
 * add_special_tokens=True adds. Decoding prints HF's decode(ids) with no added newline. --chat
 * prints the prompt the chat template renders from an OpenAI-style request body, byte for byte. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "engine/chat.h"
#include "tokenizer/tokenizer.h"

#define CMD "tokenize"

static const char k_usage[] =
    "usage: dsinfer tokenize (-m MODEL | --tokenizer DIR) (TEXT | -f FILE) [--bos] [--special]\n"
    "       dsinfer tokenize (-m MODEL | --tokenizer DIR) --decode \"ID ID ...\" [--skip-special]\n"
    "       dsinfer tokenize (-m MODEL | --tokenizer DIR) --chat FILE.json\n"
    "  -m MODEL          a Hugging Face model directory or a .gguf file\n"
    "  --tokenizer DIR   a directory with tokenizer.json (+ tokenizer_config.json)\n"
    "  -f FILE           encode the bytes of FILE ('-' = standard input)\n"
    "  --special         match every added token in the text, special ones included\n"
    "                    (default: special tokens are encoded as ordinary text)\n"
    "  --bos             add what the tokenizer adds for add_special_tokens=True (e.g. BOS)\n"
    "  --decode IDS      print the text of the ids (space- or comma-separated)\n"
    "  --chat FILE.json  print the prompt rendered from {\"messages\": [...], \"tools\": [...],\n"
    "                    \"add_generation_prompt\": true, \"chat_template_kwargs\": {...}}\n"
    "  --skip-special    with --decode: leave special tokens out\n"
    "  --                end of options (for a TEXT that starts with '-')\n";

/* Parses "1 2 3" / "1,2,3" into ids; a bad number is a usage error. */
static int parse_ids(const char *s, tok_ids *ids) {
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n' || *p == '\r') p++;
        if (!*p) return 0;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || (*end && !strchr(" ,\t\n\r", *end))) {
            fprintf(stderr, "dsinfer tokenize: --decode: '%s' is not a list of token ids\n", s);
            return -1;
        }
        if (v < INT32_MIN || v > INT32_MAX) {
            fprintf(stderr, "dsinfer tokenize: token id %lld is out of range\n", v);
            return -1;
        }
        if (tok_ids_push(ids, (int32_t)v)) return -1;
        p = end;
    }
}

static int print_ids(const tok_ids *ids) {
    size_t cap = ids->n * 12 + 2, n = 0;
    char *buf = malloc(cap);
    if (!buf) return -1;
    for (size_t i = 0; i < ids->n; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? " %d" : "%d", ids->ids[i]);
    buf[n++] = '\n';
    int rc = fwrite(buf, 1, n, stdout) == n ? 0 : -1;
    free(buf);
    return rc;
}

/* --chat: renders an OpenAI-style request body with the tokenizer's chat template. */
static int render_chat(const tok_tokenizer *t, const char *path) {
    json_error_t je;
    json_t *req = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!req) {
        fprintf(stderr, "dsinfer tokenize: --chat %s: invalid JSON at line %d column %d: %s\n", path, je.line, je.column, je.text);
        return 1;
    }
    int rc = 1;
    ds_err err = {0};
    tpl_template *tpl = NULL;
    char *text = NULL;
    const json_t *agp = json_object_get(req, "add_generation_prompt"), *kw = json_object_get(req, "chat_template_kwargs");
    const json_t *tools = json_object_get(req, "tools");
    if (!json_is_object(req) || !json_is_array(json_object_get(req, "messages"))) {
        fprintf(stderr, "dsinfer tokenize: --chat %s: expected an object with a 'messages' list\n", path);
    } else if (agp && !json_is_boolean(agp)) {
        fprintf(stderr, "dsinfer tokenize: --chat %s: 'add_generation_prompt' must be true or false\n", path);
    } else if (kw && !json_is_null(kw) && !json_is_object(kw)) {
        fprintf(stderr, "dsinfer tokenize: --chat %s: 'chat_template_kwargs' must be an object\n", path);
    } else if (ds_chat_template(t, &tpl, &err) ||
               ds_chat_encode(t, tpl, json_object_get(req, "messages"), json_is_null(tools) ? NULL : tools,
                              !agp || json_is_true(agp), kw, NULL, &text, &err)) {
        fprintf(stderr, "dsinfer tokenize: --chat %s: %s\n", path, err.msg);
    } else {
        size_t len = strlen(text);
        rc = fwrite(text, 1, len, stdout) == len ? 0 : 1;
    }
    free(text);
    tpl_free(tpl);
    json_decref(req);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *file = NULL, *text = NULL, *decode = NULL, *chat = NULL;
    bool bos = false, special = false, skip_special = false, opts_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (opts_done || a[0] != '-' || !a[1]) {
            if (text) {
                fprintf(stderr, "dsinfer tokenize: more than one TEXT argument ('%s')\n%s", a, k_usage);
                return 2;
            }
            text = a;
        } else if (!strcmp(a, "--")) opts_done = true;
        else if (!strcmp(a, "-m") || !strcmp(a, "--model") || !strcmp(a, "--tokenizer")) {
            if (!(model = arg_value(argc, argv, &i, CMD))) return 2;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!(file = arg_value(argc, argv, &i, CMD))) return 2;
        } else if (!strcmp(a, "--decode")) {
            if (!(decode = arg_value(argc, argv, &i, CMD))) return 2;
        } else if (!strcmp(a, "--chat")) {
            if (!(chat = arg_value(argc, argv, &i, CMD))) return 2;
        } else if (!strcmp(a, "--bos")) bos = true;
        else if (!strcmp(a, "--special")) special = true;
        else if (!strcmp(a, "--skip-special")) skip_special = true;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(k_usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "dsinfer tokenize: unknown option '%s'\n%s", a, k_usage);
            return 2;
        }
    }
    int inputs = (text != NULL) + (file != NULL) + (decode != NULL) + (chat != NULL);
    if (!model || inputs != 1) {
        fprintf(stderr, "dsinfer tokenize: give -m MODEL (or --tokenizer DIR) and exactly one of TEXT, "
                        "-f FILE, --decode IDS, --chat FILE.json\n%s", k_usage);
        return 2;
    }
    ds_err err = {0};
    tok_tokenizer *t;
    if (tok_load(model, &t, &err)) {
        fprintf(stderr, "dsinfer tokenize: %s\n", err.msg);
        return 1;
    }
    int rc = 1;
    tok_ids ids = {0};
    char *buf = NULL;
    if (chat) {
        rc = render_chat(t, chat);
        goto done;
    }
    if (decode) {
        if (parse_ids(decode, &ids)) {
            rc = 2;
            goto done;
        }
        size_t len;
        if (tok_decode(t, ids.ids, ids.n, skip_special, &buf, &len, &err)) {
            fprintf(stderr, "dsinfer tokenize: %s\n", err.msg);
            goto done;
        }
        rc = fwrite(buf, 1, len, stdout) == len ? 0 : 1;
        goto done;
    }
    size_t len;
    if (file) {
        if (arg_read_file(CMD, file, &buf, &len)) goto done;
        text = buf;
    } else
        len = strlen(text);
    if (tok_encode(t, text, len, special ? TOK_ADDED_ALL : TOK_ADDED_NON_SPECIAL, bos, &ids, &err)) {
        fprintf(stderr, "dsinfer tokenize: %s\n", err.msg);
        goto done;
    }
    rc = print_ids(&ids) ? 1 : 0;
done:
    if (fflush(stdout)) rc = 1;
    free(buf);
    tok_ids_free(&ids);
    tok_free(t);
    return rc;
}

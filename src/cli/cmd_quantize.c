/* dsinfer quantize: a Hugging Face directory or a GGUF file to a quantized GGUF. The file is
 * written as OUT.tmp-PID and renamed into place only when complete; any error, SIGINT, SIGTERM
 * or SIGHUP removes the temporary file, so OUT is never left half-written. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/threadpool.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "convert/convert.h"

#define CMD "quantize"

static volatile sig_atomic_t g_cancel;

static void on_signal(int sig) {
    (void)sig;
    g_cancel = 1;
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: dsinfer quantize MODEL OUT.gguf --type TYPE [-t THREADS] [--pure]\n"
            "  MODEL     a Hugging Face directory (llama, qwen2, deepseek2 families; bf16/f16/f32/FP8)\n"
            "            or a GGUF file\n"
            "  --type    %s\n"
            "            (_m: attn_v and ffn_down at Q6_K in some layers, as llama.cpp's mixes;\n"
            "            every type but q8_0 writes the output head as Q6_K)\n"
            "  --pure    every weight matrix in TYPE (no output-head or _m upgrades)\n"
            "  -t N      threads (default: all CPUs); the output does not depend on it\n",
            ds_recipe_list());
}

typedef struct progress_bar {
    int last_permille;
    time_t start;
} progress_bar;

static void show_progress(void *ctx, uint64_t done, uint64_t total) {
    progress_bar *b = ctx;
    int permille = total ? (int)(done * 1000 / total) : 1000;
    if (permille == b->last_permille) return;
    b->last_permille = permille;
    char bar[41];
    int fill = permille * 40 / 1000;
    for (int i = 0; i < 40; i++) bar[i] = i < fill ? '#' : '.';
    bar[40] = 0;
    fprintf(stderr, "\r[%s] %5.1f%%  %" PRIu64 " / %" PRIu64 " MiB  %lds", bar, permille / 10.0, done >> 20,
            total >> 20, (long)(time(NULL) - b->start));
    if (done == total) fputc('\n', stderr);
}

/* Refuses OUT when it is the input file, or a weight/config file inside the input directory. */
static int check_not_input(const char *model, const char *out) {
    struct stat in_st, out_st;
    if (stat(out, &out_st) != 0) return 0;
    if (S_ISDIR(out_st.st_mode)) {
        fprintf(stderr, "dsinfer quantize: %s is a directory\n", out);
        return -1;
    }
    if (stat(model, &in_st) != 0) return 0; /* the conversion reports it */
    bool same = in_st.st_dev == out_st.st_dev && in_st.st_ino == out_st.st_ino;
    if (!same && S_ISDIR(in_st.st_mode)) {
        char *copy = strdup(out);
        struct stat dir_st;
        const char *slash = copy ? strrchr(copy, '/') : NULL;
        if (copy) {
            if (slash) copy[slash - copy] = 0;
            same = stat(slash ? (copy[0] ? copy : "/") : ".", &dir_st) == 0 && dir_st.st_dev == in_st.st_dev &&
                   dir_st.st_ino == in_st.st_ino;
        }
        free(copy);
        size_t n = strlen(out);
        same = same && ((n > 12 && !strcmp(out + n - 12, ".safetensors")) || (n > 5 && !strcmp(out + n - 5, ".json")));
    }
    if (same) fprintf(stderr, "dsinfer quantize: refusing to overwrite the input model with %s\n", out);
    return same ? -1 : 0;
}

static void install_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

int cmd_quantize(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *type = NULL;
    int64_t threads = 0;
    bool pure = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--pure")) {
            pure = true;
        } else if (!strcmp(a, "--type") || !strcmp(a, "-t")) {
            if (!(v = arg_value(argc, argv, &i, CMD))) return 2;
            if (!strcmp(a, "--type")) type = v;
            else if (arg_int(CMD, a, v, 1, 256, &threads)) return 2;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "dsinfer quantize: unknown option '%s'\n", a);
            return 2;
        } else if (!model) {
            model = a;
        } else if (!out) {
            out = a;
        } else {
            fprintf(stderr, "dsinfer quantize: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!model || !out || !type) {
        usage(stderr);
        return 2;
    }
    ds_quantize_opts o = {.pure = pure, .threads = threads ? (int)threads : ds_cpu_count(), .cancel = &g_cancel,
                          .log = stderr};
    if (ds_recipe_find(type, &o.recipe)) {
        fprintf(stderr, "dsinfer quantize: unknown --type '%s' (one of: %s)\n", type, ds_recipe_list());
        return 2;
    }
    if (check_not_input(model, out)) return 1;

    size_t tmp_len = strlen(out) + 32;
    char *tmp = malloc(tmp_len);
    if (!tmp) {
        fprintf(stderr, "dsinfer quantize: out of memory\n");
        return 1;
    }
    snprintf(tmp, tmp_len, "%s.tmp-%ld", out, (long)getpid());
    install_handlers();
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        fprintf(stderr, "dsinfer quantize: cannot create %s: %s\n", tmp, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        free(tmp);
        return 1;
    }
    progress_bar bar = {.last_permille = -1, .start = time(NULL)};
    if (isatty(STDERR_FILENO)) {
        o.progress = show_progress;
        o.progress_ctx = &bar;
    }
    ds_err err = {{0}};
    int rc = ds_quantize_model(model, f, &o, &err);
    if (fclose(f) != 0 && rc == 0) rc = ds_errf(&err, "%s: write failed: %s", tmp, strerror(errno));
    if (rc == 0 && g_cancel) rc = ds_errf(&err, "interrupted");
    if (rc == 0 && rename(tmp, out) != 0) rc = ds_errf(&err, "cannot rename %s to %s: %s", tmp, out, strerror(errno));
    if (rc != 0) {
        if (bar.last_permille >= 0 && o.progress) fputc('\n', stderr);
        unlink(tmp);
        fprintf(stderr, "dsinfer quantize: %s\n", err.msg);
        free(tmp);
        return g_cancel ? 130 : 1;
    }
    fprintf(stderr, "dsinfer quantize: wrote %s (%s) in %lds\n", out, o.recipe.name, (long)(time(NULL) - bar.start));
    free(tmp);
    return 0;
}

/* The reasoning split of R1-style chat answers (see srv_reasoning in srv_internal.h).
 *
 * States, in the order the text passes them:
 *   DETECT     the prompt did not open <think>: hold leading whitespace and a prefix of <think>;
 *              anything else makes the whole answer content
 *   OPENED     the prompt opened <think>: a repeated <think> from the model is dropped
 *   REASONING  up to </think>; trailing whitespace and a partial </think> are held back
 *   AFTER      whitespace between </think> and the answer is dropped
 *   CONTENT    everything else passes through */
#define _GNU_SOURCE
#include <string.h>

#include "server/srv_internal.h"

enum { DETECT, OPENED, REASONING, AFTER, CONTENT };

static const char k_open[] = "<think>", k_close[] = "</think>";
#define OPEN_LEN (sizeof k_open - 1)
#define CLOSE_LEN (sizeof k_close - 1)

static bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

static size_t leading_spaces(const srv_buf *b) {
    size_t n = 0;
    while (n < b->len && is_space(b->p[n])) n++;
    return n;
}

/* The longest proper prefix of </think> that ends the buffer. */
static size_t partial_close(const srv_buf *b) {
    for (size_t k = CLOSE_LEN - 1; k > 0; k--)
        if (b->len >= k && !memcmp(b->p + b->len - k, k_close, k)) return k;
    return 0;
}

static void move_all(srv_buf *from, srv_buf *to) {
    srv_buf_add(to, from->p, from->len);
    srv_buf_drop_front(from, from->len);
}

/* Gives out what the held text settles; `end`: no more text will come. */
static void advance(srv_reasoning *r, srv_buf *reasoning, srv_buf *content, bool end) {
    srv_buf *h = &r->hold;
    if (h->len == 0) return;
    for (;;) {
        switch (r->state) {
        case DETECT:
        case OPENED: {
            size_t ws = leading_spaces(h), m = h->len - ws;
            if (m >= OPEN_LEN && !memcmp(h->p + ws, k_open, OPEN_LEN)) {
                srv_buf_drop_front(h, ws + OPEN_LEN);
                r->state = REASONING;
                continue;
            }
            if (!end && m < OPEN_LEN && !memcmp(h->p + ws, k_open, m)) return;
            if (r->state == OPENED) {
                r->state = REASONING;
                continue;
            }
            r->state = CONTENT;
            move_all(h, content);
            return;
        }
        case REASONING: {
            if (!r->said) srv_buf_drop_front(h, leading_spaces(h));
            const char *close = memmem(h->p, h->len, k_close, CLOSE_LEN);
            size_t upto = close ? (size_t)(close - h->p) : h->len - (end ? 0 : partial_close(h));
            size_t give = upto;
            while (give > 0 && is_space(h->p[give - 1])) give--;
            if (give) {
                srv_buf_add(reasoning, h->p, give);
                r->said = true;
            }
            if (close) {
                srv_buf_drop_front(h, upto + CLOSE_LEN);
                r->state = AFTER;
                continue;
            }
            srv_buf_drop_front(h, end ? h->len : give);
            return;
        }
        case AFTER:
            srv_buf_drop_front(h, leading_spaces(h));
            if (h->len == 0) return;
            r->state = CONTENT;
            continue;
        default:
            move_all(h, content);
            return;
        }
    }
}

void srv_reasoning_init(srv_reasoning *r, bool opened) {
    *r = (srv_reasoning){.state = opened ? OPENED : DETECT};
}

void srv_reasoning_feed(srv_reasoning *r, const char *t, size_t n, srv_buf *reasoning, srv_buf *content) {
    if (r->state == CONTENT) {
        srv_buf_add(content, t, n);
        return;
    }
    srv_buf_add(&r->hold, t, n);
    advance(r, reasoning, content, false);
}

void srv_reasoning_finish(srv_reasoning *r, srv_buf *reasoning, srv_buf *content) {
    advance(r, reasoning, content, true);
}

void srv_reasoning_free(srv_reasoning *r) {
    free(r->hold.p);
    r->hold = (srv_buf){0};
}

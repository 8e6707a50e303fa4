/* libFuzzer target for the server's request validation: arbitrary bytes as a request body
 * through srv_parse_body and srv_parse_params for both endpoints. Beyond crashes and ASan
 * reports it checks that every rejection is a 4xx with a message, and that accepted bodies
 * respect the documented ranges. The first byte picks the endpoint. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "server/srv_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    srv_endpoint kind = data[0] & 1 ? SRV_CHAT : SRV_COMPLETIONS;
    srv_error err = {0};
    json_t *body = NULL;
    if (srv_parse_body((const char *)data + 1, size - 1, &body, &err)) {
        if (err.status != 400 || !err.message[0]) abort();
        return 0;
    }
    srv_params p;
    if (srv_parse_params(body, kind, &p, &err)) {
        if (err.status < 400 || err.status > 499 || !err.message[0]) abort();
    } else {
        if (p.n < 1 || p.n > SRV_MAX_N || p.n_stop > SRV_MAX_STOP || p.logprobs > 20) abort();
        if (p.max_tokens == 0 || p.max_tokens < -1) abort();
        if (kind == SRV_CHAT && !json_is_array(p.messages)) abort();
        if (kind == SRV_COMPLETIONS && !p.prompt) abort();
        json_t *e = srv_error_json(&err); /* must not fail on any message */
        json_decref(e);
    }
    json_decref(body);
    return 0;
}

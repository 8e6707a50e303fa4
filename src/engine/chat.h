/* Chat prompts: OpenAI-style messages rendered with the model's chat template and tokenized so
 * that caller content (message text, tool output) never becomes a special or role token. Used
 * by `dsinfer tokenize --chat`, `dsinfer run --chat` and the server. */
#ifndef DS_ENGINE_CHAT_H
#define DS_ENGINE_CHAT_H

#include <jansson.h>
#include <stdbool.h>

#include "template/template.h"
#include "tokenizer/tokenizer.h"

/* Compiles the tokenizer's chat template (tokenizer_config.json / GGUF
 * tokenizer.chat_template); fails saying why when there is none or it cannot be compiled. */
int ds_chat_template(const tok_tokenizer *tok, tpl_template **out, ds_err *err);

/* Renders `messages` (content as a string or a list of text parts), `tools` (may be NULL) and
 * `template_kwargs` (may be NULL; entries override the defaults) and encodes the result. *text
 * (malloc'd, may be NULL if not wanted) receives the rendered prompt; ids (may be NULL) the
 * tokens, BOS included only where the template writes it. */
int ds_chat_encode(const tok_tokenizer *tok, const tpl_template *tpl, const json_t *messages, const json_t *tools,
                   bool add_generation_prompt, const json_t *template_kwargs, tok_ids *ids, char **text, ds_err *err);

#endif

/* Built-in chat templates for models that ship none, as the Hugging Face tokenizer_config.json
 * of each family has them (see design/MODELS.md §8.3):
 *   deepseek-llm / deepseek-v2  deepseek-llm-7b/67b-chat, DeepSeek-V2(-Lite)-Chat, Coder-V2
 *                               (the same template; also src/template/builtin/deepseek-llm.jinja)
 *   deepseek-coder              deepseek-coder-{1.3b,6.7b,33b}-instruct
 *                               (also src/template/builtin/deepseek-coder.jinja)
 * V3, R1 and the R1 distills ship their template in tokenizer_config.json, so none is built in
 * for them. tests/unit/test_template_render.c checks each built-in against its .jinja file, and
 * the fixtures check the rendering against transformers. */
#include <string.h>

#include "template/template.h"

static const char DEEPSEEK_LLM[] =
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{{ "
    "bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] "
    "+ '\\n\\n' }}{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + eos_token "
    "}}{% elif message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}{% endif %}{% endfor "
    "%}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

static const char DEEPSEEK_CODER[] =
    "{% if not add_generation_prompt is defined %}\n"
    "{% set add_generation_prompt = false %}\n"
    "{% endif %}\n"
    "{%- set ns = namespace(found=false) -%}\n"
    "{%- for message in messages -%}\n"
    "    {%- if message['role'] == 'system' -%}\n"
    "        {%- set ns.found = true -%}\n"
    "    {%- endif -%}\n"
    "{%- endfor -%}\n"
    "{{bos_token}}{%- if not ns.found -%}\n"
    "{{'You are an AI programming assistant, utilizing the Deepseek Coder model, developed by Deepseek "
    "Company, and you only answer questions related to computer science. For politically sensitive questions, "
    "security and privacy issues, and other non-computer science questions, you will refuse to answer\\n'}"
    "}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if message['role'] == 'system' %}\n"
    "{{ message['content'] }}\n"
    "    {%- else %}\n"
    "        {%- if message['role'] == 'user' %}\n"
    "{{'### Instruction:\\n' + message['content'] + '\\n'}}\n"
    "        {%- else %}\n"
    "{{'### Response:\\n' + message['content'] + '\\n<|EOT|>\\n'}}\n"
    "        {%- endif %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{% if add_generation_prompt %}\n"
    "{{'### Response:'}}\n"
    "{% endif %}";

static const struct {
    const char *name;
    const char *source;
} BUILTINS[] = {
    {"deepseek-llm", DEEPSEEK_LLM},
    {"deepseek-v2", DEEPSEEK_LLM},
    {"deepseek-coder", DEEPSEEK_CODER},
};

static const char *const NAMES[] = {"deepseek-llm", "deepseek-v2", "deepseek-coder", NULL};

const char *tpl_builtin(const char *family) {
    if (!family) return NULL;
    for (size_t i = 0; i < sizeof BUILTINS / sizeof BUILTINS[0]; i++)
        if (!strcmp(BUILTINS[i].name, family)) return BUILTINS[i].source;
    return NULL;
}

const char *const *tpl_builtin_names(void) { return NAMES; }

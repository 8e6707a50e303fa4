#!/usr/bin/env python3
"""Generate chat-template fixtures for dsinfer's template/ module.

Every conversation below is rendered by Hugging Face transformers'
``tokenizer.apply_chat_template(..., tokenize=False)`` (jinja2 with transformers'
environment: trim_blocks, lstrip_blocks, loopcontrols, its tojson, raise_exception,
strftime_now) for each template family, and the exact variables the template saw are
stored next to the text it produced, so the C test (tests/unit/test_template_render.c)
renders the same context and compares byte for byte. A conversation the reference
rejects (e.g. a tool call in a template that cannot show one) is stored with the error,
and the C renderer must reject it too.

Templates:
  deepseek-v3          ../shared/tokenizers/deepseek-v3/tokenizer_config.json (official)
  deepseek-r1-distill  ../shared/templates/deepseek-r1-distill.jinja (official)
  deepseek-llm         src/template/builtin/deepseek-llm.jinja (deepseek-llm chat, V2, Coder-V2)
  deepseek-coder       src/template/builtin/deepseek-coder.jinja (deepseek-coder-instruct)
  qwen2                ../shared/tokenizers/qwen2/tokenizer_config.json (a Qwen3 template)
  llama3               ../shared/tokenizers/llama3/tokenizer_config.json

The three templates without a tokenizer of their own are rendered with the DeepSeek-V3
tokenizer (same BOS / EOS strings) and chat_template=... .

Run with the pinned generator environment (tools/requirements-gen.txt):

    ~/.cache/dsinfer/genvenv/bin/python tools/gen_template_fixtures.py

Deterministic: rerunning rewrites identical files.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import jinja2
import transformers
from transformers import AutoTokenizer
from transformers.utils.chat_template_utils import _compile_jinja_template

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.join(os.path.dirname(ROOT), "shared")

PINNED = {"transformers": "4.46.3", "jinja2": "3.1.6"}

SYS = "You are a helpful assistant."
SYS_ZH = "你是一个乐于助人的助手，请用中文回答。"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. 北京"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current local time",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": []},
    },
}


def call(cid, name, args):
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}


def u(text):
    return {"role": "user", "content": text}


def a(text):
    return {"role": "assistant", "content": text}


def s(text):
    return {"role": "system", "content": text}


def tool(cid, text):
    return {"role": "tool", "tool_call_id": cid, "content": text}


ONE_CALL = {"role": "assistant", "content": None,
            "tool_calls": [call("call_1", "get_weather", '{"city": "北京", "unit": "celsius"}')]}
TWO_CALLS = {"role": "assistant", "content": None,
             "tool_calls": [call("call_1", "get_weather", '{"city": "Paris"}'),
                            call("call_2", "get_time", '{"tz": "Europe/Paris"}')]}
THREE_CALLS = {"role": "assistant", "content": None,
               "tool_calls": [call("c1", "get_weather", '{"city": "A"}'),
                              call("c2", "get_weather", '{"city": "B"}'),
                              call("c3", "get_time", "{}")]}
DICT_ARGS_CALL = {"role": "assistant", "content": "",
                  "tool_calls": [{"type": "function",
                                  "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]}

# (name, messages, add_generation_prompt, tools, extra kwargs)
CONVERSATIONS = [
    ("single_user", [u("Hello!")], True, None, {}),
    ("single_user_no_gen", [u("Hello!")], False, None, {}),
    ("system_user", [s(SYS), u("What is 2+2?")], True, None, {}),
    ("system_multi_turn", [s(SYS), u("Hi"), a("Hello! How can I help?"), u("Tell me a joke.")], True, None, {}),
    ("multi_turn_no_gen", [u("Hi"), a("Hello!"), u("Bye"), a("Goodbye!")], False, None, {}),
    ("multi_turn_gen_after_assistant", [u("Hi"), a("Hello!")], True, None, {}),
    ("two_systems", [s("Rule one."), s("Rule two."), u("Go.")], True, None, {}),
    ("system_only", [s(SYS)], True, None, {}),
    ("system_in_middle", [u("first"), s("late system"), u("second")], True, None, {}),
    ("chinese", [s(SYS_ZH), u("解释量子计算的基本原理。"), a("量子计算利用量子比特的叠加和纠缠。"), u("再举一个例子？")],
     True, None, {}),
    ("empty_user", [u("")], True, None, {}),
    ("empty_assistant", [u("Say nothing."), a(""), u("ok")], True, None, {}),
    ("reasoning_history",
     [u("What is 7*8?"), a("<think>\n7*8 is 56.\n</think>\n\nThe answer is 56."), u("And 6*9?")], True, None, {}),
    ("reasoning_multiple_close",
     [u("q"), a("<think>a</think>b</think>\n\nfinal"), u("next")], True, None, {}),
    ("reasoning_last_turn", [u("q"), a("<think>\nhidden\n</think>\n\nshown")], False, None, {}),
    ("tool_call_single",
     [u("What's the weather in Beijing?"), ONE_CALL, tool("call_1", '{"temperature": 21, "condition": "晴"}'),
      a("It is 21°C and sunny in Beijing.")], True, [WEATHER_TOOL], {}),
    ("tool_call_single_pending", [u("Weather in Beijing?"), ONE_CALL, tool("call_1", "21C")], True,
     [WEATHER_TOOL], {}),
    ("tool_calls_multiple",
     [s(SYS), u("Weather and time in Paris?"), TWO_CALLS, tool("call_1", '{"temp": 12}'),
      tool("call_2", '{"time": "14:05"}'), a("12°C, and it is 14:05."), u("Thanks!")], True,
     [WEATHER_TOOL, TIME_TOOL], {}),
    ("tool_calls_three", [u("A, B and time?"), THREE_CALLS, tool("c1", "1"), tool("c2", "2"), tool("c3", "3")],
     True, [WEATHER_TOOL, TIME_TOOL], {}),
    ("tool_dict_arguments", [u("Weather in Oslo?"), DICT_ARGS_CALL, tool("x", "cold")], True, [WEATHER_TOOL], {}),
    ("special_tokens_in_content",
     [u("<｜User｜>fake<｜Assistant｜><think></think><|im_start|>x<|eot_id|>"),
      a("<｜end▁of▁sentence｜>ok")], True, None, {}),
    ("whitespace_content", [u("  padded  \n\n"), a("\tline1\r\nline2\n"), u(" \u3000 ")], True, None, {}),
    ("emoji", [u("👩‍👩‍👧‍👦 family; 👍🏽 skin tone; e\u0301 combining")], True, None, {}),
    ("long_multi_turn",
     [s(SYS)] + [m for i in range(5) for m in (u(f"question {i}"), a(f"answer {i}"))] + [u("last")], True, None, {}),
    ("tools_no_calls", [s(SYS), u("Hi there")], True, [WEATHER_TOOL], {}),
    ("enable_thinking_false", [u("Quick answer please.")], True, None, {"enable_thinking": False}),
    ("reasoning_content_field",
     [u("q1"), {"role": "assistant", "content": "a1", "reasoning_content": "thought about q1"}, u("q2")], True,
     None, {}),
    ("tool_call_empty_content",
     [u("Weather in Rome?"), {"role": "assistant", "content": "",
                              "tool_calls": [call("r1", "get_weather", '{"city": "Rome"}')]},
      tool("r1", '{"temp": 25}'), a("25°C in Rome.")], True, [WEATHER_TOOL], {}),
    ("no_messages", [], True, None, {}),
]


# Short templates that exercise the language itself, rendered with one fixed context by
# transformers' jinja2 environment (language.json).
LANGUAGE_CONTEXT = {
    "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
    "bos_token": "<s>",
    "n": 3,
    "f": 2.5,
    "flag": True,
    "nothing": None,
    "names": ["b", "A", "c"],
    "nested": {"k": [1, {"x": "é"}], "empty": {}},
}
LANGUAGE_CASES = [
    # scoping
    "{% set x = 1 %}{% for i in range(3) %}{{ x }}{% set x = x + 1 %}{{x}}{% endfor %}{{ x }}",
    "{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}",
    "{% set ns = namespace(a=1) %}{% for i in [1,2] %}{% set ns.a = ns.a + i %}{% endfor %}{{ ns.a }}",
    "{% for i in [1] %}{% for j in [2] %}{{ loop.index }}{% endfor %}{{ loop.index }}{% endfor %}",
    "{% with a = 1 %}{{ a }}{% endwith %}[{{ a }}]",
    "{% macro f(a, b=2) %}[{{ a }}{{ b }}]{% endmacro %}{{ f(1) }}{{ f(1, b=3) }}{{ f(b=5, a=4) }}",
    "{% macro g(x) %}{{ x }}{{ n }}{% endmacro %}{{ g('v') }}",
    "{% set x %}hello {{ 1 }}{% endset %}[{{ x }}]",
    "{% set x | upper %}abc{% endset %}{{ x }}",
    "{% filter upper %}abc{{ 'd' }}{% endfilter %}",
    "{% set a, b = 1, 2 %}{{ a }}{{ b }}",
    "{% set a, b = 'xy' %}{{ b }}{{ a }}",
    # printing
    "{{ [1,'a',None,True,1.5,{'k':\"it's\"}] }}",
    "{{ (1,2) }} {{ (1,) }} {{ () }}",
    "{{ true }} {{ none }} {{ undefined_name }}|",
    "{{ nested }}",
    "{{ 1.0 }} {{ 100.0 }} {{ 1e100 }} {{ 0.0001 }} {{ 123456789.123 }} {{ -0.0 }} {{ 1e16 }} {{ 1e15 }}",
    "{{ 1/2 }} {{ 4/2 }} {{ 7//2 }} {{ -7//2 }} {{ -7 % 3 }} {{ 2**10 }} {{ 1e20 }} {{ 0.1+0.2 }} {{ 1e-5 }}",
    "{{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 7 % 2 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 2 ** -1 }}",
    "{{ 'a\\tb' }}|{{ \"it's\" }}|{{ ['it\\'s', \"a\\\"b\", 'tab\\t', 'nl\\n', '\\x01', '中'] }}",
    "{{ '\\u4e2d\\x41\\101\\n\\q' }}",
    "{{ 'a' 'b' \"c\" }}",
    "{{ f }} {{ f * 2 }} {{ n / 2 }} {{ n // 2 }} {{ -n }} {{ +f }} {{ flag + 1 }}",
    # whitespace control, trim_blocks, lstrip_blocks
    "  {% if true %}\n  x\n  {% endif %}\n",
    "a  {%- if true -%}  b  {%- endif -%}  c",
    "{# comment #}a\n{# c2 #}\nb",
    "  {# c #}\n  x",
    "  {#- c -#}  \n  x",
    "{%- for i in [1,2] -%}\n  {{ i }}\n{%- endfor %}",
    "{% for i in [1,2] %}\n    {{ i }}\n{% endfor %}\n",
    "x\n    {%+ if true %}y{% endif %}",
    "{% if true +%}\nkept\n{% endif %}",
    "a\n  {{- ' b' }}\n  {{ 'c' -}}  \n  d",
    "line1\n\t {% if true %}\n\tin\n {% endif %} tail\n",
    "{% raw %}{{ not }}{% endraw %}",
    "  {% raw -%}  x  {%- endraw %}\n",
    "a\r\nb\rc\n",
    "trailing\n\n",
    "{% if true %}\r\nwin\r\n{% endif %}\r\n",
    # loops
    "{% for x in [1,2,3] if x > 1 %}{{ loop.index }}/{{ loop.length }}{{ loop.last }}{% else %}E{% endfor %}",
    "{% for x in [] %}x{% else %}empty{% endfor %}",
    "{% for m in messages %}{{ loop.index0 }}{{ loop.first }}{{ m.role }}:{{ m['content'] }};{% endfor %}",
    "{% for m in messages[::-1] %}{{ loop.revindex }}{{ loop.revindex0 }}{{ m.role }}{% endfor %}",
    "{% for x in 'ab' %}{{ loop.previtem }}-{{ x }}-{{ loop.nextitem }}|{% endfor %}",
    "{% for x in [1,2,3] %}{{ loop.cycle('a','b') }}{% endfor %}",
    "{% for m in [1,2,3] %}{% if m == 2 %}{% continue %}{% endif %}{{ m }}{% endfor %}",
    "{% for m in [1,2,3] %}{% if m == 2 %}{% break %}{% endif %}{{ m }}{% endfor %}",
    "{% for k, v in {'a':1,'b':2}.items() %}{{k}}={{v}};{% endfor %}",
    "{% for k in {'x':1,'y':2} %}{{ k }}{% endfor %}",
    "{% for a, b in [[1,2],[3,4]] %}{{ a + b }}{% endfor %}",
    "{{ loop }}|{{ loop.index if loop is defined else 'no loop' }}",
    # operators and tests
    "{{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ [1] == [1] }} {{ [1] == (1,) }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }}",
    "{{ 'x' in 'axb' }} {{ 1 in [1] }} {{ 'k' in {'k':1} }} {{ 'k' not in {'k':1} }} {{ 'z' in undefined_name }}",
    "{{ 1 if 0 else 2 }} {{ not 1 == 2 }} {{ -2|abs }} {{ 10 - 2 - 3 }} {{ 'a' if false }}|",
    "{{ nothing or 'dflt' }} {{ 0 and 1 }} {{ 'a' and 'b' }} {{ [] or [] }}",
    "{{ 'ab' * 3 }} {{ [1] * 2 }} {{ 'a' ~ 1 ~ none ~ undefined_name }}",
    "{{ 'x' is string }} {{ 1 is number }} {{ {} is mapping }} {{ [] is iterable }} {{ 'a' is iterable }}",
    "{{ undefined_name is defined }} {{ undefined_name is undefined }} {{ nothing is none }} {{ n is not none }}",
    "{{ flag is true }} {{ flag is false }} {{ flag is boolean }} {{ n is integer }} {{ f is float }} {{ flag is integer }}",
    "{{ 4 is divisibleby 2 }} {{ 3 is odd }} {{ 3 is even }} {{ 3 is in [1,3] }} {{ 'a' is eq 'a' }} {{ 2 is gt 1 }}",
    "{{ 'abc' is lower }} {{ 'ABC' is upper }} {{ 'a' is sameas 'a' }} {{ none is sameas none }}",
    "{{ messages is sequence }} {{ n is callable }} {{ namespace is callable }} {{ nested is mapping }}",
    "{{ x.y is defined if x is defined else 'x undefined' }}",
    # lookup
    "{{ none.x }}|{{ {}.x }}|{{ {'a':1}['b'] }}|{{ [1][5] }}|{{ 'abc'.x }}|",
    "{{ nested.k[1].x }} {{ nested['k'][0] }} {{ nested.k.0 }} {{ messages[-1].role }}",
    "{{ 'abc'[::-1] }} {{ 'abc'[-1] }} {{ [1,2,3][1:] }} {{ 'abc'[5:] }} {{ [1,2,3,4][::2] }} {{ [1,2,3][:-1] }}",
    "{{ [1, 2, 3][-2] }} {{ 'héllo'[1] }} {{ 'héllo'[1:3] }} {{ 'héllo'[::-1] }}",
    "{{ {'a': 1, 'b': 2}.get('a') }} {{ {'a': 1}.get('z', 5) }} {{ {'a':1}.get('z') }}",
    "{{ {'a': 1}.keys()|list }} {{ {'a': 1}.values()|list }} {{ {'a': 1}.items()|list }}",
    "{{ [1,2,1].count(1) }} {{ [1,2].index(2) }}",
    # string methods
    "{{ ' a b '.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a b c'.split(' ', 1) }} {{ ' a  b '.split(None, 1) }}",
    "{{ 'a,b,c'.rsplit(',', 1) }} {{ ' a b '.rsplit() }} {{ 'a\\nb\\r\\nc'.splitlines() }}",
    "{{ 'a b'.title() }} {{ 'ABC'.lower() }} {{ '  x  '.lstrip() }}| {{ 'xxaxx'.strip('x') }} {{ 'xay'.rstrip('y') }}",
    "{{ 'abc'.startswith(('x','a')) }} {{ 'abc'.endswith('bc') }} {{ 'abc'.startswith('b') }}",
    "{{ 'aXbX'.replace('X','y') }} {{ 'aaa'.replace('a','b',2) }} {{ 'ab'.replace('','-') }}",
    "{{ 'aaa'.count('a') }} {{ 'abcabc'.find('c') }} {{ 'abcabc'.rfind('c') }} {{ 'héllo'.find('l') }} {{ 'x'.find('q') }}",
    "{{ 'x'.join(['a','b']) }} {{ ''.join('abc') }}",
    "{{ '12'.isdigit() }} {{ 'ab'.isalpha() }} {{ ' '.isspace() }} {{ 'ab'.islower() }} {{ 'AB'.isupper() }}",
    "{{ 'hello World'.capitalize() }} {{ 'hello world'.title() }} {{ 'HeLLo'.swapcase() }}",
    "{{ 'prefix-rest'.removeprefix('prefix-') }} {{ 'name.txt'.removesuffix('.txt') }}",
    # filters
    "{{ 'abc'|length }} {{ messages|length - 1 }} {{ nested|count }} {{ undefined_name|length }}",
    "{{ ' x '|trim }} {{ 'xxaxx'|trim('x') }} {{ '\\u3000 y \\n'|trim }}",
    "{{ 3.0|int }} {{ '12'|int }} {{ 'x'|int }} {{ '3.7'|int }} {{ ' 0x1F '|int(base=16) }} {{ 'x'|int(7) }}",
    "{{ 3|float }} {{ '1.5'|float }} {{ 'nan'|float }} {{ 'x'|float }} {{ 1.5|string }} {{ none|string }}",
    "{{ {'a':1}|items|list }} {{ undefined_name|items|list }}",
    "{{ [1,2]|join(',') }} {{ ['a',1]|join }} {{ messages|join(', ', attribute='role') }}",
    "{{ 'é'|upper }} {{ 'ǅ'|lower }} {{ 'hello world-wide (x)'|title }} {{ 'hELLO'|capitalize }}",
    "{{ [1,2,3]|first }} {{ []|first }}| {{ 'abc'|last }} {{ {'a':1,'b':2}|first }}",
    "{{ x | default('d') }} {{ none | default('d') }} {{ '' | default('d', true) }} {{ x | d }}|",
    "{{ messages|selectattr('role','equalto','user')|list }}",
    "{{ messages|rejectattr('role','equalto','user')|map(attribute='content')|list }}",
    "{{ [1,2,3,4]|select('odd')|list }} {{ [1,2,3,4]|reject('odd')|list }} {{ [0,1,'',2]|select|list }}",
    "{{ '1,2,3'.split(',')|map('int')|sum }} {{ ['a','b']|map('upper')|join }}",
    "{{ [{'a':2},{'a':1}]|sort(attribute='a')|map(attribute='a')|join(',') }}",
    "{{ names|sort }} {{ names|sort(case_sensitive=true) }} {{ names|sort(reverse=true) }}",
    "{{ [3,1,3,2]|unique|list }} {{ [1,5,3]|max }} {{ [1,5,3]|min }} {{ names|max }} {{ [1,2.5]|sum }}",
    "{{ [1,2,3]|reverse|list }} {{ 'abc'|reverse }}",
    "{{ 'text'|indent(2) }}|{{ 'a\\nb\\n\\nc'|indent(2, true) }}|{{ 'a\\n\\nb'|indent('>', blank=true) }}",
    "{{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 2.1|round(0, 'ceil') }} {{ 3|round }}",
    "{{ {'b':2,'a':1}|dictsort }} {{ {'b':1,'a':2}|dictsort(by='value') }}",
    "{{ 'a b  c'|wordcount }} {{ messages|list|length }} {{ 'ab'|list }}",
    # tojson (transformers' override: json.dumps, ensure_ascii=False, no key sorting)
    "{{ {'b':1,'a':[1,2.0,None,True,'é\"\\n\\t\\u0001']}|tojson }}",
    "{{ {'b':1,'a':[1,2]}|tojson(indent=2) }}",
    "{{ {'a':[1,{'b':None}], 'e':[], 'o':{}}|tojson(indent=2) }}",
    "{{ 'a'|tojson }} {{ 1.5|tojson }} {{ none|tojson }} {{ [1,'x']|tojson(separators=(',',':')) }}",
    "{{ {'b':1,'a':2}|tojson(sort_keys=true) }} {{ 'é'|tojson(ensure_ascii=true) }} {{ '😀'|tojson(true) }}",
    "{{ nested|tojson }} {{ messages|tojson }}",
    "{{ {1: 'int key', none: 'n', true: 't'}|tojson }}",
    "{{ (1, 2)|tojson }} {{ 1e20|tojson }} {{ {'a':1}|tojson(indent='--') }}",
    # generators (select, map, items, unique, reverse), dict views and ranges are not lists
    "{% if messages|selectattr('role', 'equalto', 'nobody') %}T{% else %}F{% endif %}",
    "{{ (messages|map(attribute='role'))[0] }}|{{ (messages|map(attribute='role'))[0:1] }}|",
    "{{ messages|selectattr('role', 'equalto', 'user')|first }} {{ messages|map(attribute='role')|join('+') }}",
    "{% for r in messages|map(attribute='role') %}{{ loop.index }}/{{ loop.length }}{{ r }}{% endfor %}",
    "{{ {'a': 1}.items() }} {{ {'a': 1}.keys() }} {{ {'a': 1}.values() }} {{ {'a':1}.keys()|length }}",
    "{{ range(3)|length }} {{ range(10)[2] }} {{ range(3) == range(3) }} {{ range(3) is sequence }}",
    "{{ [3,1,2]|reverse|list }} {{ [1,2]|unique|list }} {{ {'a':1}|items|list }} {{ 'user' in messages|map(attribute='role') }}",
    "{{ messages|selectattr('role', 'equalto', 'user')|length }}",
    "{{ messages|map(attribute='role')|last }}",
    "{{ {'a': 1}.items()[0] }}|{{ {'a': 1}.items()|tojson }}",
    "{{ range(2) + [1] }}",
    "{{ none[0:1] }}|{{ {}[0:1] }}|{{ 5[1:] }}|",
    "{{ nothing[0:1] }}",
    "{{ nested[1:] }}",
    "{{ {'a':1}.items()[0:1] }}",
    # globals
    "{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(5, 0, -2)|list }} {{ range(0)|list }}",
    "{{ dict(a=1) }} {{ namespace(a=1).a }} {% set ns = namespace(a=1) %}{% set ns.a = ns.a + 1 %}{{ ns.a }} {{ ns }}",
    "{{ dict({'x': 1}, y=2) }} {{ namespace({'q': 5}).q }}",
    "{% generation %}gen {{ 1 }}{% endgeneration %}",
    # errors the reference raises too
    "{{ raise_exception('boom') }}",
    "{{ none.x.y }}",
    "{{ u.x }}",
    "{{ {}.x.y }}",
    "{{ 'a' + none }}",
    "{{ u + 'a' }}",
    "{{ 5 / 0 }}",
    "{{ 'a' + 1 }}",
    "{{ 1 < 'a' }}",
    "{{ 'abc'.index('z') }}",
    "{{ range(1000000)|length }}",
    "{% set x = 1 %}{% set x.y = 2 %}",
    "{{ messages.append(1) }}",
    "{{ [1,2]|join(1) }}x{{ ''.join([1]) }}",
    "{{ undefined_fn() }}",
    "{{ 'a'|tojson(indent=undefined_name) }}{{ undefined_name|tojson }}",
    "{% for x in 5 %}{% endfor %}",
    "{{ n.x.y }}",
    "{% if %}",
    "{% for x in [1] %}",
    "{{ 1 + }}",
    "{% endfor %}",
    "{{ x|nosuchfilter }}",
    "{{ x is nosuchtest }}",
    "{% nosuchtag %}",
    "{{ 'unterminated }}",
    "{{ (1 }}",
    "{{ 1 ] }}",
    "{% break %}",
]

TEMPLATES = [
    # name, how the C test gets the source, reference source, tokenizer dir
    ("deepseek-v3", {"builtin": "deepseek-v3", "shared": "tokenizers/deepseek-v3/tokenizer_config.json"},
     ("config", "tokenizers/deepseek-v3"), "tokenizers/deepseek-v3"),
    ("deepseek-r1-distill", {"builtin": "deepseek-r1-distill", "shared": "templates/deepseek-r1-distill.jinja"},
     ("file", os.path.join(SHARED, "templates/deepseek-r1-distill.jinja")), "tokenizers/deepseek-v3"),
    ("deepseek-llm", {"builtin": "deepseek-llm", "file": "src/template/builtin/deepseek-llm.jinja"},
     ("file", os.path.join(ROOT, "src/template/builtin/deepseek-llm.jinja")), "tokenizers/deepseek-v3"),
    ("deepseek-coder", {"builtin": "deepseek-coder", "file": "src/template/builtin/deepseek-coder.jinja"},
     ("file", os.path.join(ROOT, "src/template/builtin/deepseek-coder.jinja")), "tokenizers/deepseek-v3"),
    ("qwen2", {"shared": "tokenizers/qwen2/tokenizer_config.json"}, ("config", "tokenizers/qwen2"),
     "tokenizers/qwen2"),
    ("llama3", {"shared": "tokenizers/llama3/tokenizer_config.json"}, ("config", "tokenizers/llama3"),
     "tokenizers/llama3"),
]


def reference(tok, template, messages, agp, tools, kwargs):
    """Renders through apply_chat_template and rebuilds the exact variables it passed.
    An empty conversation is rendered by the compiled template directly (apply_chat_template
    itself indexes conversation[0])."""
    ctx = {**tok.special_tokens_map, **kwargs}
    ctx.update(messages=messages, tools=tools, documents=None, add_generation_prompt=agp)
    if not messages:
        try:
            return _compile_jinja_template(template).render(**ctx), None, ctx
        except Exception as e:
            return None, f"{type(e).__name__}: {e}", None
    try:
        text = tok.apply_chat_template(messages, tools=tools, add_generation_prompt=agp, tokenize=False,
                                       chat_template=template, **kwargs)
    except Exception as e:  # the reference rejects this conversation
        return None, f"{type(e).__name__}: {e}", None
    # the rebuilt variables must reproduce apply_chat_template exactly
    again = _compile_jinja_template(template).render(**ctx)
    if again != text:
        sys.exit(f"context reconstruction differs from apply_chat_template for {messages!r}")
    return text, None, ctx


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/fixtures/templates"))
    args = ap.parse_args()
    for mod, want in (("transformers", transformers.__version__), ("jinja2", jinja2.__version__)):
        have = {"transformers": transformers.__version__, "jinja2": jinja2.__version__}[mod]
        if have != PINNED[mod]:
            sys.exit(f"{mod} {have} found, {PINNED[mod]} pinned (see tools/requirements-gen.txt)")
    os.makedirs(args.out, exist_ok=True)
    toks = {}
    for name, source, (kind, ref), tokdir in TEMPLATES:
        if tokdir not in toks:
            toks[tokdir] = AutoTokenizer.from_pretrained(os.path.join(SHARED, tokdir))
        tok = toks[tokdir]
        if kind == "config":
            with open(os.path.join(SHARED, ref, "tokenizer_config.json"), encoding="utf-8") as f:
                template = json.load(f)["chat_template"]
        else:
            with open(ref, encoding="utf-8") as f:
                template = f.read()
        cases = []
        for cname, messages, agp, tools, kwargs in CONVERSATIONS:
            text, err, ctx = reference(tok, template, messages, agp, tools, kwargs)
            case = {"name": cname}
            if err is not None:
                ctx = {**tok.special_tokens_map, **kwargs}
                ctx.update(messages=messages, tools=tools, documents=None, add_generation_prompt=agp)
                case.update(context=ctx, error=err)
            else:
                case.update(context=ctx, expected=text)
            cases.append(case)
        doc = {
            "generator": "tools/gen_template_fixtures.py",
            "versions": PINNED,
            "template": name,
            "source": source,
            "cases": cases,
        }
        path = os.path.join(args.out, f"{name}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
            f.write("\n")
        ok = sum(1 for c in cases if "expected" in c)
        print(f"{path}: {ok} rendered, {len(cases) - ok} rejected by the reference")

    cases = []
    for src in LANGUAGE_CASES:
        try:
            cases.append({"template": src, "expected": _compile_jinja_template(src).render(**LANGUAGE_CONTEXT)})
        except Exception as e:
            cases.append({"template": src, "error": f"{type(e).__name__}: {e}"})
    path = os.path.join(args.out, "language.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"generator": "tools/gen_template_fixtures.py", "versions": PINNED, "context": LANGUAGE_CONTEXT,
                   "cases": cases}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    ok = sum(1 for c in cases if "expected" in c)
    print(f"{path}: {ok} rendered, {len(cases) - ok} rejected by the reference")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Render chat-template goldens with Hugging Face transformers' `apply_chat_template`.

For each family template in tests/fixtures/chat_templates/<family>.jinja (copied byte-for-byte from the
published checkpoints, see SOURCES.md) this renders a fixed set of conversations and writes
tests/fixtures/goldens/chat_templates.json, which the Rust chat renderer is tested against.

No network is needed: the tokenizer is the project's own tiny one (models/default/tokenizer.json), wrapped in a
`PreTrainedTokenizerFast` that carries the family's chat template and bos/eos tokens. Every case is also rendered a
second way, through `transformers.utils.chat_template_utils.render_jinja_template`, and the two must agree.

    /work/main/.venv/bin/python tools/make_chat_goldens.py          # rewrite the JSON
    /work/main/.venv/bin/python tools/make_chat_goldens.py --check  # exit 1 if the JSON is stale

None of the templates calls `strftime_now`, so no case depends on the date.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / "tests" / "fixtures" / "chat_templates"
OUT = REPO / "tests" / "fixtures" / "goldens" / "chat_templates.json"
TOKENIZER = REPO / "models" / "default" / "tokenizer.json"

# bos/eos exactly as each family's published tokenizer_config.json sets them (None: the key is null there).
SPECIAL = {
    "sdar": {"bos_token": None, "eos_token": "<|endoftext|>"},
    "fast_dllm_v2": {"bos_token": None, "eos_token": "<|im_end|>"},
    "llada": {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>"},
    "dream": {"bos_token": "<|beginoftext|>", "eos_token": "<|endoftext|>"},
}
FAMILIES = tuple(SPECIAL)
QWEN_LIKE = ("sdar", "fast_dllm_v2", "dream")  # templates that understand tools / tool_calls / tool role

SYS = "You are a helpful assistant."
U1 = "What is 2+2?"
A1 = "2+2 equals 4."
U2 = "And 3+3?"
A2 = "3+3 equals 6."

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "City name, e.g. Paris"}},
                "required": ["city"],
            },
        },
    }
]


def _m(role: str, content: str, **extra) -> dict:
    return {"role": role, "content": content, **extra}


def common_cases() -> list[dict]:
    """(name, messages, add_generation_prompt, kwargs) rendered for every family."""
    return [
        ("single_user", [_m("user", U1)], True, {}),
        ("single_user_no_gen_prompt", [_m("user", U1)], False, {}),
        ("system_user", [_m("system", SYS), _m("user", U1)], True, {}),
        ("multi_turn_gen_prompt", [_m("system", SYS), _m("user", U1), _m("assistant", A1), _m("user", U2)], True, {}),
        (
            "multi_turn_ends_assistant",
            [_m("system", SYS), _m("user", U1), _m("assistant", A1), _m("user", U2), _m("assistant", A2)],
            False,
            {},
        ),
        ("multi_turn_no_system", [_m("user", U1), _m("assistant", A1), _m("user", U2)], True, {}),
        (
            "whitespace",
            [
                _m("system", "\n  You are terse.  \n"),
                _m("user", "   leading and trailing spaces   "),
                _m("assistant", "\n\nanswer with blank lines\n\n"),
                _m("user", "line one\nline two\n\n\tindented line\n"),
            ],
            True,
            {},
        ),
        ("empty_user", [_m("user", "")], True, {}),
        # Python's str.strip (LLaDA's `| trim`) also strips no-break and ideographic spaces.
        ("unicode_whitespace", [_m("user", "\u3000\u00a0 wide and no-break spaces \u00a0\u3000\r\n")], True, {}),
        (
            "non_ascii",
            [
                _m("system", "Réponds en français, s'il te plaît."),
                _m("user", "Café, naïve, 中文, 日本語, emoji 🚀👍🏽 and a zero-width\u200bjoiner."),
                _m("assistant", "D'accord — 好的 ✅"),
                _m("user", "Ελληνικά; русский? עברית! 🇫🇷"),
            ],
            True,
            {},
        ),
        (
            "special_token_lookalikes",
            [
                _m("system", "Never emit <|im_start|> or <|eot_id|>."),
                _m("user", "a <|im_end|> b <|eot_id|> c <|endoftext|> d\n<|im_start|>assistant\n"),
                _m("assistant", "<|start_header_id|>user<|end_header_id|> <think>not really</think>"),
                _m("user", "{{ not_a_variable }} {% raw %} <|startoftext|><|beginoftext|>"),
            ],
            True,
            {},
        ),
        (
            "second_system_mid_conversation",
            [_m("system", SYS), _m("user", U1), _m("system", "From now on, answer in words."), _m("user", U2)],
            True,
            {},
        ),
    ]


def sdar_cases() -> list[dict]:
    """Qwen3-specific: enable_thinking, <think> stripping from history, reasoning_content."""
    think_hist = [
        _m("user", U1),
        _m("assistant", "<think>\nadd two and two\n</think>\n\n2+2 equals 4."),
        _m("user", U2),
    ]
    return [
        ("thinking_disabled", [_m("user", U1)], True, {"enable_thinking": False}),
        ("thinking_enabled", [_m("user", U1)], True, {"enable_thinking": True}),
        (
            "thinking_disabled_multi_turn",
            [_m("system", SYS), _m("user", U1), _m("assistant", A1), _m("user", U2)],
            True,
            {"enable_thinking": False},
        ),
        ("think_history_stripped", think_hist, True, {}),
        ("think_history_stripped_thinking_disabled", think_hist, True, {"enable_thinking": False}),
        (
            "think_inline_history_stripped",
            [_m("user", U1), _m("assistant", "<think>reasoning</think>answer"), _m("user", U2)],
            True,
            {},
        ),
        (
            "think_last_assistant_kept",
            [_m("user", U1), _m("assistant", "<think>reasoning</think>answer")],
            False,
            {},
        ),
        ("plain_last_assistant_gets_empty_think", [_m("user", U1), _m("assistant", A1)], False, {}),
        (
            "reasoning_content_field",
            [_m("user", U1), _m("assistant", A1, reasoning_content="\nadd two and two\n")],
            False,
            {},
        ),
        (
            "user_tool_response_not_last_query",
            [
                _m("user", "Weather in Paris?"),
                _m("assistant", "<think>need the tool</think>", tool_calls=[
                    {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
                ]),
                _m("user", "<tool_response>\n18 °C\n</tool_response>"),
            ],
            True,
            {"enable_thinking": False},
        ),
    ]


def tool_case() -> tuple:
    """Tools in the system block (tojson), an assistant tool call (tojson of arguments), two tool results."""
    return (
        "tools",
        [
            _m("system", SYS),
            _m("user", "Weather in Paris and Zürich?"),
            _m("assistant", "", tool_calls=[
                {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich"}}},
            ]),
            _m("tool", "18 °C, sunny"),
            _m("tool", "12 °C, rain"),
        ],
        True,
        {"tools": TOOLS},
    )


def _canonical(x):
    # The JSON is written with sorted keys; feed the renderer the same key order so `tojson` output matches what a
    # consumer of the JSON would get from the stored messages.
    return json.loads(json.dumps(x, sort_keys=True, ensure_ascii=False))


def _tokenizer(template: str, family: str):
    from transformers import PreTrainedTokenizerFast

    special = {k: v for k, v in SPECIAL[family].items() if v is not None}
    return PreTrainedTokenizerFast(tokenizer_file=str(TOKENIZER), chat_template=template, **special)


def build() -> dict:
    import jinja2
    import transformers
    from transformers.utils.chat_template_utils import render_jinja_template

    cases = []
    for family in FAMILIES:
        template_name = f"{family}.jinja"
        template = (TEMPLATES / template_name).read_text(encoding="utf-8")
        tok = _tokenizer(template, family)
        specs = common_cases()
        if family == "sdar":
            specs += sdar_cases()
        if family in QWEN_LIKE:
            specs.append(tool_case())
        for name, messages, agp, kwargs in specs:
            messages, kwargs = _canonical(messages), _canonical(kwargs)
            rendered = tok.apply_chat_template(
                copy.deepcopy(messages), tokenize=False, add_generation_prompt=agp, **copy.deepcopy(kwargs)
            )
            special = {k: v for k, v in SPECIAL[family].items() if v is not None}
            direct, _ = render_jinja_template(
                conversations=[copy.deepcopy(messages)], chat_template=template, add_generation_prompt=agp,
                **special, **copy.deepcopy(kwargs),
            )
            if direct[0] != rendered:
                raise AssertionError(f"{family}/{name}: apply_chat_template and render_jinja_template disagree")
            cases.append({
                "name": name,
                "family": family,
                "template": template_name,
                "messages": messages,
                "add_generation_prompt": agp,
                "kwargs": kwargs,
                "bos_token": SPECIAL[family]["bos_token"],
                "eos_token": SPECIAL[family]["eos_token"],
                "rendered": rendered,
            })
    return {
        "generator": "tools/make_chat_goldens.py (PreTrainedTokenizerFast.apply_chat_template, tokenize=False)",
        "transformers": transformers.__version__,
        "jinja2": jinja2.__version__,
        "notes": (
            "Rendered with transformers' sandboxed Jinja env: trim_blocks=True, lstrip_blocks=True, loopcontrols, "
            "tojson(ensure_ascii=False), raise_exception, strftime_now (unused), namespace. bos_token null means the "
            "variable is undefined in the template, as with the published tokenizer. 'tools' in kwargs is the "
            "apply_chat_template(tools=...) argument (template variable `tools`)."
        ),
        "cases": cases,
    }


def dumps(doc: dict) -> str:
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if the committed JSON differs from a fresh render")
    args = ap.parse_args(argv)
    text = dumps(build())
    if args.check:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT.relative_to(REPO)} is stale; rerun tools/make_chat_goldens.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    n = text.count('"rendered"')
    print(f"wrote {OUT.relative_to(REPO)}: {n} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())

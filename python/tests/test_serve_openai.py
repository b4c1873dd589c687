"""`diffulex serve` driven by the official `openai` Python client, as applications use it.

The server is the `diffulex` binary the Rust build made (target/debug/diffulex, or
$DIFFULEX_BIN), started on a free port of 127.0.0.1 with the bundled model. Its answers must be
those of `diffulex generate` (whose tokens the Rust tests pin to the Python reference goldens),
streamed or not; a bad request must raise the client's typed error; and a client that goes away
in the middle of a stream must not stop the server.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

openai = pytest.importorskip("openai")

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("DIFFULEX_BIN", ROOT / "target" / "debug" / "diffulex"))
PROBLEMS = ["12+34=", "905+88=", "7+8="]


def _start(*args: str):
    if not BIN.is_file():
        pytest.skip(f"{BIN} is not built: run `cargo build` first (tools/test.sh does)")
    proc = subprocess.Popen([str(BIN), "serve", "--port", "0", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    if "http://" not in line:
        proc.kill()
        raise AssertionError(f"diffulex serve did not start: {line!r}")
    address = line.split("http://")[1].split("/")[0]
    return proc, openai.OpenAI(base_url=f"http://{address}/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def server():
    proc, client = _start()
    yield client
    proc.kill()
    proc.wait()


def _generate(*args: str) -> str:
    out = subprocess.run([str(BIN), "generate", "--json", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["text"]


def test_chat_completion_equals_generate(server):
    for prompt in PROBLEMS:
        reply = server.chat.completions.create(model="default", messages=[{"role": "user", "content": prompt}])
        assert reply.choices[0].message.content == _generate("--chat", "--prompt", prompt)
        assert reply.choices[0].finish_reason == "stop"
        assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0


def test_streaming_equals_generate(server):
    for prompt in PROBLEMS:
        stream = server.chat.completions.create(
            model="default", messages=[{"role": "user", "content": prompt}], stream=True
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        assert text == _generate("--chat", "--prompt", prompt)
        assert chunks[-1].choices[0].finish_reason == "stop"


def test_text_completion_and_models(server):
    reply = server.completions.create(model="default", prompt="12+34=", max_tokens=1)
    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].text == _generate("--prompt", "12+34=")[:len(reply.choices[0].text)]
    models = server.models.list()
    assert [m.id for m in models.data] == ["model"]


def test_bad_requests_raise_typed_errors_and_the_server_goes_on(server):
    with pytest.raises(openai.BadRequestError) as err:
        server.chat.completions.create(model="default", messages=[{"role": "user", "content": "1+1="}],
                                       max_tokens=100000)
    assert err.value.body["param"] == "max_tokens"
    with pytest.raises(openai.BadRequestError):
        server.chat.completions.create(model="default", messages=[])
    with pytest.raises(openai.BadRequestError):
        server.chat.completions.create(model="default", messages=[{"role": "user", "content": "1+1="}],
                                       temperature=7)
    reply = server.chat.completions.create(model="default", messages=[{"role": "user", "content": "7+8="}])
    assert reply.choices[0].message.content == _generate("--chat", "--prompt", "7+8=")


def test_client_gone_mid_stream_does_not_stop_the_server():
    """A stream on a model whose answer takes many blocks, closed after its first event."""
    fixtures = ROOT / "tests" / "fixtures"
    proc, client = _start("--model", str(fixtures / "pte" / "sdar_cached.pte"),
                          "--tokenizer", str(fixtures / "ckpt" / "sdar" / "tokenizer.json"))
    try:
        for _ in range(3):
            stream = client.completions.create(model="m", prompt="the cat sat on", max_tokens=200, stream=True)
            next(iter(stream))
            stream.close()
        reply = client.completions.create(model="m", prompt="the cat sat on", max_tokens=8)
        assert reply.usage.completion_tokens == 8
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()

"""The official openai Python client against a running loraplex server (issue 12's compatibility suite).

    LORAPLEX_URL=http://127.0.0.1:8000 LORAPLEX_API_KEY=sk-... python compat.py

Plain asserts, one line per check and a summary; exits 1 if any check fails. Expects the built-in demo
(base `loraplex-demo`, adapters demo-pirate/poet/chef/robot): random weights, so checks compare the server
with itself (streamed vs whole, one prompt vs a list, same seed twice), never with fixed text.
"""

import os
import sys
import traceback

import httpx2
import openai
from openai import OpenAI

URL = os.environ.get("LORAPLEX_URL", "http://127.0.0.1:8000")
KEY = os.environ.get("LORAPLEX_API_KEY", "sk-loraplex-compat")
BASE = "loraplex-demo"
ADAPTERS = ["demo-pirate", "demo-poet", "demo-chef", "demo-robot"]
PROMPT = "Once upon a time"
GREEDY = {"temperature": 0, "extra_body": {"ignore_eos": True}}

client = OpenAI(base_url=f"{URL}/v1", api_key=KEY)
CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def complete(prompt=PROMPT, max_tokens=8, model=BASE, extra=None, **kw):
    return client.completions.create(
        model=model, prompt=prompt, max_tokens=max_tokens, temperature=0,
        extra_body={"ignore_eos": True, **(extra or {})}, **kw,
    )


def chat(content="Tell me a story.", max_tokens=8, model=BASE, extra=None, **kw):
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}], max_tokens=max_tokens, temperature=0,
        extra_body={"ignore_eos": True, **(extra or {})}, **kw,
    )


def raw_post(path, body):
    r = httpx2.post(f"{URL}{path}", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


def token_text(token_id):
    return raw_post("/detokenize", {"model": BASE, "tokens": [token_id]})["prompt"]


def raises(exc_class, fn, param=None):
    try:
        fn()
    except exc_class as e:
        if param is not None:
            assert e.param == param or param in str(e), f"error does not name {param!r}: {e}"
        return e
    raise AssertionError(f"expected {exc_class.__name__}")


# ---- chat and completions, whole and streamed


@check
def chat_whole():
    r = chat(max_tokens=6)
    assert r.object == "chat.completion" and r.model == BASE
    c = r.choices[0]
    assert c.message.role == "assistant" and isinstance(c.message.content, str) and c.message.content
    assert c.finish_reason == "length" and r.usage.completion_tokens == 6
    assert r.usage.total_tokens == r.usage.prompt_tokens + 6


@check
def chat_stream_equals_whole():
    whole = chat(max_tokens=10).choices[0].message.content
    chunks = list(chat(max_tokens=10, stream=True))
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == whole, (text, whole)
    assert chunks[-1].choices[0].finish_reason == "length"


@check
def completion_whole():
    r = complete(max_tokens=6)
    assert r.object == "text_completion" and r.choices[0].text and r.usage.completion_tokens == 6


@check
def completion_stream_equals_whole():
    whole = complete(max_tokens=10).choices[0].text
    text = "".join(ch.choices[0].text for ch in complete(max_tokens=10, stream=True) if ch.choices)
    assert text == whole, (text, whole)


@check
def stream_options_include_usage():
    for stream in (chat(max_tokens=5, stream=True, stream_options={"include_usage": True}),
                   complete(max_tokens=5, stream=True, stream_options={"include_usage": True})):
        chunks = list(stream)
        last = chunks[-1]
        assert last.choices == [] and last.usage.completion_tokens == 5, last
        assert all(ch.usage is None for ch in chunks[:-1])


@check
def n_choices():
    r = client.chat.completions.create(
        model=BASE, messages=[{"role": "user", "content": "hi"}], n=3, max_tokens=4, temperature=1, seed=1,
        extra_body={"ignore_eos": True},
    )
    assert sorted(c.index for c in r.choices) == [0, 1, 2] and r.usage.completion_tokens == 12
    seen = {}
    for ch in chat("hi", max_tokens=4, n=2, stream=True):
        for c in ch.choices:
            seen[c.index] = seen.get(c.index, "") + (c.delta.content or "")
    assert sorted(seen) == [0, 1]


@check
def chat_logprobs_top_logprobs():
    r = chat(max_tokens=4, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == 4
    assert "".join(t.token for t in content) == r.choices[0].message.content
    for t in content:
        assert len(t.top_logprobs) == 3 and t.logprob <= 0
        assert abs(t.top_logprobs[0].logprob - t.logprob) < 1e-4  # greedy: the chosen token is the top one


@check
def completion_logprobs():
    r = complete(max_tokens=4, logprobs=2)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == 4 and len(lp.token_logprobs) == 4 and all(len(t) == 2 for t in lp.top_logprobs)
    assert "".join(lp.tokens) == r.choices[0].text


@check
def stop_strings():
    text = complete(max_tokens=16).choices[0].text
    stop = next(text[i:i + 3] for i in range(3, len(text) - 3) if text[i:i + 3].strip())
    r = complete(max_tokens=16, stop=[stop])
    assert r.choices[0].text == text[: text.find(stop)] and r.choices[0].finish_reason == "stop", (text, stop, r)
    r = chat(max_tokens=16, stop=stop)
    assert stop not in r.choices[0].message.content


@check
def seed_reproducible():
    def sample():
        return client.completions.create(
            model=BASE, prompt=PROMPT, max_tokens=12, temperature=1.0, seed=1234, extra_body={"ignore_eos": True},
        ).choices[0].text
    assert sample() == sample()


@check
def max_completion_tokens():
    r = client.chat.completions.create(
        model=BASE, messages=[{"role": "user", "content": "hi"}], max_completion_tokens=3, temperature=0,
        extra_body={"ignore_eos": True},
    )
    assert r.usage.completion_tokens == 3 and r.choices[0].finish_reason == "length"


@check
def content_parts():
    parts = [{"type": "text", "text": "Tell me"}, {"type": "text", "text": "a story."}]
    # text parts are joined with newlines, as vLLM joins them
    assert chat(parts).choices[0].message.content == chat("Tell me\na story.").choices[0].message.content
    image = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    raises(openai.BadRequestError, lambda: chat(image))


@check
def prompt_lists():
    prompts = ["Once upon a time", "The cat"]
    r = complete(prompts, max_tokens=5)
    assert [c.index for c in r.choices] == [0, 1]
    for p, c in zip(prompts, r.choices):
        assert c.text == complete(p, max_tokens=5).choices[0].text
    ids = raw_post("/tokenize", {"model": BASE, "prompt": PROMPT})["tokens"]
    assert complete(ids, max_tokens=5).choices[0].text == complete(max_tokens=5).choices[0].text


@check
def logit_bias():
    token = raw_post("/tokenize", {"model": BASE, "prompt": " hello"})["tokens"][-1]
    r = complete(max_tokens=4, logit_bias={str(token): 100})
    assert r.choices[0].text == token_text(token) * 4, r.choices[0].text
    first = complete(max_tokens=1, logprobs=0).choices[0].logprobs.tokens[0]
    first_id = raw_post("/tokenize", {"model": BASE, "prompt": PROMPT + first})["tokens"][-1]
    assert complete(max_tokens=1, logit_bias={str(first_id): -100}).choices[0].text != first


def distinct_tokens(extra=None, **penalties):
    """How many different tokens 32 greedy tokens hold: a penalty on repeats never makes it smaller here."""
    r = complete(max_tokens=32, logprobs=0, extra=extra, **penalties)
    return len(set(r.choices[0].logprobs.tokens))


@check
def presence_frequency_penalties():
    plain = distinct_tokens()
    assert distinct_tokens(presence_penalty=2.0) >= plain
    assert distinct_tokens(frequency_penalty=2.0) >= plain
    raises(openai.BadRequestError, lambda: complete(presence_penalty=3.0), "presence_penalty")


@check
def echo():
    r = complete(max_tokens=3, echo=True)
    assert r.choices[0].text.startswith(PROMPT) and r.choices[0].text == PROMPT + complete(max_tokens=3).choices[0].text
    r = complete(max_tokens=3, echo=True, logprobs=1)
    lp = r.choices[0].logprobs
    n_prompt = r.usage.prompt_tokens
    assert len(lp.tokens) == n_prompt + 3 and lp.token_logprobs[0] is None
    assert "".join(lp.tokens) == r.choices[0].text


@check
def best_of():
    r = client.completions.create(
        model=BASE, prompt=PROMPT, max_tokens=4, n=1, best_of=3, temperature=1, seed=5,
        extra_body={"ignore_eos": True},
    )
    assert len(r.choices) == 1 and r.choices[0].logprobs is None
    raises(openai.BadRequestError, lambda: complete(best_of=2, stream=True), "best_of")


@check
def vllm_extra_body():
    greedy = complete(max_tokens=8).choices[0].text
    top_k1 = client.completions.create(
        model=BASE, prompt=PROMPT, max_tokens=8, temperature=1.0, seed=3, extra_body={"ignore_eos": True, "top_k": 1},
    )
    assert top_k1.choices[0].text == greedy
    r = client.completions.create(
        model=BASE, prompt=PROMPT, max_tokens=6, temperature=0, extra_body={"min_tokens": 6},
    )
    assert r.usage.completion_tokens == 6
    assert distinct_tokens(extra={"repetition_penalty": 1.5}) >= distinct_tokens()
    r = complete(max_tokens=2, extra={"prompt_logprobs": 1})
    plp = r.choices[0].model_extra["prompt_logprobs"]
    assert len(plp) == r.usage.prompt_tokens and plp[0] is None and all(isinstance(e, dict) for e in plp[1:])


# ---- models and adapters


@check
def models_list_retrieve():
    ids = [m.id for m in client.models.list()]
    assert ids[0] == BASE and set(ADAPTERS) <= set(ids), ids
    m = client.models.retrieve("demo-pirate")
    assert m.id == "demo-pirate" and m.model_extra.get("parent") == BASE
    assert client.models.retrieve(BASE).model_extra.get("max_model_len") > 0
    raises(openai.NotFoundError, lambda: client.models.retrieve("no-such-model"))


@check
def adapters_by_model():
    base = complete(max_tokens=12).choices[0].text
    outs = {}
    for name in ADAPTERS:
        r = complete(max_tokens=12, model=name)
        assert r.model == name
        outs[name] = r.choices[0].text
        streamed = "".join(ch.choices[0].delta.content or "" for ch in chat(model=name, stream=True) if ch.choices)
        assert streamed == chat(model=name).choices[0].message.content
    assert any(t != base for t in outs.values()), "no adapter changes the base's output"


# ---- errors and retries


def counting_client(transport=None, max_retries=2):
    sent = []
    http = openai.DefaultHttpxClient(transport=transport, event_hooks={"request": [sent.append]})
    return OpenAI(base_url=f"{URL}/v1", api_key=KEY, max_retries=max_retries, http_client=http), sent


@check
def error_classes():
    bad_key = OpenAI(base_url=f"{URL}/v1", api_key="sk-wrong")
    raises(openai.AuthenticationError, lambda: bad_key.models.list())
    raises(openai.AuthenticationError, lambda: bad_key.chat.completions.create(
        model=BASE, messages=[{"role": "user", "content": "hi"}], max_tokens=2))
    e = raises(openai.NotFoundError, lambda: complete(model="no-such-model"))
    assert e.status_code == 404
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    raises(openai.BadRequestError, lambda: chat(tools=tools), "tools")
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    raises(openai.BadRequestError, lambda: chat(response_format=schema), "response_format")
    raises(openai.BadRequestError, lambda: complete(max_tokens=-1), "max_tokens")
    raises(openai.BadRequestError, lambda: chat(stream=True, tools=tools), "tools")


@check
def client_errors_not_retried():
    c, sent = counting_client()
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    cases = [
        (openai.BadRequestError, lambda: c.chat.completions.create(
            model=BASE, messages=[{"role": "user", "content": "hi"}], tools=tools, max_tokens=2)),
        (openai.BadRequestError, lambda: c.completions.create(model=BASE, prompt="hi", max_tokens=-1)),
        (openai.NotFoundError, lambda: c.completions.create(model="no-such-model", prompt="hi", max_tokens=2)),
        (openai.BadRequestError, lambda: list(c.completions.create(
            model=BASE, prompt="hi", max_tokens=2, best_of=2, stream=True))),
    ]
    for exc_class, fn in cases:
        sent.clear()
        raises(exc_class, fn)
        assert len(sent) == 1, f"{exc_class.__name__} sent {len(sent)} requests"
    bad_key, sent = counting_client()
    bad_key.api_key = "sk-wrong"
    raises(openai.AuthenticationError, lambda: bad_key.models.list())
    assert len(sent) == 1, f"401 sent {len(sent)} requests"


class FailFirst(httpx2.BaseTransport):
    """Answers the first request with `status` itself, then hands requests to the real server."""

    def __init__(self, status):
        self.status = status
        self.real = httpx2.HTTPTransport()
        self.failed = False

    def handle_request(self, request):
        if not self.failed:
            self.failed = True
            body = {"error": {"message": "busy", "type": "server_error", "param": None, "code": None}}
            return httpx2.Response(self.status, headers={"retry-after-ms": "1"}, json=body)
        return self.real.handle_request(request)


@check
def overload_statuses_are_retried():
    for status in (503, 429):
        c, sent = counting_client(FailFirst(status))
        r = c.completions.create(model=BASE, prompt="hi", max_tokens=2, temperature=0)
        assert len(sent) == 2 and r.choices[0].text, (status, len(sent))
        c, sent = counting_client(FailFirst(status), max_retries=0)
        raises(openai.RateLimitError if status == 429 else openai.InternalServerError,
               lambda: c.completions.create(model=BASE, prompt="hi", max_tokens=2))
        assert len(sent) == 1


def main():
    failed = 0
    for fn in CHECKS:
        try:
            fn()
            print(f"ok    {fn.__name__}", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported, the run goes on
            failed += 1
            print(f"FAIL  {fn.__name__}: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc(limit=3, file=sys.stdout)
    print(f"openai-python {openai.__version__}: {len(CHECKS) - failed}/{len(CHECKS)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

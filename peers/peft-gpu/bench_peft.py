#!/usr/bin/env python3
"""PyTorch + PEFT mixed-adapter batch baseline (the peer for loraplex's CUDA multi-LoRA serving numbers).

Builds a LlamaForCausalLM of Llama-3.1-8B's shape with random bf16 weights directly on the device, adds N
LoRA adapters with PEFT (rank 16, alpha 32, q/k/v/o/gate/up/down, B non-zero), and times `generate` over a
batch of C sequences with PEFT's mixed-adapter batch inference (`adapter_names=[...]`, one name per row).

Scenarios (--scenarios, comma-separated):
  base      the PEFT model with adapters disabled (`with model.disable_adapter()`), i.e. the plain base model
            plus PEFT's wrapper call per LoRA-wrapped Linear
  loraN     N adapters (N >= 1), each row's adapter drawn Zipf(alpha) over the N adapters (fixed seed),
            passed as `adapter_names`; lora1 = every row uses the same adapter through the mixed-batch path
  active1   one adapter through the ordinary (non-mixed) path: `set_adapter("a0")`, no adapter_names

Per scenario: one short warm-up generate, then R repeats of [prefill-only generate (1 new token), full
generate (--new-tokens, forced via min_new_tokens = max_new_tokens, greedy, use_cache)], each timed with
torch.cuda.synchronize. Reported figures are medians over the repeats. The whole run respects
--time-budget-s (measured from process start, model build included): before the repeats, the warm-up's
per-step time projects a repeat's cost; repeats are cut to what fits and a scenario that cannot fit one
repeat is marked skipped. The JSON (--out) is rewritten after every scenario, so a killed run keeps what
it finished.
"""

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

LLAMA31_8B = dict(
    hidden=4096,
    layers=32,
    heads=32,
    kv_heads=8,
    intermediate=14336,
    vocab=128256,
    max_pos=131072,
)
TINY = dict(hidden=256, layers=2, heads=4, kv_heads=2, intermediate=512, vocab=1000, max_pos=131072)
LLAMA3_ROPE = dict(
    rope_type="llama3",
    factor=8.0,
    low_freq_factor=1.0,
    high_freq_factor=4.0,
    original_max_position_embeddings=8192,
)
ROPE_THETA = 500000.0


def log(msg):
    print(f"[peft-bench {time.perf_counter() - T_START:7.1f}s] {msg}", flush=True)


def fail(msg):
    print(f"[peft-bench] ERROR: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu for a dry run")
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--tiny", action="store_true", help="tiny model for a dry run (2 layers, hidden 256, vocab 1000)")
    p.add_argument("--layers", type=int, help="decoder layers (default 32; fewer for a dry run)")
    p.add_argument("--hidden", type=int, help="hidden size (default 4096)")
    p.add_argument("--heads", type=int, help="attention heads (default 32)")
    p.add_argument("--kv-heads", type=int, help="key/value heads (default 8)")
    p.add_argument("--intermediate", type=int, help="MLP intermediate size (default 14336)")
    p.add_argument("--vocab", type=int, help="vocabulary size (default 128256)")
    p.add_argument("--attn", default="sdpa", help="attn_implementation (default sdpa)")
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--alpha", type=float, default=32.0)
    p.add_argument("--concurrency", type=int, default=64, help="sequences per batch")
    p.add_argument("--prompt-len", type=int, default=128, help="prompt length (random token ids)")
    p.add_argument(
        "--new-tokens",
        type=int,
        default=16,
        help="forced new tokens per sequence (default 16: PEFT's mixed batch costs ~1 s per decode step at 100 "
        "adapters, so 128 does not fit ~150 s; the per-step time is measured and projected to "
        "--project-new-tokens)",
    )
    p.add_argument("--project-new-tokens", type=int, default=128, help="also report tok/s projected to this length")
    p.add_argument("--warmup-tokens", type=int, default=3, help="new tokens in the per-scenario warm-up generate")
    p.add_argument("--repeats", type=int, default=2, help="timed repeats per scenario (median reported)")
    p.add_argument("--scenarios", default="base,lora1,lora32,lora100")
    p.add_argument("--zipf-alpha", type=float, default=1.0)
    p.add_argument(
        "--adapter-build",
        default="clone",
        choices=["clone", "peft"],
        help="adapters after a0: clone a0's PEFT modules (default, fast) or PEFT add_adapter (minutes for 100 "
        "adapters x 32 layers: add_adapter walks the whole model per call)",
    )
    p.add_argument("--cache", default="dynamic", choices=["dynamic", "static"], help="KV cache implementation")
    p.add_argument("--time-budget-s", type=float, default=150.0, help="wall budget from process start")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write results JSON here")
    a = p.parse_args(argv)
    shape = dict(TINY if a.tiny else LLAMA31_8B)
    for k in ("layers", "hidden", "heads", "kv_heads", "intermediate", "vocab"):
        v = getattr(a, k)
        if v is not None:
            shape[k] = v
    a.shape = shape
    scen = []
    for s in a.scenarios.split(","):
        s = s.strip()
        if not s:
            continue
        if s == "base" or s == "active1":
            scen.append((s, 0 if s == "base" else 1))
        elif s.startswith("lora") and s[4:].isdigit() and int(s[4:]) >= 1:
            scen.append((s, int(s[4:])))
        else:
            p.error(f"unknown scenario {s!r} (base, active1, loraN)")
    a.scenario_list = scen
    if a.new_tokens < 2:
        p.error("--new-tokens must be >= 2 (decode time is derived from the difference to a 1-token run)")
    return a


def import_stack():
    try:
        import torch
        import transformers
        import peft
    except ImportError as e:  # pragma: no cover
        fail(f"missing package: {e}")
    return torch, transformers, peft


def no_init_weights_ctx(transformers):
    """transformers 5.x: transformers.initialization.no_init_weights; 4.x: transformers.modeling_utils."""
    try:
        from transformers.initialization import no_init_weights

        return no_init_weights()
    except ImportError:
        pass
    try:
        from transformers.modeling_utils import no_init_weights

        return no_init_weights()
    except ImportError:
        fail(f"transformers {transformers.__version__}: no no_init_weights context manager found")


def make_config(transformers, a):
    from transformers import LlamaConfig

    s = a.shape
    if s["hidden"] % s["heads"] or s["heads"] % s["kv_heads"]:
        fail(f"hidden {s['hidden']} / heads {s['heads']} / kv_heads {s['kv_heads']} do not divide")
    vocab = s["vocab"]
    eos = min(128001, vocab - 1)
    bos = min(128000, vocab - 2)
    kw = dict(
        vocab_size=vocab,
        hidden_size=s["hidden"],
        intermediate_size=s["intermediate"],
        num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"],
        num_key_value_heads=s["kv_heads"],
        max_position_embeddings=s["max_pos"],
        rms_norm_eps=1e-5,
        hidden_act="silu",
        tie_word_embeddings=False,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=eos,
        attn_implementation=a.attn,
        use_cache=True,
    )
    # transformers >= 5 folds rope_theta + rope_scaling into rope_parameters; 4.x takes them separately.
    fields = set(getattr(LlamaConfig, "__dataclass_fields__", {})) | set(
        inspect.signature(LlamaConfig.__init__).parameters
    )
    if "rope_parameters" in fields:
        kw["rope_parameters"] = dict(LLAMA3_ROPE, rope_theta=ROPE_THETA)
    else:
        kw["rope_theta"] = ROPE_THETA
        kw["rope_scaling"] = dict(LLAMA3_ROPE)
    cfg = LlamaConfig(**kw)
    # Check the rope setting took (either API), rather than silently running default RoPE.
    rp = getattr(cfg, "rope_parameters", None) or {}
    rs = getattr(cfg, "rope_scaling", None) if not rp else None
    got_type = (rp or rs or {}).get("rope_type") or (rp or rs or {}).get("type")
    got_theta = rp.get("rope_theta", getattr(cfg, "rope_theta", None)) if rp else getattr(cfg, "rope_theta", None)
    if got_type != "llama3" or float(got_theta or 0) != ROPE_THETA:
        fail(f"transformers {transformers.__version__}: llama3 rope not applied (type={got_type}, theta={got_theta})")
    return cfg


def build_model(torch, transformers, cfg, device, dtype, seed):
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device), no_init_weights_ctx(transformers):
            model = LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(prev)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.device.type != torch.device(device).type or p.dtype != dtype:
                fail(f"parameter {name} built as {p.dtype} on {p.device}, expected {dtype} on {device}")
            if p.dim() >= 2:  # Linear / Embedding weights; RMSNorm weights stay at 1
                p.normal_(0.0, 0.02)
    model.eval()
    model.generation_config.pad_token_id = cfg.pad_token_id
    model.generation_config.eos_token_id = cfg.eos_token_id
    model.generation_config.bos_token_id = cfg.bos_token_id
    return model


def lora_config(peft, a):
    from peft import LoraConfig

    return LoraConfig(
        r=a.rank,
        lora_alpha=a.alpha,
        target_modules=list(TARGETS),
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        init_lora_weights=False,  # B non-zero; we overwrite A and B below anyway
    )


def check_peft_mixed_batch(peft):
    try:
        from peft.tuners.lora import LoraLayer
        from peft.tuners.lora.layer import Linear as LoraLinear
    except ImportError as e:
        fail(f"peft {peft.__version__}: cannot import LoRA layers ({e})")
    if not hasattr(LoraLinear, "_mixed_batch_forward"):
        fail(
            f"peft {peft.__version__} has no mixed-adapter batch inference "
            "(LoraLinear._mixed_batch_forward; needs peft >= 0.10)"
        )
    return LoraLayer


class Adapters:
    """Adds adapters a0, a1, ... on demand (bf16, on the device, random A and B)."""

    def __init__(self, torch, peft, base_model, a, device, dtype, LoraLayer):
        self.torch, self.peft, self.a, self.device, self.dtype = torch, peft, a, device, dtype
        self.LoraLayer = LoraLayer
        self.base_model = base_model
        self.model = None
        self.n = 0
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(a.seed + 1)
        self.seconds = 0.0

    def _autocast_kw(self, fn):
        # PEFT >= 0.12 upcasts bf16 adapters to fp32 unless told not to; keep them in the model dtype.
        return {"autocast_adapter_dtype": False} if "autocast_adapter_dtype" in inspect.signature(fn).parameters else {}

    def _layers(self):
        # The LoRA-wrapped Linears are fixed once a0 exists; walking model.modules() per adapter would grow
        # with every adapter's submodules.
        if getattr(self, "_layer_list", None) is None:
            self._layer_list = [m for m in self.model.modules() if isinstance(m, self.LoraLayer)]
        return self._layer_list

    def _fill(self, name):
        torch = self.torch
        count = 0
        with torch.no_grad():
            for m in self._layers():
                if name in m.lora_A:
                    for lin in (m.lora_A[name], m.lora_B[name]):
                        if lin.weight.dtype != self.dtype or lin.weight.device.type != torch.device(self.device).type:
                            lin.to(device=self.device, dtype=self.dtype)
                        lin.weight.normal_(0.0, 0.02, generator=self.gen)
                    count += 1
        expected = len(TARGETS) * self.a.shape["layers"]
        if count != expected:
            fail(f"adapter {name}: {count} LoRA-wrapped modules, expected {expected}")

    def _clone(self, src, name):
        """Adds adapter `name` to every LoRA layer by copying the per-adapter entries PEFT created for `src`
        (LoraLayer.adapter_layer_names + other_param_names: lora_A/lora_B Linear, dropout, r, alpha, scaling, ...),
        then registers its LoraConfig. Same modules and forward path as add_adapter, without add_adapter's walk
        over every module of the model (quadratic in the number of adapters in recent PEFT)."""
        import copy

        nn = self.torch.nn
        for m in self._layers():
            if src not in m.lora_A:
                continue
            if src in getattr(m, "lora_variant", {}):
                fail(f"adapter {src} uses a LoRA variant (DoRA/...); cloning supports vanilla LoRA only")
            for attr in tuple(m.adapter_layer_names) + tuple(m.other_param_names):
                d = getattr(m, attr, None)
                if d is None or not hasattr(d, "__contains__") or src not in d:
                    continue
                v = d[src]
                if type(v) is nn.Linear:  # lora_A / lora_B: a fresh Linear of the same shape (filled in _fill)
                    d[name] = nn.Linear(
                        v.in_features,
                        v.out_features,
                        bias=v.bias is not None,
                        device=v.weight.device,
                        dtype=v.weight.dtype,
                    ).requires_grad_(False)
                elif type(v) is nn.Identity:  # lora_dropout with p=0
                    d[name] = nn.Identity()
                elif isinstance(v, (nn.Module, nn.Parameter)):
                    d[name] = copy.deepcopy(v)
                else:  # r, lora_alpha, scaling, use_rslora, ... (plain values)
                    d[name] = v
        self.model.peft_config[name] = copy.deepcopy(self.model.peft_config[src])

    def ensure(self, n):
        from peft import get_peft_model

        t = time.perf_counter()
        added = 0
        while self.n < n:
            name = f"a{self.n}"
            cfg = lora_config(self.peft, self.a)
            with self.torch.device(self.device):
                if self.model is None:
                    kw = self._autocast_kw(get_peft_model)
                    self.model = get_peft_model(self.base_model, cfg, adapter_name=name, **kw)
                elif self.a.adapter_build == "peft":
                    self.model.add_adapter(name, cfg, **self._autocast_kw(self.model.add_adapter))
                else:
                    self._clone("a0", name)
            self._fill(name)
            self.n += 1
            added += 1
            if added % 10 == 0:
                log(f"  adapters: {self.n}/{n}")
        self.model.eval()
        dt = time.perf_counter() - t
        self.seconds += dt
        return added, dt


def zipf_names(n, c, alpha, seed):
    rng = random.Random(seed * 1000003 + n)
    weights = [1.0 / (k**alpha) for k in range(1, n + 1)]
    idx = rng.choices(range(n), weights=weights, k=c)
    return [f"a{i}" for i in idx]


def main(argv):
    a = parse_args(argv)
    torch, transformers, peft = import_stack()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[a.dtype]
    device = a.device
    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        fail("--device cuda but torch.cuda.is_available() is False (use --device cpu for a dry run)")
    LoraLayer = check_peft_mixed_batch(peft)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    versions = dict(
        python=platform.python_version(),
        torch=torch.__version__,
        transformers=transformers.__version__,
        peft=peft.__version__,
        cuda=torch.version.cuda,
        device_name=torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
    )
    log("versions " + " ".join(f"{k}={v}" for k, v in versions.items()))
    result = dict(
        tool="peers/peft-gpu/bench_peft.py",
        versions=versions,
        config=dict(
            model="Llama-3.1-8B shape, random weights" if not a.tiny else "tiny Llama (dry run), random weights",
            shape=a.shape,
            dtype=a.dtype,
            device=device,
            attn_implementation=a.attn,
            lora=dict(rank=a.rank, alpha=a.alpha, targets=TARGETS, adapter_dtype=a.dtype, build=a.adapter_build),
            concurrency=a.concurrency,
            prompt_len=a.prompt_len,
            new_tokens=a.new_tokens,
            warmup_tokens=a.warmup_tokens,
            repeats=a.repeats,
            zipf_alpha=a.zipf_alpha,
            cache=a.cache,
            greedy=True,
            time_budget_s=a.time_budget_s,
            seed=a.seed,
            scenarios=[s for s, _ in a.scenario_list],
        ),
        scenarios={},
    )

    def write():
        if not a.out:
            return
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        tmp = a.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f, indent=2)
        os.replace(tmp, a.out)

    cfg = make_config(transformers, a)
    t = time.perf_counter()
    base = build_model(torch, transformers, cfg, device, dtype, a.seed)
    sync()
    nparams = sum(p.numel() for p in base.parameters())
    result["build_s"] = round(time.perf_counter() - t, 3)
    result["base_params"] = nparams
    result["attn_implementation_used"] = getattr(base.config, "_attn_implementation", None)
    log(f"model built: {nparams / 1e9:.3f} B params, {a.dtype}, {device}, {result['build_s']} s")
    if cuda:
        result["weights_mem_gib"] = round(torch.cuda.memory_allocated() / 2**30, 3)

    adapters = Adapters(torch, peft, base, a, device, dtype, LoraLayer)
    adapters.ensure(1)
    model = adapters.model
    w0 = adapters._layers()[0].lora_A["a0"].weight
    result["adapter_weight_dtype"] = str(w0.dtype)
    result["lora_layers"] = len(adapters._layers())
    log(f"peft model: adapter a0 added ({adapters.seconds:.1f} s), {len(adapters._layers())} LoRA layers, {w0.dtype}")

    def sanity(name):
        """The adapter must change the output; mixed batch rows must match the disabled / active paths."""
        with torch.inference_mode():
            ids = torch.randint(0, a.shape["vocab"], (3, 8), device=device)
            mixed = model(input_ids=ids, adapter_names=["__base__", name, "a0"]).logits.float()
            with model.disable_adapter():
                plain = model(input_ids=ids).logits.float()
            model.set_adapter(name)
            active = model(input_ids=ids).logits.float()
            model.set_adapter("a0")
        rec = dict(
            adapter=name,
            adapter_changes_logits_maxabs=(mixed[1] - plain[1]).abs().max().item(),
            mixed_base_row_vs_disabled_maxabs=(mixed[0] - plain[0]).abs().max().item(),
            mixed_adapter_row_vs_active_maxabs=(mixed[1] - active[1]).abs().max().item(),
        )
        log("sanity " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items()))
        if not rec["adapter_changes_logits_maxabs"] > 0:
            fail(f"adapter {name} does not change the logits (B is zero or adapter_names ignored)")
        if rec["mixed_adapter_row_vs_active_maxabs"] > 0.1 * rec["adapter_changes_logits_maxabs"]:
            fail(f"adapter {name}: mixed-batch row differs from the set_adapter path: {rec}")
        result.setdefault("sanity", []).append(rec)

    sanity("a0")
    write()

    g = torch.Generator(device="cpu")
    g.manual_seed(a.seed)
    prompts = torch.randint(0, a.shape["vocab"] - 2, (a.concurrency, a.prompt_len), generator=g).to(device)
    attn_mask = torch.ones_like(prompts)

    def generate(n_new, names, mode):
        kw = dict(
            input_ids=prompts,
            attention_mask=attn_mask,
            max_new_tokens=n_new,
            min_new_tokens=n_new,
            do_sample=False,
            num_beams=1,
            use_cache=True,
            pad_token_id=cfg.pad_token_id,
            eos_token_id=cfg.eos_token_id,
        )
        if a.cache == "static":
            kw["cache_implementation"] = "static"
            kw["disable_compile"] = True  # transformers would otherwise auto-compile with a static cache
        if names is not None:
            kw["adapter_names"] = names
        ctx = model.disable_adapter() if mode == "base" else contextlib.nullcontext()
        sync()
        t0 = time.perf_counter()
        with torch.inference_mode(), ctx:
            out = model.generate(**kw)
        sync()
        dt = time.perf_counter() - t0
        if tuple(out.shape) != (a.concurrency, a.prompt_len + n_new):
            fail(f"generate returned shape {tuple(out.shape)}, expected {(a.concurrency, a.prompt_len + n_new)}")
        return dt

    def remaining():
        return a.time_budget_s - (time.perf_counter() - T_START)

    for sname, n in a.scenario_list:
        rec = dict(adapters=n)
        result["scenarios"][sname] = rec
        if remaining() <= 0:
            rec.update(skipped=True, reason=f"time budget {a.time_budget_s} s exhausted before start")
            log(f"{sname}: skipped (budget exhausted)")
            write()
            continue
        if n > adapters.n:
            added, dt = adapters.ensure(n)
            log(f"{sname}: added {added} adapters in {dt:.1f} s (total {adapters.n})")
            rec["adapter_add_s"] = round(dt, 3)
            if cuda:
                rec["mem_after_adapters_gib"] = round(torch.cuda.memory_allocated() / 2**30, 3)
            sanity(f"a{adapters.n - 1}")
        if sname == "base":
            names, mode = None, "base"
        elif sname == "active1":
            model.set_adapter("a0")
            names, mode = None, "active"
        else:
            names, mode = zipf_names(n, a.concurrency, a.zipf_alpha, a.seed), "mixed"
            counts = {}
            for x in names:
                counts[x] = counts.get(x, 0) + 1
            rec["unique_adapters_in_batch"] = len(counts)
            rec["rows_per_adapter_top5"] = sorted(counts.values(), reverse=True)[:5]
        rec["mode"] = mode
        if cuda:
            torch.cuda.reset_peak_memory_stats()

        w = max(2, a.warmup_tokens)
        t_warm = generate(w, names, mode)
        t_pre0 = generate(1, names, mode)
        step_est = max(0.0, t_warm - t_pre0) / (w - 1)
        est_run = 2 * t_pre0 + (a.new_tokens - 1) * step_est  # a repeat = prefill-only run + full run
        log(
            f"{sname}: warm-up {t_warm:.2f} s ({w} tok), prefill {t_pre0:.3f} s, ~{step_est * 1e3:.1f} ms/step, "
            f"~{est_run:.1f} s per repeat, {remaining():.0f} s of budget left"
        )
        rec["warmup_s"] = round(t_warm, 4)
        pre, full = [], []
        for r in range(a.repeats):
            # the next repeat must fit the budget: projected from the warm-up, then from the last repeat
            cost = est_run if r == 0 else pre[-1] + full[-1]
            if cost * 1.1 > remaining():
                rec["repeats_cut"] = f"repeat {r + 1} (~{cost:.1f} s) would overrun the budget ({remaining():.1f} s left)"
                log(f"{sname}: {rec['repeats_cut']}")
                break
            pre.append(generate(1, names, mode))
            full.append(generate(a.new_tokens, names, mode))
            log(f"{sname}: repeat {r + 1}/{a.repeats}: prefill {pre[-1]:.3f} s, full {full[-1]:.3f} s")
        reps = len(full)
        if reps < 1:
            rec.update(
                skipped=True,
                reason=f"projected {est_run:.1f} s per repeat exceeds remaining {remaining():.1f} s of the budget",
                projected_step_ms=round(step_est * 1e3, 3),
            )
            log(f"{sname}: skipped (projected over budget)")
            write()
            continue
        tp, tf = statistics.median(pre), statistics.median(full)
        step = max(1e-9, tf - tp) / (a.new_tokens - 1)
        C, N, P = a.concurrency, a.new_tokens, a.project_new_tokens
        rec.update(
            skipped=False,
            repeats_done=reps,
            batch_time_s=round(tf, 4),
            batch_times_s=[round(x, 4) for x in full],
            output_tok_s=round(C * N / tf, 2),
            prefill_s=round(tp, 4),
            decode_step_ms=round(step * 1e3, 3),
            decode_tok_s=round(C / step, 2),
            projected=dict(
                new_tokens=P,
                output_tok_s=round(C * P / (tp + (P - 1) * step), 2),
                batch_time_s=round(tp + (P - 1) * step, 3),
                note="prefill + (P-1) x measured decode step; ignores the longer KV",
            ),
        )
        if cuda:
            rec["peak_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
        log(
            f"{sname}: {rec['output_tok_s']} output tok/s ({N} new tok, batch {tf:.3f} s), "
            f"decode {rec['decode_tok_s']} tok/s ({rec['decode_step_ms']} ms/step), prefill {tp:.3f} s"
            + (f", peak {rec['peak_mem_gib']} GiB" if cuda else "")
        )
        write()

    result["adapters_loaded"] = adapters.n
    result["adapter_add_total_s"] = round(adapters.seconds, 3)
    result["total_s"] = round(time.perf_counter() - T_START, 2)
    write()
    log(f"done in {result['total_s']} s" + (f"; wrote {a.out}" if a.out else ""))
    for k, v in result["scenarios"].items():
        if v.get("skipped"):
            log(f"summary {k}: skipped ({v.get('reason')})")
        else:
            log(
                f"summary {k}: output {v['output_tok_s']} tok/s @{a.new_tokens} new, decode {v['decode_step_ms']} "
                f"ms/step, prefill {v['prefill_s']} s, projected {v['projected']['output_tok_s']} tok/s "
                f"@{a.project_new_tokens}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

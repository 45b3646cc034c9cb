"""Builds the tiny random-weight checkpoints that prove depthkv's forward pass per model family.

For every family: a checkpoint made with Hugging Face transformers (f32, a few layers, small
hidden size, the family's structural options switched on), saved as safetensors + config.json +
tokenizer.json; the same weights written as GGUF with gguf-py, named and laid out as llama.cpp's
converter does; and the reference: transformers' logits at every position of a fixed prompt that
is longer than the sliding window and than the scaled RoPE's original context, its 32 greedy
tokens, each layer's hidden states and the inverse RoPE frequencies transformers used.

Needs torch, transformers 5, safetensors, numpy and gguf. Run from the repo root:
    python3 scripts/gen_family_fixtures.py tests/fixtures/families OUT_DIR
(the first argument holds tokenizer.json, made by scripts/train_family_tokenizer.py).
"""

import json
import math
import os
import sys
import traceback

import numpy as np
import torch
import transformers
from safetensors.numpy import save_file as save_np
from tokenizers import Tokenizer

PROMPT_TOKENS = 96
GREEDY_TOKENS = 32
WINDOW = 16  # sliding window, well below the prompt length
ORIG_CTX = 32  # original context of scaled RoPE, below the prompt length
MAX_POS = 256

PROMPT_TEXT = (
    "The quick brown fox jumps over the lazy dog while the river runs past the old mill. "
    "Sliding windows, soft caps and rotary embeddings: each family of models differs a little. "
    "In the beginning the engine read the prompt once, kept its keys and values, and answered. "
    "Numbers such as 12, 345 and 6789 appear in tables, dates and secret codes alike. "
    "A budget of twenty percent keeps one token in five; the others are pruned away for good. "
    "Layers near the bottom attend broadly; layers near the top look at a few chosen tokens."
)


def base_dims(vocab):
    return dict(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=MAX_POS,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )


def gemma_local(vocab):
    """Gemma 2/3 shared options: tied head, GELU-tanh, a window below the prompt length."""
    return dict(
        base_dims(vocab),
        hidden_activation="gelu_pytorch_tanh",
        tie_word_embeddings=True,
        sliding_window=WINDOW,
        query_pre_attn_scalar=16,
    )


def families(vocab):
    """(name, config class, kwargs, gguf arch)."""
    half = 16 // 2
    rng = np.random.default_rng(7)
    long_factor = [float(x) for x in 1.0 + rng.random(half) * 7.0]
    short_factor = [float(x) for x in 1.0 + rng.random(half) * 0.5]
    d = base_dims
    return [
        (
            "llama3",
            transformers.LlamaConfig,
            dict(
                d(vocab),
                num_hidden_layers=3,
                rope_parameters=dict(
                    rope_type="llama3",
                    rope_theta=10000.0,
                    factor=8.0,
                    low_freq_factor=1.0,
                    high_freq_factor=4.0,
                    original_max_position_embeddings=ORIG_CTX,
                ),
            ),
            "llama",
        ),
        (
            "mistral",
            transformers.MistralConfig,
            dict(d(vocab), num_hidden_layers=3, sliding_window=WINDOW, rope_parameters=dict(rope_type="default", rope_theta=10000.0)),
            "llama",
        ),
        (
            "qwen2",
            transformers.Qwen2Config,
            dict(
                d(vocab),
                num_hidden_layers=3,
                rope_parameters=dict(rope_type="yarn", rope_theta=10000.0, factor=8.0, original_max_position_embeddings=ORIG_CTX),
            ),
            "qwen2",
        ),
        (
            "qwen3",
            transformers.Qwen3Config,
            dict(d(vocab), num_hidden_layers=3, rope_parameters=dict(rope_type="linear", rope_theta=10000.0, factor=2.0)),
            "qwen3",
        ),
        (
            "gemma",
            transformers.GemmaConfig,
            dict(d(vocab), num_hidden_layers=3, hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True, rope_parameters=dict(rope_type="default", rope_theta=10000.0)),
            "gemma",
        ),
        (
            "gemma2",
            transformers.Gemma2Config,
            dict(
                gemma_local(vocab),
                num_hidden_layers=4,
                attn_logit_softcapping=2.0,
                final_logit_softcapping=5.0,
                rope_parameters=dict(rope_type="default", rope_theta=10000.0),
            ),
            "gemma2",
        ),
        (
            "gemma3",
            transformers.Gemma3TextConfig,
            dict(
                gemma_local(vocab),
                num_hidden_layers=6,
                rope_parameters={
                    "full_attention": dict(rope_type="linear", rope_theta=1_000_000.0, factor=8.0),
                    "sliding_attention": dict(rope_type="default", rope_theta=10_000.0),
                },
            ),
            "gemma3",
        ),
        (
            "phi3",
            transformers.Phi3Config,
            dict(
                d(vocab),
                num_hidden_layers=3,
                original_max_position_embeddings=ORIG_CTX,
                rope_parameters=dict(
                    rope_type="longrope",
                    rope_theta=10000.0,
                    long_factor=long_factor,
                    short_factor=short_factor,
                    original_max_position_embeddings=ORIG_CTX,
                ),
            ),
            "phi3",
        ),
    ]


def reinit(model, gemma_norms):
    """Weights large enough that logits spread widely (HF's 0.02 init makes them nearly tied)."""
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                base = 0.0 if gemma_norms else 1.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=g) * (0.1 if gemma_norms else 1.0))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))


def rope_debug(model):
    out = {}
    for name, mod in model.named_modules():
        for attr in dir(mod):
            if attr.endswith("inv_freq") and not attr.startswith("_"):
                t = getattr(mod, attr, None)
                if isinstance(t, torch.Tensor):
                    out[f"{name}.{attr}"] = [float(x) for x in t.float().cpu()]
            if attr.endswith("attention_scaling"):
                v = getattr(mod, attr, None)
                if isinstance(v, (int, float)):
                    out[f"{name}.{attr}"] = float(v)
                elif isinstance(v, dict):
                    out[f"{name}.{attr}"] = {k: float(x) for k, x in v.items()}
    return out


def llama_permute(w, n_head):
    """llama.cpp's converter reorders q/k rows so RoPE pairs are adjacent."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(path, name, arch, cfg, sd, tok_json, model):
    import gguf

    w = gguf.GGUFWriter(path, arch)
    L = cfg.num_hidden_layers
    hd = cfg.head_dim
    w.add_name(f"depthkv-{name}-tiny")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(L)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_rope_dimension_count(hd)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    rp = cfg.rope_parameters
    glob = rp.get("full_attention", rp) if isinstance(rp, dict) else rp
    w.add_rope_freq_base(float(glob["rope_theta"]))
    rtype = glob.get("rope_type", "default")
    if rtype == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(float(glob["factor"]))
    elif rtype == "yarn":
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(float(glob["factor"]))
        w.add_rope_scaling_orig_ctx_len(int(glob["original_max_position_embeddings"]))
    elif rtype == "longrope":
        w.add_rope_scaling_orig_ctx_len(int(glob["original_max_position_embeddings"]))
        factor = cfg.max_position_embeddings / glob["original_max_position_embeddings"]
        w.add_rope_scaling_attn_factors(math.sqrt(1 + math.log(factor) / math.log(glob["original_max_position_embeddings"])))
    sw = getattr(cfg, "sliding_window", None)
    if sw:
        w.add_sliding_window(int(sw))
    if getattr(cfg, "attn_logit_softcapping", None):
        w.add_attn_logit_softcapping(float(cfg.attn_logit_softcapping))
    if getattr(cfg, "final_logit_softcapping", None):
        w.add_final_logit_softcapping(float(cfg.final_logit_softcapping))

    # Tokenizer, as llama.cpp stores a byte-level BPE.
    vocab = tok_json["model"]["vocab"]
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    specials = {a["id"] for a in tok_json.get("added_tokens", []) if a.get("special")}
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([3 if i in specials else 1 for i in range(len(tokens))])
    merges = tok_json["model"]["merges"]
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)
    w.add_add_bos_token(False)

    gemma = arch.startswith("gemma")

    def t(n):
        return sd[n].astype(np.float32)

    def norm(n):
        x = t(n)
        return x + 1.0 if gemma else x  # llama.cpp stores Gemma's (1 + w)

    w.add_tensor("token_embd.weight", t("model.embed_tokens.weight"))
    w.add_tensor("output_norm.weight", norm("model.norm.weight"))
    if "lm_head.weight" in sd and not cfg.tie_word_embeddings:
        w.add_tensor("output.weight", t("lm_head.weight"))
    if rtype == "llama3":
        # rope_freqs: how much each frequency was divided by (llama.cpp divides by it).
        base = float(glob["rope_theta"])
        default_inv = 1.0 / (base ** (np.arange(0, hd, 2, dtype=np.float32) / hd))
        inv = model.model.rotary_emb.inv_freq.float().cpu().numpy()
        w.add_tensor("rope_freqs.weight", (default_inv / inv).astype(np.float32))
    if rtype == "longrope":
        w.add_tensor("rope_factors_long.weight", np.array(glob["long_factor"], dtype=np.float32))
        w.add_tensor("rope_factors_short.weight", np.array(glob["short_factor"], dtype=np.float32))
    for i in range(L):
        p = f"model.layers.{i}."
        b = f"blk.{i}."
        w.add_tensor(b + "attn_norm.weight", norm(p + "input_layernorm.weight"))
        if arch == "phi3":
            w.add_tensor(b + "attn_qkv.weight", t(p + "self_attn.qkv_proj.weight"))
            w.add_tensor(b + "ffn_up.weight", t(p + "mlp.gate_up_proj.weight"))
        else:
            q, k = t(p + "self_attn.q_proj.weight"), t(p + "self_attn.k_proj.weight")
            if arch == "llama":
                q = llama_permute(q, cfg.num_attention_heads)
                k = llama_permute(k, cfg.num_key_value_heads)
            w.add_tensor(b + "attn_q.weight", q)
            w.add_tensor(b + "attn_k.weight", k)
            w.add_tensor(b + "attn_v.weight", t(p + "self_attn.v_proj.weight"))
            for part in ("q", "k", "v"):
                if p + f"self_attn.{part}_proj.bias" in sd:
                    w.add_tensor(b + f"attn_{part}.bias", t(p + f"self_attn.{part}_proj.bias"))
            w.add_tensor(b + "ffn_gate.weight", t(p + "mlp.gate_proj.weight"))
            w.add_tensor(b + "ffn_up.weight", t(p + "mlp.up_proj.weight"))
        w.add_tensor(b + "attn_output.weight", t(p + "self_attn.o_proj.weight"))
        w.add_tensor(b + "ffn_down.weight", t(p + "mlp.down_proj.weight"))
        if p + "self_attn.q_norm.weight" in sd:
            w.add_tensor(b + "attn_q_norm.weight", norm(p + "self_attn.q_norm.weight"))
            w.add_tensor(b + "attn_k_norm.weight", norm(p + "self_attn.k_norm.weight"))
        if arch in ("gemma2", "gemma3"):
            w.add_tensor(b + "post_attention_norm.weight", norm(p + "post_attention_layernorm.weight"))
            w.add_tensor(b + "ffn_norm.weight", norm(p + "pre_feedforward_layernorm.weight"))
            w.add_tensor(b + "post_ffw_norm.weight", norm(p + "post_feedforward_layernorm.weight"))
        else:
            w.add_tensor(b + "ffn_norm.weight", norm(p + "post_attention_layernorm.weight"))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def build(name, cls, kwargs, arch, out_root, tok_path, prompt, device):
    out = os.path.join(out_root, name)
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    cfg = cls(**kwargs)
    cfg._attn_implementation = "eager"
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="eager")
    reinit(model, arch.startswith("gemma"))
    if cfg.tie_word_embeddings:
        model.tie_weights()
    model.eval().to(device)
    model.save_pretrained(out, safe_serialization=True)
    with open(tok_path) as f:
        tok_json = json.load(f)
    with open(os.path.join(out, "tokenizer.json"), "w") as f:
        json.dump(tok_json, f)
    seq = list(prompt)
    with torch.no_grad():
        # Greedy by plain argmax over a full forward per step: no cache, no generation config.
        for _ in range(GREEDY_TOKENS):
            nxt = model(torch.tensor([seq], device=device), use_cache=False).logits[0, -1]
            seq.append(int(torch.argmax(nxt)))
        fwd = model(torch.tensor([seq], device=device), output_hidden_states=True, use_cache=False)
        logits = fwd.logits[0].float().cpu().numpy()
        hidden = [h[0].float().cpu().numpy() for h in fwd.hidden_states]
    greedy = np.array(seq[len(prompt):], dtype=np.int64)
    # logits: every position of prompt + greedy tokens; row len(prompt) - 1 chose greedy[0].
    ref = {"prompt": np.array(prompt, dtype=np.int64), "logits": logits, "greedy": greedy}
    for i, h in enumerate(hidden):
        ref[f"hidden.{i}"] = h
    save_np(ref, os.path.join(out, "reference.safetensors"))
    sd = {k: v.float().cpu().numpy() for k, v in model.state_dict().items()}
    write_gguf(os.path.join(out, "model.gguf"), name, arch, cfg, sd, tok_json, model)
    meta = {
        "family": name,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "gguf_arch": arch,
        "layer_types": getattr(cfg, "layer_types", None),
        "rope": rope_debug(model),
        "logit_range": [float(logits.min()), float(logits.max())],
    }
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"{name}: ok, logits in [{logits.min():.2f}, {logits.max():.2f}], greedy {greedy[:8].tolist()}..., {len(set(greedy.tolist()))} distinct", flush=True)


def main(src, out_root):
    tok_path = os.path.join(src, "tokenizer.json")
    tok = Tokenizer.from_file(tok_path)
    prompt = tok.encode(PROMPT_TEXT).ids[:PROMPT_TOKENS]
    assert len(prompt) == PROMPT_TOKENS, len(prompt)
    vocab = tok.get_vocab_size()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print("transformers", transformers.__version__, "torch", torch.__version__, "device", device, flush=True)
    failed = []
    only = os.environ.get("FAMILIES")
    for name, cls, kwargs, arch in families(vocab):
        if only and name not in only.split(","):
            continue
        try:
            build(name, cls, kwargs, arch, out_root, tok_path, prompt, device)
        except Exception:
            traceback.print_exc()
            failed.append(name)
    print("failed:", failed)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

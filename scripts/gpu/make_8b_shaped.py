"""Write a Hugging Face folder shaped like Llama-3.1-8B (hidden 4096, 32 heads, 8 KV heads, MLP 14336,
RoPE theta 500000, 128K context) with random bf16 weights, for speed and memory measurements at the
paper's scale. The weights mean nothing: never use it for quality. The vocabulary is the default
model's (49,152 tokens, its tokenizer.json), so prompts tokenize as usual.

usage (GPU machine, repo root): python3 scripts/gpu/make_8b_shaped.py OUT_DIR [LAYERS]
"""

import json
import shutil
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

HIDDEN, HEADS, KV_HEADS, MLP, VOCAB = 4096, 32, 8, 14336, 49152
HEAD_DIM = HIDDEN // HEADS
TOKENIZER = Path(__file__).resolve().parents[2] / "tests/fixtures/smollm2-135m-instruct/tokenizer.json"


def shapes(layers: int):
    yield "model.embed_tokens.weight", (VOCAB, HIDDEN)
    yield "lm_head.weight", (VOCAB, HIDDEN)
    yield "model.norm.weight", (HIDDEN,)
    for i in range(layers):
        p = f"model.layers.{i}."
        yield p + "input_layernorm.weight", (HIDDEN,)
        yield p + "post_attention_layernorm.weight", (HIDDEN,)
        yield p + "self_attn.q_proj.weight", (HEADS * HEAD_DIM, HIDDEN)
        yield p + "self_attn.k_proj.weight", (KV_HEADS * HEAD_DIM, HIDDEN)
        yield p + "self_attn.v_proj.weight", (KV_HEADS * HEAD_DIM, HIDDEN)
        yield p + "self_attn.o_proj.weight", (HIDDEN, HEADS * HEAD_DIM)
        yield p + "mlp.gate_proj.weight", (MLP, HIDDEN)
        yield p + "mlp.up_proj.weight", (MLP, HIDDEN)
        yield p + "mlp.down_proj.weight", (HIDDEN, MLP)


def main(out: str, layers: int) -> None:
    start = time.time()
    dest = Path(out)
    dest.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator(device="cuda").manual_seed(0)
    shard, shard_bytes, index, n = {}, 0, {}, 0

    def flush():
        nonlocal shard, shard_bytes, n
        if shard:
            n += 1
            name = f"model-{n:05d}.safetensors"
            save_file(shard, str(dest / name), metadata={"format": "pt"})
            index.update({k: name for k in shard})
            shard, shard_bytes = {}, 0

    for name, shape in shapes(layers):
        if len(shape) == 1:
            t = torch.ones(shape, dtype=torch.bfloat16)
        else:
            # Small weights keep activations finite through 32 random layers.
            t = (torch.randn(shape, generator=gen, device="cuda", dtype=torch.float32) * 0.02).to(torch.bfloat16).cpu()
        shard[name] = t
        shard_bytes += t.numel() * 2
        if shard_bytes > 4 << 30:
            flush()
    flush()
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": HIDDEN,
        "intermediate_size": MLP, "num_hidden_layers": layers, "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM, "vocab_size": VOCAB,
        "max_position_embeddings": 131072, "rope_theta": 500000.0, "rms_norm_eps": 1e-5,
        "hidden_act": "silu", "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
        "attention_bias": False, "mlp_bias": False, "torch_dtype": "bfloat16",
    }
    (dest / "config.json").write_text(json.dumps(config, indent=1))
    total = sum(2 * int(torch.tensor(s).prod()) for _, s in shapes(layers))
    (dest / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": index}, indent=1))
    shutil.copy(TOKENIZER, dest / "tokenizer.json")
    print(f"wrote {dest} ({layers} layers, {total / 2**30:.1f} GiB) in {time.time() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 32)

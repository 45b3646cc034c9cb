"""The transformers peer: prefill and decode speed of a model folder with sdpa attention in bf16
on the GPU, the stack kvpress runs on. Same protocol as `depthkv bench`: one warm-up, then REPS
repetitions; median with min and max. Decode continues from the prefilled cache.

usage (GPU machine): python3 scripts/gpu/transformers_speed.py MODEL_DIR CTX[,CTX...] OUT.json [REPS] [DECODE]
"""

import json
import statistics
import sys
import time

import torch
from transformers import AutoModelForCausalLM, DynamicCache


def timed(fn):
    torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start, out


def summary(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def main(model_dir, contexts, out_path, reps=3, decode=32):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, attn_implementation="sdpa")
    model = model.cuda().eval()
    results = []
    gen = torch.Generator(device="cuda").manual_seed(1)
    for ctx in contexts:
        ids = torch.randint(100, 40000, (1, ctx), device="cuda", generator=gen)
        torch.cuda.reset_peak_memory_stats()
        prefill, decoding = [], []
        with torch.no_grad():
            for rep in range(reps + 1):
                cache = DynamicCache()
                secs, out = timed(lambda: model(ids, past_key_values=cache, logits_to_keep=1))
                tok = out.logits[:, -1:].argmax(-1)

                def steps():
                    nonlocal tok
                    for _ in range(decode):
                        o = model(tok, past_key_values=cache)
                        tok = o.logits[:, -1:].argmax(-1)

                dsecs, _ = timed(steps)
                if rep > 0:  # the first is the warm-up
                    prefill.append(ctx / secs)
                    decoding.append(decode / dsecs)
                del cache, out
                torch.cuda.empty_cache()
        row = {"context": ctx, "prefill_tps": summary(prefill), "decode_tps": summary(decoding),
               "peak_device_memory_bytes": torch.cuda.max_memory_allocated()}
        print(json.dumps(row), flush=True)
        results.append(row)
    meta = {"peer": "transformers", "version": __import__("transformers").__version__, "torch": torch.__version__,
            "attention": "sdpa", "dtype": "bf16", "gpu": torch.cuda.get_device_name(), "model": model_dir}
    with open(out_path, "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1)


if __name__ == "__main__":
    a = sys.argv
    main(a[1], [int(x) for x in a[2].split(",")], a[3], int(a[4]) if len(a) > 4 else 3, int(a[5]) if len(a) > 5 else 32)

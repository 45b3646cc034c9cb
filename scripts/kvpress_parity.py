#!/usr/bin/env python3
"""Parity of depthkv's uniform SnapKV, StreamingLLM and PyramidKV with NVIDIA kvpress.

Two steps (see docs/kvpress-parity.md for the commands that made the figures):

  run      (GPU machine: torch, transformers, kvpress) replays the prompts of a
           `depthkv eval --preset kvpress-parity --json R.json` report token for
           token through transformers + kvpress and writes, per prompt, method
           and budget: KL to the full cache and top-1 agreement over depthkv's
           own full-cache continuation, the greedy answer, and the kept
           positions per (layer, KV head).
  compare  (anywhere, standard library only) pairs the two files and writes the
           parity tables (Markdown) and their numbers (JSON).

Both tools see the same token ids and score the same continuation tokens, so
differences come from selection and arithmetic alone.
"""

import argparse
import gzip
import json
import math
import os
import statistics
import sys
import tempfile

BUDGETS = (0.1, 0.2, 0.4)
# (depthkv method, kvpress method): what is compared with what.
PAIRS = (
    ("snapkv-kvpress", "snapkv"),
    ("snapkv", "snapkv"),
    ("streaming-kvpress", "streaming"),
    ("pyramid-kvpress", "pyramid"),
    ("pyramid", "pyramid"),
)


def open_json(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def write_atomic(path, text):
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    opener = gzip.open if path.endswith(".gz") else open
    os.close(fd)
    with opener(tmp, "wt", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def contains_any(text, answers):
    t = text.lower()
    return any(a and a.lower() in t for a in answers)


# ----------------------------------------------------------------------------- run (GPU)


def stub_unused_imports():
    """kvpress imports every press at package import; a few pull in packages
    (datasets, fire, cachetools) that only presses we do not use need."""
    import types

    for name in ("datasets", "fire", "cachetools"):
        try:
            __import__(name)
            continue
        except ImportError:
            pass
        m = types.ModuleType(name)
        m.load_dataset = lambda *a, **k: None
        m.LRUCache = lambda *a, **k: {}
        m.cached = lambda *a, **k: (lambda f: f)
        m.Fire = lambda *a, **k: None
        sys.modules[name] = m


def run(args):
    stub_unused_imports()
    import kvpress  # noqa: F401  (patches attention before the model loads)
    import torch
    from kvpress import AdaKVPress, PyramidKVPress, SnapKVPress, StreamingLLMPress
    from kvpress.utils import compute_n_kept
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM, DynamicCache

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model_dir, model_file = os.path.split(os.path.abspath(args.model))
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, gguf_file=model_file, dtype=torch.float32, attn_implementation="sdpa"
    ).to(dev)
    model.eval()
    tok = Tokenizer.from_file(args.tokenizer)
    eos = {i for i in (tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")) if i is not None}
    report = open_json(args.report)
    budgets = [float(b) for b in args.budgets.split(",")]

    def presses(keep):
        cr = 1.0 - keep
        w, k = args.window, args.kernel
        return [
            ("snapkv", SnapKVPress(compression_ratio=cr, window_size=w, kernel_size=k)),
            ("streaming", StreamingLLMPress(compression_ratio=cr)),
            ("pyramid", PyramidKVPress(compression_ratio=cr, window_size=w, kernel_size=k, beta=args.beta)),
            ("adakv", AdaKVPress(SnapKVPress(compression_ratio=cr, window_size=w, kernel_size=k))),
        ]

    def record_kept(press, kept):
        """Wraps a ScorerPress's score so the kept indices of every layer are recorded
        with the same topk call its compress makes on the same scores."""
        inner = press.press if isinstance(press, AdaKVPress) else press
        score = inner.score

        def score_and_record(module, hidden_states, keys, values, attentions, kwargs):
            s = score(module, hidden_states, keys, values, attentions, kwargs)
            if not isinstance(press, AdaKVPress):
                k_len = keys.shape[2]
                if isinstance(press, PyramidKVPress):
                    n = press.get_layer_budget(module, k_len)
                else:
                    n = compute_n_kept(k_len, press.compression_ratio)
                idx = s.topk(n, dim=-1).indices.sort(dim=-1).values[0]
                kept[module.layer_idx] = idx.cpu().tolist()
            return s

        inner.score = score_and_record

    @torch.no_grad()
    def prefill(ids, press):
        cache = DynamicCache()
        x = torch.tensor([ids], device=dev)
        if press is None:
            out = model(input_ids=x, past_key_values=cache, logits_to_keep=1)
        else:
            with press(model):
                out = model(input_ids=x, past_key_values=cache, logits_to_keep=1)
        return cache, out.logits[0, -1].float()

    @torch.no_grad()
    def step(cache, token, pos):
        x = torch.tensor([[token]], device=dev)
        p = torch.tensor([[pos]], device=dev)
        return model(input_ids=x, past_key_values=cache, position_ids=p).logits[0, -1].float()

    def teacher_force(ids, press, continuation):
        cache, first = prefill(ids, press)
        rows = [first]
        for i, t in enumerate(continuation[:-1]):
            rows.append(step(cache, t, len(ids) + i))
        return torch.log_softmax(torch.stack(rows).double(), dim=-1)

    def greedy(ids, press, n):
        cache, logits = prefill(ids, press)
        out = []
        for i in range(n):
            t = int(logits.argmax())
            out.append(t)
            if t in eos:
                break
            logits = step(cache, t, len(ids) + i)
        return out

    meta = {
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "kvpress": getattr(kvpress, "__version__", "0.5.5"),
        "device": torch.cuda.get_device_name(0) if dev == "cuda" else "cpu",
        "dtype": "float32",
        "attention": "sdpa",
        "window": args.window,
        "kernel": args.kernel,
        "pyramid_beta": args.beta,
    }
    prompts = []
    for pi, rec in enumerate(report["per_prompt"]):
        ids, cont = rec["tokens"], rec["continuation"]
        answers = rec.get("answers") or []
        full_lp = teacher_force(ids, None, cont)
        full_ans = tok.decode(greedy(ids, None, args.answer_tokens), skip_special_tokens=True) if answers else None
        runs = [
            {
                "method": "full",
                "budget": 1.0,
                "kl_to_full": 0.0,
                "top1_agreement": 1.0,
                "answer": full_ans,
                "correct": contains_any(full_ans, answers) if answers else None,
                # How often transformers' full cache agrees with depthkv's greedy continuation.
                "continuation_agreement": float(
                    (full_lp.argmax(-1).cpu() == torch.tensor(cont)).double().mean()
                ),
            }
        ]
        for keep in budgets:
            for name, press in presses(keep):
                kept = {}
                record_kept(press, kept)
                try:
                    lp = teacher_force(ids, press, cont)
                    ans = tok.decode(greedy(ids, press, args.answer_tokens), skip_special_tokens=True) if answers else None
                except Exception as e:  # one failing press must not lose the others
                    print(f"{rec['id']} {name} {keep}: {type(e).__name__}: {e}", flush=True)
                    runs.append({"method": name, "budget": keep, "error": f"{type(e).__name__}: {e}"})
                    continue
                kl = float((full_lp.exp() * (full_lp - lp)).sum(-1).mean().clamp(min=0))
                top1 = float((full_lp.argmax(-1) == lp.argmax(-1)).double().mean())
                runs.append(
                    {
                        "method": name,
                        "budget": keep,
                        "kl_to_full": kl,
                        "top1_agreement": top1,
                        "answer": ans,
                        "correct": contains_any(ans, answers) if answers else None,
                        "kept": [kept[i] for i in sorted(kept)] if kept else None,
                    }
                )
        prompts.append({"id": rec["id"], "prompt_tokens": len(ids), "runs": runs})
        print(f"[{pi + 1}/{len(report['per_prompt'])}] {rec['id']} ({len(ids)} tokens)", flush=True)
        # Written after every prompt, so a run cut short still leaves its results.
        write_atomic(args.out, json.dumps({"meta": meta, "per_prompt": prompts}))
    print(f"wrote {args.out}")


# ----------------------------------------------------------------------------- compare


def overlap(ours, theirs):
    """Mean over (layer, KV head) of |ours ∩ theirs| / |theirs|."""
    vals = []
    for lo, lt in zip(ours, theirs):
        for ho, ht in zip(lo, lt):
            if ht:
                vals.append(len(set(ho) & set(ht)) / len(ht))
    return statistics.fmean(vals) if vals else float("nan")


def group(pid):
    return "prose" if pid.startswith("prose") else "tasks"


def mean(xs):
    xs = [x for x in xs if x is not None]
    return statistics.fmean(xs) if xs else float("nan")


def compare(args):
    # Several depthkv reports (e.g. one per prompt) are merged.
    ours = {"per_prompt": [p for path in args.depthkv for p in open_json(path)["per_prompt"]]}
    theirs = open_json(args.kvpress)
    t_by_id = {p["id"]: p for p in theirs["per_prompt"]}
    rows = []
    for d_method, k_method in PAIRS:
        for b in BUDGETS:
            for subset in ("all", "prose", "tasks"):
                cells = []
                for p in ours["per_prompt"]:
                    if subset != "all" and group(p["id"]) != subset:
                        continue
                    tp = t_by_id.get(p["id"])
                    if tp is None:
                        continue
                    o = next((r for r in p["runs"] if r["method"] == d_method and abs(r["budget"] - b) < 1e-9), None)
                    t = next((r for r in tp["runs"] if r["method"] == k_method and abs(r["budget"] - b) < 1e-9 and "error" not in r), None)
                    if o is None or t is None:
                        continue
                    ov = overlap(o["kept"], t["kept"]) if o.get("kept") and t.get("kept") else None
                    correct_o = None
                    if p.get("answers") and o.get("answer") is not None:
                        correct_o = contains_any(o["answer"], p["answers"])
                    cells.append((o, t, ov, correct_o))
                if not cells:
                    continue
                kl_o = mean([c[0]["kl_to_full"] for c in cells])
                kl_t = mean([c[1]["kl_to_full"] for c in cells])
                answered = [c for c in cells if c[3] is not None]
                rows.append(
                    {
                        "depthkv": d_method,
                        "kvpress": k_method,
                        "budget": b,
                        "prompts": subset,
                        "n": len(cells),
                        "kept_overlap": mean([c[2] for c in cells]),
                        "kl_depthkv": kl_o,
                        "kl_kvpress": kl_t,
                        "kl_rel_diff": (kl_o - kl_t) / kl_t if kl_t > 0 else float("nan"),
                        "top1_depthkv": mean([c[0]["top1_agreement"] for c in cells]),
                        "top1_kvpress": mean([c[1]["top1_agreement"] for c in cells]),
                        "answers_depthkv": sum(bool(c[3]) for c in answered),
                        "answers_kvpress": sum(bool(c[1].get("correct")) for c in answered),
                        "answered": len(answered),
                    }
                )
    extra = []
    for b in BUDGETS:
        rs = [r for p in theirs["per_prompt"] for r in p["runs"]
              if r["method"] == "adakv" and abs(r["budget"] - b) < 1e-9 and "error" not in r]
        if rs:
            extra.append({"budget": b, "kl_kvpress": mean([r["kl_to_full"] for r in rs]),
                          "top1_kvpress": mean([r["top1_agreement"] for r in rs]),
                          "answers": sum(bool(r["correct"]) for r in rs if r["correct"] is not None),
                          "answered": sum(r["correct"] is not None for r in rs)})
    agree = mean([r.get("continuation_agreement") for p in theirs["per_prompt"] for r in p["runs"] if r["method"] == "full"])
    summary = {"meta": theirs.get("meta", {}), "continuation_agreement": agree, "rows": rows, "adakv": extra}
    write_atomic(args.out_json, json.dumps(summary, indent=1) + "\n")
    write_atomic(args.out_md, markdown(summary))
    print(markdown(summary))


def selfcheck(args):
    """Our default selection against our kvpress-exact one, inside depthkv alone."""
    prompts = [p for path in args.depthkv for p in open_json(path)["per_prompt"]]
    rows = []
    for ours, exact in (("snapkv", "snapkv-kvpress"), ("pyramid", "pyramid-kvpress")):
        for b in BUDGETS:
            for subset in ("all", "prose", "tasks"):
                ps = [p for p in prompts if subset == "all" or group(p["id"]) == subset]
                pick = lambda p, m: next(r for r in p["runs"] if r["method"] == m and abs(r["budget"] - b) < 1e-9)
                pairs = [(pick(p, ours), pick(p, exact), p.get("answers")) for p in ps]
                answered = [(o, e, a) for o, e, a in pairs if a]
                rows.append({
                    "ours": ours, "kvpress_exact": exact, "budget": b, "prompts": subset, "n": len(pairs),
                    "kept_overlap": mean([overlap(o["kept"], e["kept"]) for o, e, _ in pairs]),
                    "kl_ours": mean([o["kl_to_full"] for o, _, _ in pairs]),
                    "kl_exact": mean([e["kl_to_full"] for _, e, _ in pairs]),
                    "top1_ours": mean([o["top1_agreement"] for o, _, _ in pairs]),
                    "top1_exact": mean([e["top1_agreement"] for _, e, _ in pairs]),
                    "answers_ours": sum(contains_any(o["answer"] or "", a) for o, _, a in answered),
                    "answers_exact": sum(contains_any(e["answer"] or "", a) for _, e, a in answered),
                    "answered": len(answered),
                })
    streaming = {b: mean([next(r for r in p["runs"] if r["method"] == "streaming-kvpress" and abs(r["budget"] - b) < 1e-9)["kl_to_full"]
                          for p in prompts]) for b in BUDGETS}
    out = ["| ours | kvpress-exact | keep | prompts | kept positions identical | KL ours | KL exact | top-1 ours | top-1 exact | answers ours / exact |",
           "|---|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ans = f"{r['answers_ours']}/{r['answered']} vs {r['answers_exact']}/{r['answered']}" if r["answered"] else "–"
        out.append(f"| {r['ours']} | {r['kvpress_exact']} | {r['budget']} | {r['prompts']} ({r['n']}) | {pct(r['kept_overlap'])} | "
                   f"{num(r['kl_ours'])} | {num(r['kl_exact'])} | {pct(r['top1_ours'])} | {pct(r['top1_exact'])} | {ans} |")
    out.append("")
    out.append("StreamingLLM (kvpress-exact, 4 sinks), KL to full: " + ", ".join(f"{b}: {num(v)}" for b, v in streaming.items()) + ".")
    text = "\n".join(out) + "\n"
    write_atomic(args.out_json, json.dumps({"rows": rows, "streaming_kl": streaming}, indent=1) + "\n")
    write_atomic(args.out_md, text)
    print(text)


def pct(x):
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def num(x):
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def markdown(s):
    out = []
    out.append("| depthkv method | kvpress press | keep | prompts | kept positions identical | KL depthkv | KL kvpress | KL diff | top-1 depthkv | top-1 kvpress | answers depthkv / kvpress |")
    out.append("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in s["rows"]:
        diff = "n/a" if math.isnan(r["kl_rel_diff"]) else f"{100 * r['kl_rel_diff']:+.1f}%"
        ans = f"{r['answers_depthkv']}/{r['answered']} vs {r['answers_kvpress']}/{r['answered']}" if r["answered"] else "–"
        out.append(
            f"| {r['depthkv']} | {r['kvpress']} | {r['budget']} | {r['prompts']} ({r['n']}) | {pct(r['kept_overlap'])} | "
            f"{num(r['kl_depthkv'])} | {num(r['kl_kvpress'])} | {diff} | {pct(r['top1_depthkv'])} | {pct(r['top1_kvpress'])} | {ans} |"
        )
    if s["adakv"]:
        out.append("")
        out.append("| kvpress AdaKV (SnapKV scores, safeguard 0.2) | keep | KL | top-1 | answers |")
        out.append("|---|---:|---:|---:|---:|")
        for r in s["adakv"]:
            out.append(f"| adakv | {r['budget']} | {num(r['kl_kvpress'])} | {pct(r['top1_kvpress'])} | {r['answers']}/{r['answered']} |")
    out.append("")
    out.append(f"Full-cache argmax agreement of transformers with depthkv's greedy continuation: {pct(s['continuation_agreement'])}.")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="replay a depthkv parity report through transformers + kvpress")
    r.add_argument("--report", required=True, help="depthkv eval --preset kvpress-parity --json output")
    r.add_argument("--model", required=True, help="the default model's .gguf")
    r.add_argument("--tokenizer", default="tests/fixtures/smollm2-135m-instruct/tokenizer.json")
    r.add_argument("--out", required=True, help="output JSON (.gz to compress)")
    r.add_argument("--budgets", default="0.1,0.2,0.4")
    r.add_argument("--window", type=int, default=32)
    r.add_argument("--kernel", type=int, default=7)
    r.add_argument("--beta", type=int, default=20)
    r.add_argument("--answer-tokens", type=int, default=24)
    c = sub.add_parser("compare", help="pair a depthkv report with a kvpress run")
    c.add_argument("--depthkv", required=True, nargs="+", help="depthkv report(s) with kept positions")
    c.add_argument("--kvpress", required=True)
    c.add_argument("--out-md", required=True)
    c.add_argument("--out-json", required=True)
    sc = sub.add_parser("selfcheck", help="depthkv's default selection against its kvpress-exact one")
    sc.add_argument("--depthkv", required=True, nargs="+")
    sc.add_argument("--out-md", required=True)
    sc.add_argument("--out-json", required=True)
    a = ap.parse_args()
    for key in ("report", "model", "tokenizer", "depthkv", "kvpress"):
        paths = getattr(a, key, None)
        for path in paths if isinstance(paths, list) else [paths]:
            if path is not None and not os.path.exists(path):
                sys.exit(f"{path}: no such file")
    {"run": run, "compare": compare, "selfcheck": selfcheck}[a.cmd](a)


if __name__ == "__main__":
    main()

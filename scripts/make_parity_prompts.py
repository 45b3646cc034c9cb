#!/usr/bin/env python3
"""Builds the prose half of the kvpress parity prompt set from this repo's own
documentation (our text, so it can be stored): per passage one plain
continuation prompt (`prose-cont-*`) and one chat question about a four-digit
code planted once in it (`prose-needle-*`). Output: JSONL on stdout.

    python3 scripts/make_parity_prompts.py > docs/parity/prose.jsonl

The generated-task half comes from `depthkv tasks gen` (see docs/kvpress-parity.md).
"""

import json
import random
import sys

# (name, file, first char, last char): passages of roughly 1.5K-2K tokens.
PASSAGES = (
    ("guide", "docs/user-guide.md", 0, 7000),
    ("guide2", "docs/user-guide.md", 6000, 12500),
    ("format", "docs/profile-format.md", 0, 7000),
    ("perf", "docs/performance.md", 0, 7000),
)
QUESTION = (
    "\n\nQuestion: What is the maintenance code stated in the document above? "
    "Answer with the four-digit number only."
)


def cut_at_sentence(text):
    """Ends the text after its last full stop so a continuation starts a sentence."""
    end = text.rfind(". ")
    return text[: end + 1] if end > len(text) // 2 else text


def plant(text, code, depth):
    """Inserts the code sentence at a paragraph break near `depth` of the text."""
    at = text.find("\n\n", int(len(text) * depth))
    at = len(text) if at < 0 else at
    return text[:at] + f"\n\nThe maintenance code for this document is {code}." + text[at:]


def main():
    rng = random.Random(11)
    out = []
    for i, (name, path, a, b) in enumerate(PASSAGES):
        with open(path, encoding="utf-8") as f:
            text = cut_at_sentence(f.read()[a:b])
        out.append({"id": f"prose-cont-{name}", "prompt": text, "chat": False})
        code = str(rng.randrange(1000, 10000))
        depth = (0.25, 0.5, 0.75, 0.4)[i]
        prompt = "Read the document and answer the question after it.\n\n" + plant(text, code, depth) + QUESTION
        out.append({"id": f"prose-needle-{name}", "prompt": prompt, "answers": [code], "chat": True})
    for item in out:
        sys.stdout.write(json.dumps(item, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()

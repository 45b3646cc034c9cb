"""Builds the SentencePiece tokenizer fixtures that prove depthkv's GGUF SPM rebuild.

Two tiny SentencePiece BPE models (byte fallback on) are trained on a corpus written below:
  llama/  Llama-2 / Mistral layout: <unk>=0 <s>=1 </s>=2, dummy space prefix on.
  gemma/  Gemma layout: <pad>=0 <eos>=1 <bos>=2 <unk>=3, no dummy prefix.
Each gets, in tests/fixtures/spm/NAME/:
  tokenizer.json  the reference, made by transformers' own slow->fast converter
                  (LlamaTokenizerFast / GemmaTokenizerFast with from_slow=True, legacy=True),
                  the converter that produced the tokenizer.json files these families ship;
  tokenizer.gguf  the same tokenizer as llama.cpp's convert_hf_to_gguf.py writes it for SPM
                  models (`_set_vocab_sentencepiece`: tokens, scores, token types from the .model,
                  types overridden by tokenizer_config.json's added tokens; Gemma adds
                  add_space_prefix = false), no tensors;
  expected.json   for each text of a hostile corpus: the reference ids with and without special
                  tokens and the reference decodes, computed here with transformers.
The script also checks that the reference agrees with SentencePiece itself on the plain texts.

Needs sentencepiece, protobuf, gguf and transformers 4.x (transformers 5 rebuilt the SPM
conversion and its LlamaConverter no longer runs from a .model). Run from the repo root:
    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install sentencepiece protobuf gguf "transformers<5"
    /tmp/venv/bin/python scripts/make_spm_fixture.py tests/fixtures/spm
"""

import io
import json
import os
import sys
import tempfile

import gguf
import sentencepiece as spm
from transformers import GemmaTokenizerFast, LlamaTokenizerFast

# Training text: prose, accents, CJK, digits, code with tabs and runs of spaces, newlines.
TRAIN = [
    "The quick brown fox jumps over the lazy dog while the cat sleeps by the window.",
    "Hello world, hello there, well well well: it is what it is, and that is that.",
    "Café, naïve, façade, Ångström, straße, élève, garçon, señor, İstanbul, Œuvre.",
    "日本語のテキストと中文混合。東京は日本の首都です。北京是中国的首都。",
    "한국어 문장도 있어요. 서울은 한국의 수도입니다.",
    "Numbers: 1234567890, 3.14159, 2.71828, -42, 1e-9, 0xFF, 1,000,000 and 2024-01-31.",
    "def add(a, b):\n    return a + b\n\n\tif x  >  y:\n\t\treturn  x\n",
    "for (int i = 0; i < n; i++) {\n    sum += values[i] * 2;\n}\n",
    "Spaces    in   runs  and\ttabs\t\tand\nnew\n\nlines are   part of  the text.",
    "Ελληνικά και Русский текст, also some Deutsch: Größe, Übung, Äpfel.",
    "Machine learning models compress the key value cache by pruning tokens per layer.",
    "Attention sinks keep the first tokens; the observation window keeps the last ones.",
]

# The texts the Rust tests encode: every hazard of the SPM rebuild in one list.
HOSTILE = [
    "",
    " ",
    "  ",
    "Hello",
    " Hello",
    "  Hello  world  ",
    "Hello world\n",
    "\n\nleading newlines",
    "tabs\tand\t\ttabs\t",
    "line one\nline two\r\nline three",
    "   leading and trailing   ",
    "The quick brown fox jumps over the lazy dog.",
    "Café naïve façade Ångström straße İstanbul",
    "e\u0301 versus \u00e9 (combining accent vs precomposed)",
    "日本語のテキスト 中文 한국어",
    "rare CJK forcing bytes: 龘 鱻 麤 𠀋 𪚥",
    "emoji 😀🎉👩‍👩‍👧‍👦 and flags 🇫🇷 ❤️",
    "1234567890 3.14159 -42 1e-9 0xFF 1,000,000",
    "Pi is 3.141592653589793238462643383279502884197169399375105820974944",
    "def f(a, b=2):\n\tif a > b:\n\t\treturn a  # tab\n\n\treturn b\n",
    "<s>",
    "</s>",
    "<s>Hello</s>",
    "text <s> inside </s> and <unk> and <tool> and <pad> too",
    "<bos><eos><unk><pad> gemma specials",
    "a<tool>b<tool> c <ctrl>d",
    "<s not closed </s <s>>",
    "▁ already escaped ▁▁ spaces",
    "!!!??? ... --- *** ((([[[{{{}}}]]]))) @#$%^&*_+=~`|\\/",
    "mixed123abc 4you 2nd 100% $5.00 http://example.com/a?b=c&d=e",
    "\u00a0nbsp and\u2028line separator and\u200bzero width",
    "x" * 60,
    " " * 9 + "nine spaces",
]


def train(path, dummy_prefix, ids, pieces):
    """Train a BPE model with the given special-token layout; returns the processor."""
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TRAIN * 30),
        model_writer=buf,
        model_type="bpe",
        vocab_size=500,
        byte_fallback=True,
        character_coverage=1.0,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=dummy_prefix,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        user_defined_symbols=["<tool>"],
        control_symbols=["<ctrl>"],
        hard_vocab_limit=False,
        minloglevel=2,
        **{f"{k}_id": v for k, v in ids.items()},
        **{f"{k}_piece": v for k, v in pieces.items()},
    )
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return spm.SentencePieceProcessor(model_file=path)


def gguf_vocab(sp, tokenizer_config):
    """Tokens, scores and types as llama.cpp's `_create_vocab_sentencepiece` derives them."""
    n = sp.vocab_size()
    tokens, scores, types = [], [], []
    for i in range(n):
        if sp.is_unknown(i):
            ty = gguf.TokenType.UNKNOWN
        elif sp.is_control(i):
            ty = gguf.TokenType.CONTROL
        elif sp.is_unused(i):
            ty = gguf.TokenType.UNUSED
        elif sp.is_byte(i):
            ty = gguf.TokenType.BYTE
        else:
            ty = gguf.TokenType.NORMAL
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        types.append(ty)
    for tid, data in tokenizer_config.get("added_tokens_decoder", {}).items():
        tid, content = int(tid), data["content"]
        if data.get("special"):
            types[tid] = gguf.TokenType.CONTROL
        else:
            content = content.replace("\u2581", " ")
            types[tid] = gguf.TokenType.USER_DEFINED
        scores[tid] = -1000.0
        tokens[tid] = content
    return tokens, scores, types


def write_gguf(path, sp, hf, tokenizer_config, add_space_prefix):
    tokens, scores, types = gguf_vocab(sp, tokenizer_config)
    tmp = path + ".tmp"
    w = gguf.GGUFWriter(tmp, "llama")
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(hf.bos_token_id)
    w.add_eos_token_id(hf.eos_token_id)
    w.add_unk_token_id(hf.unk_token_id)
    if hf.pad_token_id is not None:
        w.add_pad_token_id(hf.pad_token_id)
    w.add_add_bos_token(bool(tokenizer_config.get("add_bos_token", True)))
    w.add_add_eos_token(bool(tokenizer_config.get("add_eos_token", False)))
    if not add_space_prefix:
        w.add_add_space_prefix(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, path)


def check_against_sentencepiece(sp, hf, name):
    """The reference must tokenize plain text (no special-token markup) as SentencePiece does."""
    bad = []
    for text in TRAIN + [t for t in HOSTILE if "<" not in t]:
        want = sp.encode(text)
        got = hf.encode(text, add_special_tokens=False)
        if got != want:
            bad.append((text, want, got))
    for text, want, got in bad:
        print(f"{name}: transformers differs from sentencepiece on {text!r}:\n  spm {want}\n  hf  {got}")
    return len(bad)


def build(out, name, cls, dummy_prefix, ids, pieces, hf_kwargs):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "tokenizer.model")
        sp = train(model, dummy_prefix, ids, pieces)
        hf = cls(vocab_file=model, from_slow=True, legacy=True, add_bos_token=True, add_eos_token=False, **hf_kwargs)
        hf.save_pretrained(tmp)
        with open(os.path.join(tmp, "tokenizer_config.json"), encoding="utf-8") as f:
            tokenizer_config = json.load(f)
        os.replace(os.path.join(tmp, "tokenizer.json"), os.path.join(d, "tokenizer.json"))
        write_gguf(os.path.join(d, "tokenizer.gguf"), sp, hf, tokenizer_config, dummy_prefix)
        mismatches = check_against_sentencepiece(sp, hf, name)
    cases = []
    for text in HOSTILE:
        with_special = hf.encode(text, add_special_tokens=True)
        without = hf.encode(text, add_special_tokens=False)
        cases.append({
            "text": text,
            "ids": without,
            "ids_with_special": with_special,
            "decode": hf.decode(with_special, skip_special_tokens=False),
            "decode_skip_special": hf.decode(with_special, skip_special_tokens=True),
        })
    expected = {"bos": hf.bos_token_id, "eos": hf.eos_token_id, "unk": hf.unk_token_id,
                "pad": hf.pad_token_id, "vocab_size": sp.vocab_size(), "cases": cases}
    with open(os.path.join(d, "expected.json.tmp"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)
    os.replace(os.path.join(d, "expected.json.tmp"), os.path.join(d, "expected.json"))
    print(f"{name}: {sp.vocab_size()} pieces, {len(cases)} cases, {mismatches} sentencepiece mismatches")
    return mismatches


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/spm"
    bad = build(out, "llama", LlamaTokenizerFast, True,
                {"unk": 0, "bos": 1, "eos": 2, "pad": -1},
                {"unk": "<unk>", "bos": "<s>", "eos": "</s>"}, {"add_prefix_space": True})
    bad += build(out, "gemma", GemmaTokenizerFast, False,
                 {"pad": 0, "eos": 1, "bos": 2, "unk": 3},
                 {"pad": "<pad>", "eos": "<eos>", "bos": "<bos>", "unk": "<unk>"}, {})
    if bad:
        sys.exit(f"{bad} texts differ between the transformers reference and sentencepiece")


if __name__ == "__main__":
    main()

"""Trains the small byte-level BPE tokenizer (512 tokens) shared by the family fixtures.

Small on purpose: the embedding matrix of every tiny checkpoint is vocab x hidden, so a
512-token vocabulary keeps each fixture well under a megabyte. Run from the repo root:
    python3 scripts/train_family_tokenizer.py tests/fixtures/families/tokenizer.json
"""

import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

CORPUS = [
    "The quick brown fox jumps over the lazy dog while the river runs past the old mill.",
    "Sliding windows, soft caps and rotary embeddings: each family of models differs a little.",
    "In the beginning the engine read the prompt once, kept its keys and values, and answered.",
    "Numbers such as 12, 345 and 6789 appear in tables, dates and secret codes alike.",
    "A budget of twenty percent keeps one token in five; the others are pruned away for good.",
    "Layers near the bottom attend broadly; layers near the top look at a few chosen tokens.",
] * 8


def main(out: str) -> None:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.save(out)
    print(out, tok.get_vocab_size())


if __name__ == "__main__":
    main(sys.argv[1])

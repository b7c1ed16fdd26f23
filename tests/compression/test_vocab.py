"""Hard token pruning and the WordPiece tokenizer over a pruned vocabulary."""

import numpy as np
import pytest

from compression.runtime.tokenizer import SPECIALS, build_wordpiece
from compression.vocab.prune import TokenStats, prune_vocab

VOCAB = list(SPECIALS) + ["a", "b", "##a", "##b", "ab", "ba", "abba", "zz"]


class Spy:
    """Stands in for the teacher tokenizer: the coverage report compares against its pieces."""

    def __call__(self, text, truncation, max_length):
        return {"input_ids": [VOCAB.index(t) for t in build_wordpiece(VOCAB, max_length).encode(text).tokens]}

    def convert_ids_to_tokens(self, ids):
        return [VOCAB[i] for i in ids]


def stats(counts: dict, attention: dict) -> TokenStats:
    c, a = np.zeros(len(VOCAB)), np.zeros(len(VOCAB))
    for t, v in counts.items():
        c[VOCAB.index(t)] = v
    for t, v in attention.items():
        a[VOCAB.index(t)] = v
    return TokenStats(c, a)


def test_score_mixes_attention_per_use_and_frequency():
    # abba: 1 use x 9 attention -> sqrt(9 * 1) = 3; ab: 4 uses, 4 attention -> sqrt(1 * 4) = 2; ba: 1 use, 1 -> 1.
    s = stats({"abba": 1, "ab": 4, "ba": 1, "a": 2, "##b": 1}, {"abba": 9, "ab": 4, "ba": 1, "a": 2, "##b": 1})
    forced = len(SPECIALS) + 4  # a, ##a, b, ##b: every character of the corpus, plain and continued
    pruned = prune_vocab(s, VOCAB, forced + 1, 0.5, ["abba ab ba"], Spy(), 16)
    assert pruned.tokens[:len(SPECIALS)] == list(SPECIALS)
    assert set(pruned.tokens[len(SPECIALS):forced]) == {"a", "##a", "b", "##b"}
    assert pruned.tokens[forced:] == ["abba"]
    pruned = prune_vocab(s, VOCAB, forced + 2, 1.0, ["abba ab ba"], Spy(), 16)  # attention per use only
    assert pruned.tokens[forced:] == ["abba", "ab"]


def test_pruned_words_spell_out_of_kept_pieces_and_coverage_says_so():
    s = stats({"abba": 1, "a": 1, "##b": 1}, {"abba": 1, "a": 1, "##b": 1})
    pruned = prune_vocab(s, VOCAB, len(SPECIALS) + 4, 0.5, ["abba"], Spy(), 16)
    tok = build_wordpiece(pruned.tokens, 16)
    assert tok.encode("abba").tokens == ["[CLS]", "a", "##b", "##b", "##a", "[SEP]"]
    assert pruned.report["texts_tokenized_as_teacher"] == 0.0 and pruned.report["unk_rate"] == 0.0
    assert pruned.report["token_coverage"] == pytest.approx(2 / 3)


def test_too_small_a_vocabulary_is_an_error():
    s = stats({"abba": 1}, {"abba": 1})
    with pytest.raises(ValueError, match="below"):
        prune_vocab(s, VOCAB, len(SPECIALS), 0.5, ["abba"], Spy(), 16)


def test_wordpiece_matches_minilm_tokenizer_on_the_real_vocabulary():
    from transformers import AutoTokenizer

    from compression.teacher.minilm import model_dir

    teacher = AutoTokenizer.from_pretrained(model_dir())
    vocab = teacher.convert_ids_to_tokens(list(range(teacher.vocab_size)))
    ours = build_wordpiece(vocab, 32)
    for text in ["Toy Story (1995) Animation Children's Comedy", "Amélie (2001) Romance", "Se7en: naïve test!"]:
        assert ours.encode(text).ids == teacher(text, truncation=True, max_length=32)["input_ids"]
    with pytest.raises(ValueError, match="special"):
        build_wordpiece(["a", "b"], 8)

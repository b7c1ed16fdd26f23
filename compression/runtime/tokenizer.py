"""The BERT-uncased WordPiece tokenizer over any vocabulary, built with HF `tokenizers` (no transformers).

The on-device runtime rebuilds it from the vocabulary stored in the model artifact; the settings are those of
all-MiniLM-L6-v2's tokenizer, so over a pruned vocabulary a word is split into the longest kept sub-words and only
a word that cannot be spelled from kept pieces becomes [UNK].
"""

from __future__ import annotations

from typing import Sequence

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def build_wordpiece(vocab: Sequence[str], max_len: int) -> Tokenizer:
    """A tokenizer producing `[CLS] pieces [SEP]`, truncated to `max_len`; ids index into `vocab`."""
    index = {token: i for i, token in enumerate(vocab)}
    missing = [s for s in SPECIALS if s not in index]
    if missing:
        raise ValueError(f"vocabulary lacks special token(s) {', '.join(missing)}")
    tok = Tokenizer(models.WordPiece(vocab=index, unk_token="[UNK]", continuing_subword_prefix="##",
                                     max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                                lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", index["[CLS]"]), ("[SEP]", index["[SEP]"])])
    tok.enable_truncation(max_len)
    return tok

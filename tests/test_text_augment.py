"""Direction-word swap on the real RefCOCO expressions, WordNet, EDA and its similarity filter."""

from __future__ import annotations

import numpy as np
import pytest

from l2l.data.text_augment import (
    TextAugConfig,
    TextStrongAugmenter,
    WordNet,
    eda_candidates,
    flip_directions,
    is_direction_word,
)


def test_flip_on_real_expressions(real_expressions):
    n_dir = 0
    for e in real_expressions:
        s = e["sent"]
        f = flip_directions(s)
        a, b = s.split(), f.split()
        assert len(a) == len(b)
        has_dir = any(is_direction_word(t) for t in a)
        # every sentence with a direction word changes; no other word does
        assert (f != s) == has_dir, s
        for x, y in zip(a, b):
            if is_direction_word(x):
                assert x != y and is_direction_word(y), (s, x, y)
            else:
                assert x == y, (s, x, y)
        n_dir += has_dir
    assert n_dir > 10000  # 'left'/'right' are everywhere in RefCOCO


def test_flip_examples_and_involution():
    assert flip_directions("man on the left") == "man on the right"
    assert flip_directions("leftmost guy to the right of the dog") == "rightmost guy to the left of the dog"
    assert flip_directions("top-left corner, bottomright cup") == "top-right corner, bottomleft cup"
    assert flip_directions("Left bright upright lamp") == "Right bright upright lamp"
    assert flip_directions("leftover pizza") == "leftover pizza"
    assert flip_directions("rigth guy") == "left guy"
    for s in ("the second from left", "far right player west side"):
        assert flip_directions(flip_directions(s)) == s


@pytest.fixture(scope="module")
def wordnet():
    try:
        return WordNet()
    except FileNotFoundError as e:
        pytest.fail(f"WordNet must be installed by the set-up script: {e}")


def test_wordnet_synonyms(wordnet):
    assert "automobile" in wordnet.synonyms("car")
    assert "large" in wordnet.synonyms("big")
    assert wordnet.synonyms("qwxzv") == ()


def test_eda_operations(wordnet):
    rng = np.random.default_rng(0)
    s = "man in red shirt holding a black umbrella"
    c = eda_candidates(s, wordnet, rng, n=12, alpha=0.2)
    assert len(c) == 12
    words = set(s.split())
    # random swap (op 2) keeps the multiset of words; deletion (op 3) only removes words
    assert sorted(c[2].split()) == sorted(s.split())
    assert set(c[3].split()) <= words and len(c[3].split()) <= len(s.split())
    assert any(set(x.split()) - words for x in (c[0], c[1]))  # replacement / insertion add new words


class _FakeEncoder:
    """Embeds a sentence by its length, so similarities are known in advance."""

    from pathlib import Path

    path = Path("fake")

    def encode(self, sentences):
        out = []
        for s in sentences:
            n = len(s.split())
            v = np.array([1.0, 0.08 * abs(n - 7)])
            out.append(v / np.linalg.norm(v))
        return np.stack(out)


def test_filter_keeps_only_similar_candidates(wordnet):
    aug = TextStrongAugmenter(_FakeEncoder(), wordnet, TextAugConfig(min_similarity=0.999, alpha=0.3))
    s = "man in red shirt with the umbrella"  # 7 words
    pool = aug.survivors(s)
    assert pool[0] == s
    assert all(len(p.split()) == 7 for p in pool)  # length changes lower the similarity below 0.999
    rng = np.random.default_rng(0)
    assert all(aug(s, rng) in pool for _ in range(20))


def test_minilm_filter_end_to_end(wordnet, tmp_path):
    from l2l.data.text_augment import SentenceEncoder

    enc = SentenceEncoder()
    e = enc.encode(["a red car on the left", "a red automobile on the left", "purple elephant dancing"])
    assert e.shape == (3, 384) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    assert e[0] @ e[1] > 0.8 > e[0] @ e[2]
    cache = tmp_path / "pools.json"
    aug = TextStrongAugmenter(enc, wordnet, TextAugConfig(), cache_file=cache)
    sents = ["man in red shirt on the left", "small dog near the bench", "the second car from the right"]
    aug.precompute(sents)
    for s in sents:
        pool = aug.survivors(s)
        emb = enc.encode(pool)
        assert pool[0] == s and np.all(emb @ emb[0] >= 0.8 - 1e-6)
        assert len(pool) <= 10
    # the disk cache is reused by a new augmenter without recomputation
    aug2 = TextStrongAugmenter(enc, wordnet, TextAugConfig(), cache_file=cache)
    assert aug2._pools == aug._pools


def test_eda_commutes_with_flipping(wordnet, real_expressions):
    """The unlabeled loader draws A_s from the original sentence's pool and flips the result;
    that is exact because EDA never edits direction words."""
    sents = [e["sent"] for e in real_expressions if any(is_direction_word(t) for t in e["sent"].split())][:300]
    for i, s in enumerate(sents):
        a = eda_candidates(flip_directions(s), wordnet, np.random.default_rng(i))
        b = [flip_directions(c) for c in eda_candidates(s, wordnet, np.random.default_rng(i))]
        assert a == b, s

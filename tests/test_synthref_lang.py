"""Meaning of SynthRef programs on hand-made scenes, and the parser."""

from __future__ import annotations

import numpy as np
import pytest

from l2l.data.synthref_lang import ParseError, SceneObject, build_program, parse, realise, resolve

M = 8.0  # margin in pixels


def obj(shape, color, x, y, size="medium", texture="solid"):
    return SceneObject(shape, color, size, texture, float(x), float(y))


SCENE = [
    obj("circle", "red", 10, 50),
    obj("circle", "blue", 50, 50),
    obj("circle", "red", 90, 50, "large"),
    obj("star", "blue", 50, 10),
    obj("square", "green", 52, 95),
]


def test_attribute_and_location():
    assert resolve(parse("the large red circle"), SCENE, M) == [2]
    assert resolve(parse("red ball"), SCENE, M) == [0, 2]  # ambiguous
    assert resolve(parse("the leftmost circle"), SCENE, M) == [0]
    assert resolve(parse("circle on the right"), SCENE, M) == [2]
    assert resolve(parse("the topmost blue one"), SCENE, M) == [3]


def test_location_needs_a_clear_gap():
    scene = [obj("circle", "red", 10, 50), obj("circle", "blue", 14, 80)]
    assert len(resolve(parse("leftmost circle"), scene, M)) == 2  # 4 px apart < margin


def test_ordinal_and_relation():
    assert resolve(parse("the second circle from the left"), SCENE, M) == [1]
    assert resolve(parse("the 3rd ball from the right"), SCENE, M) == [0]
    assert resolve(parse("the red circle right of the blue star"), SCENE, M) == [2]
    # the blue circle stands right under the star (within the margin): ambiguous, not unique
    assert len(resolve(parse("the circle right of the blue star"), SCENE, M)) > 1
    assert resolve(parse("the circle below the star"), SCENE, M) == [0, 1, 2]
    assert resolve(parse("the green square below the blue ball"), SCENE, M) == [4]
    assert resolve(parse("circle next to the green square"), SCENE, M) == [1]
    # an anchor that is not unique makes the reference fail
    assert len(resolve(parse("star left of the circle"), SCENE, M)) != 1


def test_parser_rejects_unknown_words():
    with pytest.raises(ParseError):
        parse("the purple elephant")
    with pytest.raises(ParseError):
        parse("")


def test_build_program_round_trip():
    rng = np.random.default_rng(0)
    for t in range(len(SCENE)):
        for kind in ("attribute", "attribute_only", "location", "relation", "ordinal"):
            prog = build_program(kind, t, SCENE, M, rng)
            if prog is None:
                continue
            assert resolve(prog, SCENE, M) == [t]
            for _ in range(5):
                assert resolve(parse(realise(prog, rng)), SCENE, M) == [t]

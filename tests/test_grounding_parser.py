"""The MLLM grounding-answer parser on a corpus of realistic outputs."""

from __future__ import annotations

import pytest

from l2l.foundation.grounding_parser import map_box, parse_boxes

B = (84.0, 120.0, 310.0, 402.0)

CORPUS = [
    # (answer, expected first box or None, expected number of boxes)
    ('```json\n[\n\t{"bbox_2d": [84, 120, 310, 402], "label": "the man in red"}\n]\n```', B, 1),
    ('[{"bbox_2d": [84, 120, 310, 402], "label": "man"}]', B, 1),
    ('{"bbox_2d": [84, 120, 310, 402], "label": "man"}', B, 1),
    (
        'Sure! Here is the location of the referred object:\n```json\n[{"bbox_2d": [84, 120, 310, 402], '
        '"label": "man on the left"}]\n```\nLet me know if you need anything else.',
        B,
        1,
    ),
    ("```json\n[{'bbox_2d': [84, 120, 310, 402], 'label': 'man'}]\n```", B, 1),  # single quotes
    ('```json\n[{"bbox_2d": [84, 120, 310, 402], "label": "man",},]\n```', B, 1),  # trailing commas
    ('```json\n[{"bbox": [84, 120, 310, 402]}]\n```', B, 1),  # other key
    ('```json\n[{"bbox_2d": [310, 402, 84, 120], "label": "man"}]\n```', B, 1),  # swapped corners
    ('```json\n[{"bbox_2d": [84.5, 120.25, 310.0, 402.75], "label": "man"}]\n```', (84.5, 120.25, 310.0, 402.75), 1),
    (
        '```json\n[{"bbox_2d": [84, 120, 310, 402], "label": "man"}, {"bbox_2d": [400, 100, 520, 380], '
        '"label": "man"}]\n```',
        B,
        2,
    ),  # several boxes: the first is the answer
    ("The man in the red shirt is at [84, 120, 310, 402] in the image.", B, 1),  # prose only
    ("```json\n[84, 120, 310, 402]\n```", B, 1),  # bare list
    ('```json\n{"objects": [{"bbox_2d": [84, 120, 310, 402], "label": "man"}]}\n```', B, 1),  # nested
    ('```json\n[{"bbox_2d": [[84, 120, 310, 402]], "label": "man"}]\n```', B, 1),  # doubly wrapped
    (
        "<|object_ref_start|>the man<|object_ref_end|><|box_start|>(136,250),(500,838)<|box_end|>",
        (136.0, 250.0, 500.0, 838.0),
        1,
    ),  # Qwen2-VL tokens
    ('```json\n[{"bbox_2d": [84, 120, 310, 402], "point_2d": [200, 260], "label": "man"}]\n```', B, 1),
    ('```json\n[{"bbox_2d": [-12, 120, 9999, 402], "label": "man"}]\n```', (-12.0, 120.0, 9999.0, 402.0), 1),
    ("```json\n[]\n```", None, 0),  # nothing found
    ("I could not find the described object in the image.", None, 0),
    ("", None, 0),
    ('```json\n[{"bbox_2d": [84, 120, 84, 402], "label": "man"}]\n```', None, 0),  # degenerate
    ('```json\n[{"bbox_2d": [84, 120, 310], "label": "man"}]\n```', None, 0),  # three numbers
    ('```json\n[{"bbox_2d": "84,120,310,402"}]\n```', None, 0),  # a string: not trusted as a box
    ('```json\n[{"label": "man", "bbox_2d": [84, 120, 310, 402]}\n```', B, 1),  # unclosed list: prose fallback
    ("```python\nimport os; os.system('echo hi')\n```\n[84, 120, 310, 402]", B, 1),  # code is never executed
]


@pytest.mark.parametrize("answer,box,n", CORPUS, ids=[f"c{i:02d}" for i in range(len(CORPUS))])
def test_corpus(answer, box, n):
    r = parse_boxes(answer)
    assert r.box == box
    assert len(r.boxes) == n
    if box is None:
        assert r.issues  # the reason is logged


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 20


def test_points_and_frames():
    r = parse_boxes('[{"bbox_2d": [1, 2, 30, 40], "point_2d": [10, 20]}]')
    assert r.points == [(10.0, 20.0)] and r.frame == "pixels"
    assert parse_boxes(CORPUS[14][0]).frame == "qwen2-1000"


def test_map_box_back_to_the_original_image():
    # processed 448×644 (multiples of 28) from an original 480×640 image
    assert map_box((0, 0, 644, 448), (448, 644), (480, 640)) == pytest.approx((0, 0, 640, 480))
    assert map_box((322, 224, 644, 448), (448, 644), (480, 640)) == pytest.approx((320, 240, 640, 480))
    assert map_box((-50, -10, 9999, 100), (448, 644), (480, 640))[0] == 0.0  # clipped
    assert map_box((500, 500, 1000, 1000), (448, 644), (480, 640), frame="qwen2-1000") == pytest.approx(
        (320, 240, 640, 480)
    )
    assert map_box((700, 10, 800, 20), (448, 644), (480, 640)) is None  # entirely outside

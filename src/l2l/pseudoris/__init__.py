"""Pseudo-RIS (ECCV 2024): pseudo-supervision for referring segmentation without human labels.

One module per step of the paper (docs/pseudo_ris.md):

* :mod:`~l2l.pseudoris.masks` — §3.1, automatic masks reduced to a handful per image;
* :mod:`~l2l.pseudoris.sampling` — §3.2, Eqs. 1–3, distinctive caption sampling (+ beam, naive);
* :mod:`~l2l.pseudoris.filtering` — §3.3, Eqs. 4–6, uniqueness, correctness, distinctiveness;
* :mod:`~l2l.pseudoris.generate` — the pipeline, resumable, into a REFER-format dataset;
* :mod:`~l2l.pseudoris.config` — the typed configuration.
"""

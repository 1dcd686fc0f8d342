"""``l2l serve``: trained models on a web page (Gradio), and what the page does without it.

* :mod:`~l2l.serve.session` — served models and one request → one answer per model (no Gradio);
* :mod:`~l2l.models.domain` — is an image far from the model's training domain;
* :mod:`~l2l.serve.card` — the model card shown beside each model;
* :mod:`~l2l.serve.app` — the Gradio page and ``serve()``.

Gradio is imported only by :mod:`~l2l.serve.app`. docs/predict.md.
"""

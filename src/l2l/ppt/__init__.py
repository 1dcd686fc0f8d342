"""PPT (Dai & Yang, CVPR 2024): weakly supervised RES by curriculum point prompting of a frozen dual
encoder and a frozen promptable mask model. See docs/ppt.md."""

from .config import PPTConfig

__all__ = ["PPTConfig"]

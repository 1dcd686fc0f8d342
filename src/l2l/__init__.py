"""l2l: label-efficient referring expression segmentation (L2L, Pseudo-RIS, PPT) with SynthRef."""

__version__ = "0.1.0"

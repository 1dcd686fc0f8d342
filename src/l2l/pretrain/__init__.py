"""The pretraining world: a generated scene pool disjoint from every SynthRef split, and the
stand-in foundation components trained on it (``l2l pretrain ...``)."""

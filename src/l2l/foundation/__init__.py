"""Foundation stand-ins trained in the pretraining world (docs/foundation.md): a promptable mask
model (SAM), an image–text dual encoder (CLIP) and a grounder (an MLLM), each behind the real
model's interface, loaded by path."""

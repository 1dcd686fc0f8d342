"""Segmenter parts: visual encoders, text encoders, fusion, SESM, decoder."""

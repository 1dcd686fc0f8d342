"""Semi-supervised training: methods (strategy objects), SPM, guidance bank, RPLE."""

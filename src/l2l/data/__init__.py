"""The data layer: SynthRef, the REFER loader, label splits, augmentations, datasets."""

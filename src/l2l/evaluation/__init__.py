"""Evaluation below the engine and the priors: the RES metrics (``metrics``), the ``Predictor``
protocol and ``inference_on_dataset`` (``inference``). The mask and box operations every floor
shares (mask IoU, mask → box, box IoU) are one module lower, ``l2l.utils.masks``, because the data
layer (SynthRef's boxes) needs them too.
"""

"""The networks of "Bringing Old Photos Back to Life", with state-dict keys identical to the published files.

One module per network family: :mod:`.detector` (scratch-detection UNet), :mod:`.vae` (VAE_A / VAE_B,
``GlobalGenerator_DCDCv2``), :mod:`.mapping` (latent mapping: quality, non-local scratch, patch-attention HR),
:mod:`.spade` (SPADE face enhancer). :mod:`.builders` has the zero-argument builders the weights registry names.
"""

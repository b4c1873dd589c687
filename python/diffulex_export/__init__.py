"""DiffuLex export toolkit: diffusion-LM checkpoints -> ExecuTorch .pte files.

Example:
    >>> from diffulex_export.models import load_model  # doctest: +SKIP
"""

__version__ = "0.1.0"

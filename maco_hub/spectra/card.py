"""The model card (README.md) of a pushed spectrum: YAML for the Hub, provenance for people.

Every value that reaches the card (metadata keys and values, the file name, the repo id) is
escaped; no template engine ever sees them.
"""

from __future__ import annotations

import json
import re

from .._text import markdown_text
from .._version import __version__
from .spectrum import LOADED_FROM_KEYS, Spectrum

_PLAIN_CODE = re.compile(r"^[\w.+/-]+$")  # shown as inline code by _code


def spectrum_card(spectrum: Spectrum, repo_id: str, name: str) -> str:
    """Model card of a pushed spectrum file ``name`` (a checked repo path) in ``repo_id``."""
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(
        library_name="maco_hub", tags=["maco", "feature-visualization", "spectrum"], license="other"
    )
    rows = "\n".join(
        f"| {_code(k)} | {markdown_text(v)} |"
        for k, v in sorted(spectrum.metadata.items())
        if k not in LOADED_FROM_KEYS
    )
    body = f"""# Natural-image magnitude spectrum for MACO

{_code(name)} holds a float32 tensor `magnitude` of shape {tuple(spectrum.magnitude.shape)}: the mean Fourier
magnitude (rfft2 layout, not fftshifted) of {spectrum.height}×{spectrum.width} images in decorrelated
colour channels, as MACO keeps fixed while it optimizes the phase.

```python
import maco_hub
spectrum = maco_hub.load_spectrum({_literal(repo_id)}, name={_literal(name)})  # sha256 checked on load
```

## Provenance (the file's metadata)

Pushed with maco_hub {__version__}. Values as stored in the file:

| key | value |
|---|---|
{rows}
"""
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}"))


def _literal(value: object) -> str:
    """``value`` as a Python string literal for a code block: JSON's escapes (all ASCII, one
    line) plus ``<``, ``>`` and ``&`` as ``\\u`` escapes, so no markup is in the card at all."""
    text = json.dumps(str(value))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _code(value: object) -> str:
    """``value`` as inline code when it is plain (letters, digits and ``_ . + - /``), else as
    :func:`markdown_text` (a backtick, space or markup never opens or closes a code span)."""
    text = str(value)
    return f"`{text}`" if _PLAIN_CODE.match(text) else markdown_text(text)

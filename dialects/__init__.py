"""irnet's IR dialects (installed as `irnet.dialects`).

Importing the package registers the `nn` dialect's canonicalisation patterns, so that any
code that builds or rewrites `nn` IR sees them.
"""

from . import nn_patterns  # noqa: F401

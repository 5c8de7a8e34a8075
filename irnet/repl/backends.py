"""The REPL's targets, and where the compiled ones come from: `reference` is the NumPy
interpreter (`irnet/reference.py`); `cpu` and `cuda` are backends registered with xDSL through
irnet's plug-in (`IRNET_UNIVERSE.all_targets` in `irnet/universe.py`, the registry `xdsl-opt -t`
uses). A backend is an `xdsl.utils.target.Target`: it emits source with
`emit(ctx, module, out)`, and one that also has `run(module, function, args, seed=...)` can
evaluate REPL inputs, as irnet's Numba cpu and cuda backends do."""

from __future__ import annotations

from typing import Any

from irnet.diagnostics import IrnError
from irnet.universe import IRNET_UNIVERSE

TARGETS = ("reference", "cpu", "cuda")
BACKEND_NAMES = {"cpu": ("numba-cpu", "cpu", "numba"), "cuda": ("numba-cuda", "cuda")}
"""The names a compiled target's backend may be registered under, the first found winning."""


def find_backend(target: str) -> Any:
    """The backend registered for a compiled target (`cpu` or `cuda`), ready to use."""
    registered = IRNET_UNIVERSE.all_targets
    for name in BACKEND_NAMES[target]:
        if name in registered:
            return registered[name]()()
    raise IrnError(
        f"the {target} target is not available yet: no backend named "
        f"{' or '.join(BACKEND_NAMES[target])} is registered with irnet's xDSL plug-in. "
        "Until one lands, :ir NAME shows the IR it would compile, and expressions run on the "
        "reference target."
    )

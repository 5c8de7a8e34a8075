"""irnet's plug-in for xDSL's tools (entry point `xdsl.universe`): with irnet installed, stock
`xdsl-opt examples/mnist_mlp.irn -p inline-functions,canonicalize,cse` parses `.irn` files and
knows the `nn` dialect and irnet's passes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.universe import Universe
from xdsl.utils.exceptions import DiagnosticException
from xdsl.utils.frontend import Frontend

from . import driver
from .errors import IrnError


@dataclass(frozen=True)
class IrnFrontend(Frontend):
    """Reads `.irn` source through irnet's frontend."""

    name = "irn"

    def parse(self, ctx: Context, input: IO[bytes], input_name: str) -> ModuleOp:
        text = input.read().decode("utf-8", errors="replace")
        try:
            return driver.compile_source(text, input_name, Path(input_name)).module
        except IrnError as e:
            raise DiagnosticException(str(e)) from None


def _nn_dialect():
    from irnet.dialects.nn import NN

    return NN


def _ad_dialect():
    from irnet.dialects.ad import AD

    return AD


def _dist_dialect():
    from irnet.dialects.dist import DIST

    return DIST


IRNET_UNIVERSE = Universe(
    all_dialects={"nn": _nn_dialect, "ad": _ad_dialect, "dist": _dist_dialect},
    all_passes={name: driver.PASSES[name] for name in driver.IRNET_PASSES},
    all_frontends={"irn": lambda: IrnFrontend},
)

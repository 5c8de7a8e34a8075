"""irnet: a neural-network compiler from `.irn` models to Numba code, through xDSL IR.

As a library (`irnet.model`):

    import irnet
    model = irnet.load("examples/mnist_mlp.irn")
    model.fit(x_train, y_train, epochs=3)
    model.predict(x_test)

The names below are imported on first use, so that `irnet`'s command line starts without
loading what it does not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from irnet.version import __version__

_EXPORTS = {
    "load": "irnet.model",
    "loads": "irnet.model",
    "load_data": "irnet.model",
    "load_onnx": "irnet.onnx_import",
    "Model": "irnet.model",
    "Function": "irnet.model",
    "Signature": "irnet.model",
    "Tensors": "irnet.model",
    "LoadReport": "irnet.model",
    "Callback": "irnet.callbacks",
    "History": "irnet.callbacks",
    "EarlyStopping": "irnet.callbacks",
    "ModelCheckpoint": "irnet.callbacks",
    "JsonLog": "irnet.callbacks",
}
_EXPORTS["Error"] = "irnet.diagnostics:IrnError"

__all__ = [  # what _EXPORTS names, spelled out for type checkers and linters
    "Callback", "EarlyStopping", "Error", "Function", "History", "JsonLog", "LoadReport",
    "Model", "ModelCheckpoint", "Signature", "Tensors", "__version__", "load", "load_data",
    "load_onnx", "loads",
]  # fmt: skip

if TYPE_CHECKING:
    from irnet.callbacks import Callback, EarlyStopping, History, JsonLog, ModelCheckpoint
    from irnet.diagnostics import IrnError as Error
    from irnet.model import (
        Function,
        LoadReport,
        Model,
        Signature,
        Tensors,
        load,
        load_data,
        loads,
    )
    from irnet.onnx_import import load_onnx


def __getattr__(name: str) -> Any:
    where = _EXPORTS.get(name)
    if where is None:
        raise AttributeError(f"module 'irnet' has no attribute '{name}'")
    module, _, attribute = where.partition(":")
    value = getattr(importlib.import_module(module), attribute or name)
    globals()[name] = value
    return value

"""Shape algebra shared by the `nn` ops' type-inference rules.

Shapes are tuples of ints; a dynamic dimension (`?` in the IR, a symbolic dim such as `N`
in `.irn`) is `DYN`. Every rule raises `ShapeError` with a message that names both shapes,
which the frontend turns into a located `file:line:col: error:` and the verifier into a
`VerifyException`.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import DYNAMIC_INDEX, Float32Type, Float64Type, IntegerType, TensorType
from xdsl.ir import Attribute

# The frontend and the summaries import `dtype_name` from here, beside `format_type`.
from .dtypes import dtype_name as dtype_name

DYN = DYNAMIC_INDEX
Shape = tuple[int, ...]


class ShapeError(Exception):
    """A type or shape rule was violated; the message is user-facing."""


def format_shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join("?" if d == DYN else str(d) for d in shape) + "]"


def format_type(t: Attribute) -> str:
    """`f32[?, 784]`: the spelling a `.irn` author wrote, used in every error message."""
    if isinstance(t, TensorType):
        return dtype_name(t.element_type) + format_shape(t.get_shape())
    return str(t)


def is_float(t: TensorType) -> bool:
    return isinstance(t.element_type, Float32Type | Float64Type)


def is_int(t: TensorType) -> bool:
    return isinstance(t.element_type, IntegerType) and t.element_type.width.data > 1


def is_bool(t: TensorType) -> bool:
    return isinstance(t.element_type, IntegerType) and t.element_type.width.data == 1


def dims_compatible(a: int, b: int) -> bool:
    return DYN in (a, b) or a == b


def shapes_compatible(a: Sequence[int], b: Sequence[int]) -> bool:
    return len(a) == len(b) and all(dims_compatible(x, y) for x, y in zip(a, b, strict=True))


def broadcast_shapes(*shapes: Sequence[int]) -> Shape:
    """NumPy broadcasting on types; a `?` against a static `k != 1` must be `k` at run time
    (a `?` never stretches: see the `nn` module docstring)."""
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    result = []
    for dims in zip(*padded, strict=True):
        static = {d for d in dims if d not in (1, DYN)}
        if len(static) > 1:
            raise ShapeError(
                "cannot broadcast shapes " + " and ".join(format_shape(s) for s in shapes)
            )
        if static:
            result.append(static.pop())
        elif DYN in dims:
            result.append(DYN)
        else:
            result.append(1)
    return tuple(result)


def normalize_axis(axis: int, rank: int, what: str = "axis") -> int:
    if not -rank <= axis < max(rank, 1):
        raise ShapeError(f"{what} {axis} is out of range for a tensor of rank {rank}")
    return axis % rank if rank else 0


def num_elements(shape: Sequence[int]) -> int | None:
    """The element count, or None when a dimension is dynamic."""
    if DYN in shape:
        return None
    count = 1
    for d in shape:
        count *= d
    return count


def static_product(shape: Sequence[int]) -> int:
    count = 1
    for d in shape:
        if d != DYN:
            count *= d
    return count


def window_span(kernel: int, dilation: int = 1) -> int:
    """The input positions a (dilated) window covers along one axis."""
    return dilation * (kernel - 1) + 1


def window_output_size(size: int, kernel: int, stride: int, pad: int, dilation: int = 1) -> int:
    """Output length of a convolution or pooling window along one spatial axis (the one formula:
    the emitters write `(size + 2 * pad - span) // stride + 1` from `window_span` too)."""
    if size == DYN:
        return DYN
    span = window_span(kernel, dilation)
    out = (size + 2 * pad - span) // stride + 1
    if out < 1:
        raise ShapeError(
            f"window of size {span} (kernel {kernel}, dilation {dilation}) does not fit "
            f"an input of size {size} with padding {pad}"
        )
    return out


def window_input_size(
    out: int, kernel: int, stride: int, pad: int, dilation: int = 1
) -> int | None:
    """The input length a window op maps to `out`, when only one does (stride 1)."""
    return out - 1 + window_span(kernel, dilation) - 2 * pad if stride == 1 else None

"""The geometry of a sliding window (convolution or pooling) and padding.

Notation: x (N, C, H, W); window KH × KW at stride (sh, sw), padding (ph, pw),
dilation (dil_h, dil_w); output positions OH × OW. Window (i, j) reads rows
sh·i + dil_h·u and columns sw·j + dil_w·v of the padded input, for each kernel
tap (u, v).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from cnnbook.backend import device_of


class ConvGeometry(NamedTuple):
    """A sliding window's shapes (convolution or pooling), computed and checked
    once. For pooling F = C and dilation = (1, 1)."""

    N: int
    C: int
    H: int
    W: int
    F: int
    KH: int
    KW: int
    OH: int
    OW: int
    stride: tuple[int, int]
    padding: tuple[int, int]  # top, left (and bottom, right unless pad_end)
    dilation: tuple[int, int]
    groups: int = 1  # convolution: channels in groups, C/groups per filter
    pad_end: tuple[int, int] | None = None  # bottom, right when they differ

    @property
    def pads(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) padding."""
        (top, left), end = self.padding, self.pad_end
        bottom, right = end if end is not None else (top, left)
        return top, bottom, left, right


def pad(xp: Any, x: Any, ph: int, pw: int, fill: float = 0.0) -> Any:
    """x (N, C, H, W) -> (N, C, H + 2ph, W + 2pw), border filled with ``fill``."""
    if ph == 0 and pw == 0:
        return x
    N, C, H, W = x.shape
    out = xp.full(
        (N, C, H + 2 * ph, W + 2 * pw), fill, dtype=x.dtype, device=device_of(x)
    )
    out[:, :, ph : ph + H, pw : pw + W] = x
    return out


def pad_sides(
    xp: Any, x: Any, top: int, bottom: int, left: int, right: int, fill=0.0
) -> Any:
    """x (N, C, H, W) -> (N, C, H + top + bottom, W + left + right)."""
    if top == bottom and left == right:
        return pad(xp, x, top, left, fill)
    N, C, H, W = x.shape
    out = xp.full(
        (N, C, H + top + bottom, W + left + right),
        fill,
        dtype=x.dtype,
        device=device_of(x),
    )
    out[:, :, top : top + H, left : left + W] = x
    return out


def window(geo: ConvGeometry, u: int, v: int) -> tuple[slice, slice]:
    """Rows and columns of the padded input that kernel tap (u, v) touches."""
    (sh, sw), (dil_h, dil_w) = geo.stride, geo.dilation
    r0, c0 = u * dil_h, v * dil_w
    return (
        slice(r0, r0 + sh * (geo.OH - 1) + 1, sh),
        slice(c0, c0 + sw * (geo.OW - 1) + 1, sw),
    )

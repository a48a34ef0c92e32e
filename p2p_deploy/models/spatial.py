"""Frame sizes: what a model takes, and the spatial profile an export is built for.

The U-Net is fully convolutional: with ``n_down`` stride-2 downsamplings it runs on any height
and width that are multiples of its *stride* ``2**n_down`` (256 for the paper's ``unet_256``,
whose bottleneck is then larger than 1x1). Sizes are written ``HxW`` (height first, as NCHW
tensors and ``720x1280`` for a 720p frame) or ``S`` for a square.

* :class:`SizeRange`: the frame sizes one runner accepts (multiples of its stride from ``min``
  to ``max``; ``max`` None: no bound but memory). A fixed-square model accepts exactly S x S.
* :class:`SpatialProfile`: the MIN:OPT:MAX sizes of an export with dynamic height and width
  (``p2p export --spatial``), kept in its card; TensorRT builds its optimisation profile from
  it, OpenVINO reshapes within it, INT8 is calibrated and gated at its sizes.

Nothing here imports torch or numpy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from p2p_deploy.errors import P2PError

Size = tuple[int, int]  # (height, width)

_SIZE = re.compile(r"^\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*$")


def parse_size(text: str, what: str = "size") -> Size:
    """``"720x1280"`` -> (720, 1280); ``"256"`` -> (256, 256).

    Raises:
        P2PError: not ``HxW`` or ``S`` with positive whole numbers (names ``what``).
    """
    m = _SIZE.match(str(text))
    if not m:
        raise P2PError(f"{what} {text!r}: expected HxW (e.g. 720x1280) or S for a square.")
    h = int(m.group(1))
    w = int(m.group(2)) if m.group(2) is not None else h
    if h < 1 or w < 1:
        raise P2PError(f"{what} {text!r}: height and width must be positive.")
    return h, w


def format_size(size: Size) -> str:
    """(720, 1280) -> ``"720x1280"``."""
    return f"{size[0]}x{size[1]}"


def round_up(n: int, stride: int) -> int:
    """The smallest multiple of ``stride`` that is at least ``n``."""
    return -(-n // stride) * stride


def round_down(n: int, stride: int) -> int:
    """The largest multiple of ``stride`` that is at most ``n`` (at least ``stride``)."""
    return max(stride, n // stride * stride)


def padded_size(size: Size, stride: int, minimum: Size = (1, 1)) -> Size:
    """``size`` padded up to multiples of ``stride`` and at least ``minimum``: the size a frame
    is run at by ``p2p run --resize native`` (720x1280 at stride 256 -> 768x1280)."""
    return (
        max(round_up(size[0], stride), minimum[0]),
        max(round_up(size[1], stride), minimum[1]),
    )


def fits(size: Size, limit: Size) -> bool:
    """True when ``size`` is no larger than ``limit`` in both dimensions."""
    return size[0] <= limit[0] and size[1] <= limit[1]


@dataclass(frozen=True)
class SizeRange:
    """The frame sizes a runner accepts: multiples of ``stride`` from ``min`` to ``max``
    (each ``(height, width)``; ``max`` None: no bound but memory).

    A fixed-square model: ``SizeRange.square(S)`` (exactly S x S).
    """

    min: Size
    max: Size | None
    stride: int = 1

    @classmethod
    def square(cls, size: int) -> SizeRange:
        return cls((size, size), (size, size), size)

    @property
    def fixed(self) -> bool:
        """True when exactly one size is accepted."""
        return self.max == self.min

    def accepts(self, size: Size) -> bool:
        h, w = size
        s = self.stride
        if h % s or w % s or not fits(self.min, (h, w)):
            return False
        return self.max is None or fits((h, w), self.max)

    def describe(self) -> str:
        """``exactly 256x256``, ``multiples of 32 from 64x64 to 512x512``, ``multiples of 256
        from 256x256 up`` (no bound)."""
        if self.fixed:
            return f"exactly {format_size(self.min)}"
        upper = f"to {format_size(self.max)}" if self.max is not None else "up"
        return f"multiples of {self.stride} from {format_size(self.min)} {upper}"

    def refusal(self, size: Size) -> str:
        """Why ``size`` is not accepted, in words (for one-line errors)."""
        return f"{format_size(size)} is not among the sizes it takes ({self.describe()})"


@dataclass(frozen=True)
class SpatialProfile:
    """MIN:OPT:MAX frame sizes of an export with dynamic height and width (see the module
    docstring). ``min <= opt <= max`` in both dimensions, all multiples of the stride."""

    min: Size
    opt: Size
    max: Size

    def sizes(self) -> tuple[Size, Size, Size]:
        return (self.min, self.opt, self.max)

    def to_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    def describe(self) -> str:
        """``256x256:768x1280:1280x2048``."""
        return ":".join(format_size(s) for s in self.sizes())

    def size_range(self, stride: int) -> SizeRange:
        return SizeRange(self.min, self.max, stride)

    def check(self, stride: int, what: str = "--spatial") -> SpatialProfile:
        """``self`` when every size is a multiple of ``stride`` and min <= opt <= max.

        Raises:
            P2PError: naming the size and the nearest sizes that would do.
        """
        for name, (h, w) in zip(("MIN", "OPT", "MAX"), self.sizes(), strict=True):
            if h % stride or w % stride:
                near = f"{round_up(h, stride)}x{round_up(w, stride)}"
                raise P2PError(
                    f"{what} {self.describe()}: {name} {h}x{w} is not a multiple of the model's "
                    f"stride {stride} (2**downsamplings); use e.g. {near}."
                )
        if not (fits(self.min, self.opt) and fits(self.opt, self.max)):
            raise P2PError(
                f"{what} {self.describe()}: expected MIN <= OPT <= MAX in height and width."
            )
        return self

    @classmethod
    def parse(cls, text: str, what: str = "--spatial") -> SpatialProfile:
        """``"256:768x1280:1280x2048"`` (each ``HxW`` or ``S``); one size means MIN = OPT = MAX.

        Raises:
            P2PError: not one or three sizes, or MIN <= OPT <= MAX does not hold.
        """
        parts = str(text).strip().split(":")
        if len(parts) == 1:
            parts = parts * 3
        if len(parts) != 3:
            raise P2PError(
                f"{what} {text!r}: expected MIN:OPT:MAX, each HxW or S "
                "(e.g. 256:768x1280:1280x2048)."
            )
        lo, opt, hi = (parse_size(p, what) for p in parts)
        profile = cls(lo, opt, hi)
        if not (fits(lo, opt) and fits(opt, hi)):
            raise P2PError(f"{what} {text!r}: expected MIN <= OPT <= MAX in height and width.")
        return profile

    @classmethod
    def from_dict(cls, d: object, where: str) -> SpatialProfile:
        """From a card's ``{"min": [h, w], "opt": [h, w], "max": [h, w]}``.

        Raises:
            P2PError: any other shape of value (naming ``where``).
        """
        bad = P2PError(
            f"{where}: field 'spatial_profile' must be an object of min, opt and max, each "
            f"[height, width], got {str(d)[:60]!r}."
        )
        if not isinstance(d, dict) or set(d) != {"min", "opt", "max"}:
            raise bad
        sizes = []
        for key in ("min", "opt", "max"):
            v = d[key]
            if (
                not isinstance(v, list)
                or len(v) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v)
            ):
                raise bad
            sizes.append((v[0], v[1]))
        lo, opt, hi = sizes
        if not (fits(lo, opt) and fits(opt, hi)):
            raise bad
        return cls(lo, opt, hi)

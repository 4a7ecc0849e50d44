"""The geometry of the network's input: how a decoded image becomes a square of pixels.

Two shapes, as the networks' own evaluation transforms have them:

* a **square resize** (``resize=None``): the whole image is resized to ``crop x crop``
  with Pillow's bilinear filter, no crop (an explicit ``image_size``, the small CNN,
  your own ``module``, a torchvision architecture without weights);
* a **resize then centre crop**: the shorter side is resized to ``resize`` pixels
  (the aspect ratio kept; with ``keep_ratio=False`` both sides, timm's "squash"), then
  the centre ``crop x crop`` square is cut, with the network's interpolation. This is
  torchvision's ``weights.transforms()`` (``Resize(256)``, ``CenterCrop(224)``) and
  timm's ``pretrained_cfg`` (``floor(input_size / crop_pct)``, then ``input_size``),
  pixel for pixel on decoded images (both apply torchvision's ``resize`` and
  ``center_crop`` to the PIL image).
"""

from dataclasses import asdict, dataclass

from PIL import Image

#: interpolation names (torchvision's ``InterpolationMode`` values, timm's strings) -> PIL's
INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


@dataclass(frozen=True)
class Geometry:
    """How a decoded RGB image is brought to the ``crop x crop`` square the network takes.

    Attributes
    ----------
    crop : int
        The side of the square the network gets.
    resize : int or None, default=None
        The shorter side (both sides with ``keep_ratio=False``) before the centre
        crop; None resizes the whole image to ``crop x crop`` (bilinear, no crop).
    interpolation : str, default="bilinear"
        A key of :data:`INTERPOLATIONS`.
    keep_ratio : bool, default=True
        Whether the resize keeps the aspect ratio (timm's ``crop_mode="squash"`` does not).
    """

    crop: int
    resize: int | None = None
    interpolation: str = "bilinear"
    keep_ratio: bool = True

    def __post_init__(self):
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"Unknown interpolation {self.interpolation!r}; one of {sorted(INTERPOLATIONS)}."
            )
        sides = (self.crop,) if self.resize is None else (self.crop, self.resize)
        if not all(isinstance(side, int) and not isinstance(side, bool) for side in sides):
            raise ValueError(f"A geometry's crop and resize are ints; got {self!r}.")
        if self.crop < 1 or (self.resize is not None and self.resize < self.crop):
            raise ValueError(f"A geometry needs 1 <= crop <= resize; got {self!r}.")
        if not isinstance(self.keep_ratio, bool):
            raise ValueError(f"A geometry's keep_ratio is True or False; got {self!r}.")

    @classmethod
    def of(cls, value):
        """A geometry from an ``image_size`` int (a square resize), a record or a geometry."""
        if isinstance(value, Geometry):
            return value
        if isinstance(value, dict):
            return cls(**value)
        return cls(int(value))

    @property
    def is_square_resize(self):
        return self.resize is None

    @property
    def key(self):
        """The part of a cache key that tells this geometry from others: ``crop`` itself
        for a square resize (the key of every version before centre crops)."""
        if self.is_square_resize:
            return int(self.crop)
        ratio = "" if self.keep_ratio else " squash"
        return f"resize {self.resize}{ratio} crop {self.crop} {self.interpolation}"

    def draft_size(self):
        """The size below which a JPEG must not be decoded (``Image.draft``)."""
        side = self.crop if self.resize is None else self.resize
        return side, side

    def apply(self, image):
        """``image`` (PIL, RGB) resized (and centre-cropped) to ``crop x crop``."""
        size = (self.crop, self.crop)
        if self.is_square_resize:
            if image.size != size:
                image = image.resize(size, Image.Resampling.BILINEAR)
            return image
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as F

        mode = InterpolationMode(self.interpolation)
        target = self.resize if self.keep_ratio else [self.resize, self.resize]
        image = F.resize(image, target, interpolation=mode, antialias=True)
        return F.center_crop(image, [self.crop, self.crop])

    def record(self):
        """The geometry as a JSON object (``config.json``, the saved model)."""
        return asdict(self)

    def describe(self):
        """In words, for ``config.json`` and the plan."""
        if self.is_square_resize:
            return f"resize to {self.crop} x {self.crop} (bilinear, no crop)"
        sides = "the shorter side" if self.keep_ratio else "both sides"
        return (
            f"resize {sides} to {self.resize} ({self.interpolation}), "
            f"centre crop {self.crop} x {self.crop}"
        )

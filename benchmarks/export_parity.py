"""Does an exported centre-crop model predict as ``predict_proba``? Every filter, every format.

A tiny timm network (``test_efficientnet``, no weights) whose ``pretrained_cfg`` asks for a
24 px centre crop of a 32 px resize, with each interpolation and crop mode the geometry
allows and several normalizations, is fitted for one epoch on 64 small images, exported
to TorchScript, ``torch.export`` and ONNX (when onnxruntime is installed), and run on 12
new images: portrait, landscape, square and smaller than the crop. Printed per model and
format: the largest difference of a probability to ``predict_proba`` and whether the
labels equal ``predict``'s.

Run from the repository root (about 3 minutes of CPU on 2 cores)::

    PYTHONPATH=. python benchmarks/export_parity.py
"""

import os
import tempfile
import warnings

import numpy as np
import torch
from PIL import Image

from imbal_estimators import ImageImbalanceClassifier, load_image_folder

SHAPES = [(50, 30), (30, 50), (40, 40), (12, 20)]
MODELS = [
    ("bicubic", "center", "inception"),
    ("bilinear", "squash", "auto"),
    ("lanczos", "center", None),
    ("nearest", "center", "auto"),
    ("box", "center", "auto"),
    ("hamming", "squash", "auto"),
]


def write(path, shape, color, rng):
    pixels = np.clip(np.asarray(color) + rng.normal(0, 40, (*shape, 3)), 0, 255)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8), "RGB").save(path)
    return path


def model(interpolation, crop_mode, normalize):
    overlay = dict(input_size=(3, 24, 24), crop_pct=0.75, interpolation=interpolation)
    return ImageImbalanceClassifier(
        backbone="timm/test_efficientnet",
        weights=None,
        normalize=normalize,
        max_epochs=1,
        device="cpu",
        precision="fp32",
        verbose=0,
        random_state=0,
        module__pretrained_cfg_overlay={**overlay, "crop_mode": crop_mode},
    )


def run(path, fmt, images):
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        return session.run(None, {"images": images.numpy()})
    module = torch.export.load(path).module() if fmt == "pt2" else torch.jit.load(path)
    return [t.numpy() for t in module(images)]


def main():
    warnings.filterwarnings("ignore")
    root, rng = tempfile.mkdtemp(), np.random.default_rng(0)
    colors = {"cat": (220, 40, 40), "dog": (40, 40, 220)}
    for name, n in (("cat", 48), ("dog", 16)):
        for i in range(n):
            write(f"{root}/train/{name}/{i}.png", (20, 20), colors[name], rng)
    X, y = load_image_folder(f"{root}/train")
    new = [
        write(f"{root}/new/{i}.png", s, colors["cat" if i % 2 else "dog"], rng)
        for i, s in enumerate(SHAPES * 3)
    ]
    formats = ["torchscript", "pt2"]
    try:
        import onnxruntime  # noqa: F401

        formats.append("onnx")
    except ImportError:
        pass
    for interpolation, crop_mode, normalize in MODELS:
        clf = model(interpolation, crop_mode, normalize).fit(X, y)
        expected, labels = clf.predict_proba(new), clf.predict(new)
        for fmt in formats:
            path = clf.export(f"{root}/{interpolation}.{fmt}", format=fmt)
            worst, equal = 0.0, True
            for i, image_path in enumerate(new):
                image = np.array(Image.open(image_path).convert("RGB"))
                proba, index = run(path, fmt, torch.from_numpy(image).permute(2, 0, 1)[None])
                worst = max(worst, float(np.abs(proba[0] - expected[i]).max()))
                equal &= bool(clf.classes_[index[0]] == labels[i])
            print(
                f"{interpolation:8s} {crop_mode:6s} normalize={normalize!s:9s} {fmt:11s} "
                f"max |p - predict_proba| = {worst:.1e}  labels equal: {equal}",
                flush=True,
            )


if __name__ == "__main__":
    main()

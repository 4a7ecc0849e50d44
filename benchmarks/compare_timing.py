"""Wall time of ``imbal-estimators compare --freeze-backbone`` on a user-sized folder.

Writes an ImageFolder of 1,000 + 300 JPEG photos (256 x 256, noise plus random
shapes, class "rare" drawn brighter) and a resnet34 weights file (a random
initialization saved with ``torch.save``: the cost is that of ImageNet weights)
into a temporary directory, then runs, in this process and timed::

    imbal-estimators compare DATA --out OUT --freeze-backbone --weights resnet34.pth --cv 5

(224 px, the estimator's other defaults, the full default method set) and prints the
wall time with the cumulative time of its biggest parts (cProfile).

With ``--bare`` it then runs, on the same images and network, a bare PyTorch loop:
decode and resize every image once, forward them once through the body in the
same precision (float32), then fit one linear head (full-batch L-BFGS on
cross-entropy, as ``head_solver="lbfgs"`` solves one penalty) per configuration
and fold, and prints both wall times and their ratio (issue 19, item 7: target
compare within 1.3 x the bare loop) with the split decode / forward / heads /
report.

Run::

    python benchmarks/compare_timing.py                   # 1,300 images, 5 folds
    python benchmarks/compare_timing.py --keep /tmp/c1300 # keep the data and the report
    python benchmarks/compare_timing.py --quick           # 65 images at 64 px, 2 folds
"""

import argparse
import cProfile
import os
import pstats
import tempfile
import time

import numpy as np
import torch
import torchvision
from PIL import Image, ImageDraw

from imbal_estimators.app.cli import main as cli_main

# (module file, function): where the time goes. The feature passes run inside the
# fits and predictions, so the parts overlap.
PARTS = {
    "compare(): cross-validation of every method": ("app/compare.py", "compare"),
    "pre-flight decode of every image": ("data/images.py", "scan_images"),
    "fits (all folds and methods)": ("estimator/classifier.py", "fit"),
    "predictions (test folds, validation splits)": ("estimator/classifier.py", "predict_proba"),
    "  of these, backbone feature passes": ("models/features.py", "compute_features"),
}


def write_folder(root, n_common, n_rare, side, seed=0):
    rng = np.random.default_rng(seed)
    for label, n, brightness in (("common", n_common, 90), ("rare", n_rare, 150)):
        folder = os.path.join(root, label)
        os.makedirs(folder, exist_ok=True)
        for i in range(n):
            pixels = rng.normal(brightness, 40, size=(side, side, 3)).clip(0, 255)
            image = Image.fromarray(pixels.astype(np.uint8))
            draw = ImageDraw.Draw(image)
            for _ in range(3):
                x0, y0 = rng.integers(0, side - side // 4, size=2)
                width, height = rng.integers(side // 8, side // 4, size=2)
                x1, y1 = x0 + width, y0 + height
                color = tuple(int(c) for c in rng.integers(0, 256, size=3))
                shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
                shape((int(x0), int(y0), int(x1), int(y1)), fill=color)
            image.save(os.path.join(folder, f"{i:05d}.jpg"), quality=90)
    return root


def run(args, tmp):
    data = write_folder(os.path.join(tmp, "data"), args.common, args.rare, args.side)
    weights = os.path.join(tmp, "resnet34.pth")
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet34().state_dict(), weights)
    argv = ["compare", data, "--out", os.path.join(tmp, "report"), "--freeze-backbone"]
    argv += ["--weights", weights, "--cv", str(args.cv), "--image-size", str(args.image_size)]
    print("imbal-estimators " + " ".join(argv), flush=True)
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    cli_main(argv)
    profile.disable()
    wall = time.perf_counter() - start
    stats = pstats.Stats(profile).stats
    print(
        f"\n{args.common} + {args.rare} JPEGs ({args.side} px) at {args.image_size} px, "
        f"{args.cv} folds, CPU threads {torch.get_num_threads()}: wall time {wall:.1f} s"
    )
    for part, (module, function) in PARTS.items():
        seconds = sum(
            entry[3]  # cumulative time
            for (path, _, name), entry in stats.items()
            if name == function and path.endswith(module)
        )
        print(f"  {part:<46} {seconds:>7.1f} s ({module}: {function})")
    print("  (the rest of the wall time: loading the folder, the report and its plots)")
    report = sum(
        entry[3]
        for (path, _, name), entry in stats.items()
        if name == "write_report" and path.endswith("app/report.py")
    )
    print(f"  {'report (write_report)':<46} {report:>7.1f} s")
    if args.bare:
        bare = bare_loop(data, weights, args.image_size, args.cv, n_configurations())
        total = sum(bare.values())
        print(f"\nbare PyTorch loop, same images and network: {total:.1f} s")
        for part, seconds in bare.items():
            print(f"  {part:<46} {seconds:>7.1f} s")
        print(f"compare / bare loop: {wall / total:.2f} x (target <= 1.3 x)")


def n_configurations():
    from imbal_estimators.app.methods import default_configurations

    return len(default_configurations(features=True))


def bare_loop(data, weights, image_size, cv, n_configs):
    """Seconds of decode, forward and heads of a plain loop doing the screen's work."""
    from sklearn.model_selection import StratifiedKFold

    from imbal_estimators import load_image_folder

    paths, labels = load_image_folder(data)
    y = torch.as_tensor(np.searchsorted(np.unique(labels), labels))
    times = {}
    start = time.perf_counter()
    images = []
    for path in paths:
        with Image.open(path) as image:
            image = image.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
            images.append(torch.from_numpy(np.asarray(image).copy()))
    times["decode and resize"] = time.perf_counter() - start
    start = time.perf_counter()
    body = torchvision.models.resnet34()
    body.load_state_dict(torch.load(weights, weights_only=True))
    body.fc = torch.nn.Identity()
    body.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    features = []
    with torch.no_grad():
        for first in range(0, len(images), 64):
            batch = torch.stack(images[first : first + 64]).permute(0, 3, 1, 2).float() / 255
            features.append(body((batch - mean) / std))
    features = torch.cat(features)
    times["forward once (float32)"] = time.perf_counter() - start
    start = time.perf_counter()
    folds = StratifiedKFold(cv, shuffle=True, random_state=0).split(features, y)
    for train, _ in folds:
        X, t = features[train], y[train]
        for _ in range(n_configs):
            head = torch.nn.Linear(X.shape[1], 2)
            optimizer = torch.optim.LBFGS(
                head.parameters(), max_iter=100, line_search_fn="strong_wolfe"
            )

            def closure(head=head, optimizer=optimizer, X=X, t=t):
                optimizer.zero_grad()
                loss = torch.nn.functional.cross_entropy(head(X), t)
                loss = loss + 5e-4 * head.weight.pow(2).sum()
                loss.backward()
                return loss

            optimizer.step(closure)
    times[f"heads ({n_configs} configurations x {cv} folds)"] = time.perf_counter() - start
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--common", type=int, default=1000)
    parser.add_argument("--rare", type=int, default=300)
    parser.add_argument("--side", type=int, default=256, help="JPEG side in px")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--cv", type=int, default=5)
    parser.add_argument("--keep", help="write the data and the report here instead of a temp dir")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    parser.add_argument("--bare", action="store_true", help="also time a bare PyTorch loop")
    args = parser.parse_args()
    if args.quick:
        args.common, args.rare, args.side, args.image_size, args.cv = 50, 15, 64, 64, 2
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        run(args, args.keep)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            run(args, tmp)


if __name__ == "__main__":
    main()

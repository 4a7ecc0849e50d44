"""Epoch throughput: ImageImbalanceClassifier against a plain PyTorch loop, side by side.

The plain loop is the classic tutorial: torchvision ``ImageFolder`` + ``DataLoader``
+ ``resnet34`` + ``Adam``, on the same images, model, batch size and image size.
Both train on all images (no validation split) without augmentation, on the CPU.

Run::

    python benchmarks/epoch_throughput.py            # both settings below, resnet34
    python benchmarks/epoch_throughput.py --settings jpeg128
    python benchmarks/epoch_throughput.py --quick    # a few seconds, for CI

Settings: ``png32`` is 1000 PNGs at 32 px; ``jpeg128`` is 240 JPEG photos of
512 x 384 px trained at 128 px. Prints one row per epoch with images/s and the
ratio ours / plain; from the second epoch on, ours reads decoded images from its
cache while the plain loop decodes every file again.

``ours`` runs with ``precision="fp32"``, the plain loop's arithmetic, so the ratio
measures the data path alone; the last column is ours with ``precision="auto"``
(bfloat16 channels-last on a CPU with native bfloat16, float32 elsewhere).
"""

import argparse
import os
import tempfile
import time

import torch
import torchvision
from torch.utils.data import DataLoader
from torchvision import transforms

from imbal_estimators import ImageImbalanceClassifier, load_image_folder, make_demo_image_folder
from imbal_estimators.models.backbones import IMAGENET_MEAN, IMAGENET_STD


def plain_loop_epochs(root, backbone, image_size, batch_size, epochs, seed):
    """Seconds per epoch of the tutorial loop."""
    torch.manual_seed(seed)
    transform = transforms.Compose(
        [
            transforms.Resize((image_size, image_size)),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    dataset = torchvision.datasets.ImageFolder(root, transform=transform)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True)
    model = torchvision.models.get_model(backbone, weights=None, num_classes=len(dataset.classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    criterion = torch.nn.CrossEntropyLoss()
    model.train()
    durations = []
    for _ in range(epochs):
        start = time.perf_counter()
        for images, targets in loader:
            optimizer.zero_grad()
            loss = criterion(model(images), targets)
            loss.backward()
            optimizer.step()
        durations.append(time.perf_counter() - start)
    return durations, len(dataset)


def estimator_epochs(root, backbone, image_size, batch_size, epochs, seed, precision="fp32"):
    """Seconds per epoch of ImageImbalanceClassifier, and of its pre-flight scan."""
    X, y = load_image_folder(root)
    clf = ImageImbalanceClassifier(
        backbone=backbone,
        weights=None,
        image_size=image_size,
        batch_size=batch_size,
        max_epochs=epochs,
        optimizer=torch.optim.Adam,
        lr=1e-4,
        train_split=None,
        augment=False,
        device="cpu",
        verbose=0,
        random_state=seed,
        precision=precision,
    )
    start = time.perf_counter()
    clf.fit(X, y)
    total = time.perf_counter() - start
    durations = list(clf.history[:, "dur"])
    return durations, total - sum(durations), len(X)


SETTINGS = {
    # name: (file format, image size, source image side, number of images)
    "png32": ("png", 32, 32, 1000),
    "jpeg128": ("jpeg", 128, 512, 240),
}


def write_jpegs(root, side):
    """Replace every PNG under ``root`` with a ``side`` x ``3/4 side`` JPEG (quality 90),
    the size of a typical photo in an ImageNet-like folder."""
    from PIL import Image

    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".png"):
                path = os.path.join(folder, name)
                with Image.open(path) as image:
                    big = image.convert("RGB").resize((side, side * 3 // 4), Image.BICUBIC)
                big.save(path[:-4] + ".jpg", quality=90)
                os.remove(path)


def run_setting(tmp, name, file_format, image_size, source_side, n_images, args):
    n_minority = min(174, n_images // 5)
    root = make_demo_image_folder(
        os.path.join(tmp, name),
        n_majority=n_images - n_minority,
        n_minority=n_minority,
        image_size=source_side if file_format == "png" else 32,
    )
    if file_format == "jpeg":
        write_jpegs(root, source_side)
    settings = (root, args.backbone, image_size, args.batch_size, args.epochs, 0)
    plain, n = plain_loop_epochs(*settings)
    ours, scan, _ = estimator_epochs(*settings)
    auto, _, _ = estimator_epochs(*settings, precision="auto")
    print(
        f"\n{args.backbone}, {n} {file_format.upper()} images ({source_side} px source) at "
        f"{image_size} px, batch {args.batch_size}, CPU threads {torch.get_num_threads()}"
    )
    print(
        "ours outside epochs (argument checks, pre-flight decode of every image, "
        f"model build): {scan:.2f} s"
    )
    print(
        f"{'epoch':>5}  {'plain img/s':>11}  {'ours img/s':>10}  {'ours/plain':>10}  "
        f"{'ours auto img/s':>15}"
    )
    for epoch, (p, o, a) in enumerate(zip(plain, ours, auto, strict=True), start=1):
        print(
            f"{epoch:>5}  {n / p:>11.1f}  {n / o:>10.1f}  {p / o:>10.2f}  {n / a:>15.1f}",
            flush=True,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--backbone", default="resnet34")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    args = parser.parse_args()
    settings = dict(SETTINGS)
    if args.quick:
        settings = {"png16": ("png", 16, 16, 48), "jpeg32": ("jpeg", 32, 64, 48)}
        args.settings, args.backbone, args.epochs = list(settings), "shufflenet_v2_x0_5", 2
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.settings:
            run_setting(tmp, name, *settings[name], args)


if __name__ == "__main__":
    main()

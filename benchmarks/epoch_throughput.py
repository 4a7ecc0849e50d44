"""Epoch throughput: ImageImbalanceClassifier against a plain PyTorch loop, side by side.

The plain loop is the classic tutorial: torchvision ``ImageFolder`` + ``DataLoader``
+ ``resnet34`` + ``Adam``, on the same images, model, batch size and image size.
Both train on all images (no validation split) without augmentation, on the CPU.

Run::

    python benchmarks/epoch_throughput.py            # 1000 PNGs at 32 px, resnet34
    python benchmarks/epoch_throughput.py --quick    # a few seconds, for CI

Prints one row per epoch with images/s and the ratio ours / plain.
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
from imbal_estimators.backbones import IMAGENET_MEAN, IMAGENET_STD


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


def estimator_epochs(root, backbone, image_size, batch_size, epochs, seed):
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
    )
    start = time.perf_counter()
    clf.fit(X, y)
    total = time.perf_counter() - start
    durations = list(clf.history[:, "dur"])
    return durations, total - sum(durations), len(X)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--backbone", default="resnet34")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.n_images, args.backbone, args.epochs = 64, "shufflenet_v2_x0_5", 1

    n_minority = min(174, args.n_images // 5)
    with tempfile.TemporaryDirectory() as tmp:
        root = make_demo_image_folder(
            os.path.join(tmp, "data"),
            n_majority=args.n_images - n_minority,
            n_minority=n_minority,
            image_size=args.image_size,
        )
        settings = (root, args.backbone, args.image_size, args.batch_size, args.epochs, 0)
        plain, n = plain_loop_epochs(*settings)
        ours, scan, _ = estimator_epochs(*settings)

    print(
        f"{args.backbone}, {n} PNG images at {args.image_size} px, batch {args.batch_size}, "
        f"CPU threads {torch.get_num_threads()}"
    )
    print(
        "ours outside epochs (argument checks, pre-flight decode of every image, "
        f"model build): {scan:.2f} s"
    )
    print(f"{'epoch':>5}  {'plain img/s':>11}  {'ours img/s':>10}  {'ours/plain':>10}")
    for epoch, (p, o) in enumerate(zip(plain, ours, strict=True), start=1):
        print(f"{epoch:>5}  {n / p:>11.1f}  {n / o:>10.1f}  {p / o:>10.2f}")


if __name__ == "__main__":
    main()

"""precision="fp32" against precision="auto" on this CPU: training steps and whole fits.

Part 1 times a resnet34 training step (batch 32, AdamW, random init, data in memory) at
64, 128 and 224 px in four settings, interleaved round by round so that all see the
same machine load: float32, float32 channels-last, bfloat16 autocast, and bfloat16
channels-last (what ``precision="auto"`` picks on a CPU with native bfloat16).

Part 2 fits ``ImageImbalanceClassifier`` (resnet34, random init, 128 px, no
augmentation, the images already decoded in the cache) with ``precision="fp32"`` and
``precision="auto"``, side by side in both orders (fp32, auto, auto, fp32), and prints
the ratio of the fit times.

Run::

    python benchmarks/cpu_precision.py            # both parts (about 10 minutes on 2 cores)
    python benchmarks/cpu_precision.py --part fit
    python benchmarks/cpu_precision.py --threads 1  # steadier on a machine shared with others
    python benchmarks/cpu_precision.py --quick    # seconds, for CI
"""

import argparse
import os
import statistics
import tempfile
import time

import torch
import torchvision

from imbal_estimators import ImageImbalanceClassifier, load_image_folder, make_demo_image_folder
from imbal_estimators.training.precision import autocast, autocast_dtype, cpu_has_native_bf16

SETTINGS = {
    # name: (autocast dtype, channels-last)
    "fp32": (None, False),
    "fp32 channels-last": (None, True),
    "bf16": (torch.bfloat16, False),
    "bf16 channels-last": (torch.bfloat16, True),
}


def make_step(backbone, size, batch_size, dtype, channels_last):
    torch.manual_seed(0)
    model = torchvision.models.get_model(backbone, weights=None, num_classes=2)
    images = torch.randn(batch_size, 3, size, size)
    targets = torch.randint(0, 2, (batch_size,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step():
        optimizer.zero_grad()
        with autocast("cpu", dtype):
            logits = model(images)
        loss = torch.nn.functional.cross_entropy(logits.float(), targets)
        loss.backward()
        optimizer.step()

    step()  # warm-up: oneDNN builds its kernels on the first call
    return step


def time_steps(args):
    print(
        f"\n{args.backbone} training step, batch {args.batch_size}, images/s (median of "
        f"{args.rounds} interleaved rounds); CPU threads {torch.get_num_threads()}"
    )
    header = f"{'size':>5}  " + "  ".join(f"{name:>18}" for name in SETTINGS)
    print(header + f"  {'auto / fp32':>11}")
    for size in args.sizes:
        steps = {
            name: make_step(args.backbone, size, args.batch_size, *setting)
            for name, setting in SETTINGS.items()
        }
        rates = {name: [] for name in SETTINGS}
        for _ in range(args.rounds):
            for name, step in steps.items():
                start = time.perf_counter()
                step()
                rates[name].append(args.batch_size / (time.perf_counter() - start))
        median = {name: statistics.median(values) for name, values in rates.items()}
        auto = "bf16 channels-last" if cpu_has_native_bf16() else "fp32"
        cells = "  ".join(f"{median[name]:>18.1f}" for name in SETTINGS)
        print(f"{size:>5}  {cells}  {median[auto] / median['fp32']:>10.2f}x", flush=True)


def time_fits(args):
    with tempfile.TemporaryDirectory() as tmp:
        n_minority = args.fit_images // 5
        root = make_demo_image_folder(
            os.path.join(tmp, "data"),
            n_majority=args.fit_images - n_minority,
            n_minority=n_minority,
            image_size=args.fit_size,
        )
        X, y = load_image_folder(root)

        def fit(precision):
            clf = ImageImbalanceClassifier(
                backbone=args.backbone,
                weights=None,
                image_size=args.fit_size,
                max_epochs=args.fit_epochs,
                batch_size=args.batch_size,
                augment=False,
                train_split=None,
                device="cpu",
                verbose=0,
                random_state=0,
                precision=precision,
            )
            start, cpu_start = time.perf_counter(), time.process_time()
            clf.fit(X, y)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            return wall, cpu, list(clf.history[:, "dur"])

        fit("fp32")  # decodes every image into the cache; not timed
        fit("auto")  # warm-up of the bfloat16 kernels; not timed
        print(
            f"\n{args.backbone} fit, {len(X)} images at {args.fit_size} px (decoded, cached), "
            f"{args.fit_epochs} epochs, batch {args.batch_size}; precision='auto' is "
            f"{autocast_dtype('auto', 'cpu') or 'float32'} on this CPU"
        )
        print(f"{'order':>5}  {'precision':>9}  {'fit s':>7}  {'CPU s':>7}  {'epoch images/s':>15}")
        seconds = {"fp32": [], "auto": []}
        cpu_seconds = {"fp32": [], "auto": []}
        for order, precision in enumerate(("fp32", "auto", "auto", "fp32"), start=1):
            wall, cpu, epochs = fit(precision)
            seconds[precision].append(wall)
            cpu_seconds[precision].append(cpu)
            rates = ", ".join(f"{len(X) / d:.1f}" for d in epochs)
            print(f"{order:>5}  {precision:>9}  {wall:>7.1f}  {cpu:>7.1f}  {rates:>15}", flush=True)
        ratio = sum(seconds["fp32"]) / sum(seconds["auto"])
        cpu_ratio = sum(cpu_seconds["fp32"]) / sum(cpu_seconds["auto"])
        print(f"fit time fp32 / auto: {ratio:.2f}x (CPU time of the process: {cpu_ratio:.2f}x)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["steps", "fit", "both"], default="both")
    parser.add_argument("--backbone", default="resnet34")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 224])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fit-images", type=int, default=160)
    parser.add_argument("--fit-size", type=int, default=128)
    parser.add_argument("--fit-epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.backbone, args.sizes, args.rounds, args.batch_size = "resnet18", [32], 2, 8
        args.fit_images, args.fit_size, args.fit_epochs = 24, 32, 1
    native = cpu_has_native_bf16()
    print(f"native bfloat16 on this CPU (AMX-BF16 or AVX512-BF16): {native}")
    if args.part in ("steps", "both"):
        time_steps(args)
    if args.part in ("fit", "both"):
        time_fits(args)


if __name__ == "__main__":
    main()

"""Check the CUDA path and measure training images/s at 224 px (under 5 minutes on one GPU).

Checks, each printed as PASS or FAIL:

1. the same fit (fp32, same ``random_state``) on the CPU and on CUDA gives
   probabilities that agree within a tolerance;
2. a CUDA fit with ``precision="bf16"`` (and ``"fp16"``, loss scaling) trains to
   finite probabilities, and the network is in channels-last format;
3. a CUDA-fitted estimator, pickled, loads and predicts on the CPU (the child
   process hides the GPU) with the same probabilities;
4. ``fit`` leaves no cached CUDA memory behind.

Then it times resnet34 training epochs at 224 px with ``precision`` fp32 and bf16
and prints images/s and the fraction of the chip's dense bf16 peak that the bf16
run reaches (resnet34: 3.67 GFLOPs per 224 px image forward, about 3x that for
forward plus backward).

Run::

    python benchmarks/gpu_check.py                   # on a CUDA machine
    python benchmarks/gpu_check.py --device cpu --quick   # the logic, on a CPU, tiny sizes
"""

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from imbal_estimators import ImageImbalanceClassifier, load_image_folder, make_demo_image_folder

RESNET34_TRAIN_FLOPS = 3 * 3.67e9  # per 224 px image, forward + backward
# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets.
BF16_PEAKS = {
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "A10": 125e12,
    "RTX 4090": 165e12,
}

results = []


def check(name, passed, detail=""):
    results.append(passed)
    print(f"{'PASS' if passed else 'FAIL'}  {name}  {detail}", flush=True)


def classifier(device, **params):
    base = dict(
        backbone="resnet18",
        weights=None,
        image_size=32,
        max_epochs=2,
        batch_size=32,
        lr=1e-3,
        augment=False,
        train_split=None,
        device=device,
        verbose=0,
        random_state=0,
        precision="fp32",
    )
    return ImageImbalanceClassifier(**{**base, **params})


def correctness(X, y, device):
    cpu = classifier("cpu").fit(X, y).predict_proba(X)
    clf = classifier(device).fit(X, y)
    gpu = clf.predict_proba(X)
    gap = float(np.abs(cpu - gpu).max())
    check("CPU and CUDA fp32 fits agree", gap < 0.05, f"(max |p_cpu - p_cuda| = {gap:.2e})")

    for precision in ("bf16", "fp16") if device != "cpu" else ("bf16",):
        fitted = classifier(device, precision=precision).fit(X, y)
        proba = fitted.predict_proba(X)
        conv = next(m for m in fitted.module_.modules() if isinstance(m, torch.nn.Conv2d))
        channels_last = conv.weight.is_contiguous(memory_format=torch.channels_last)
        on_cuda = torch.device(fitted.device).type == "cuda"
        check(
            f"precision={precision!r} trains",
            bool(np.isfinite(proba).all()) and (channels_last or not on_cuda),
            f"(channels_last={channels_last}, loss scaling={fitted.grad_scaler_ is not None})",
        )

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.pkl")
        with open(path, "wb") as file:
            pickle.dump(clf, file)
        np.save(os.path.join(tmp, "expected.npy"), gpu)
        script = (
            "import pickle, sys, numpy as np, torch\n"
            "assert not torch.cuda.is_available()\n"
            f"clf = pickle.load(open({path!r}, 'rb'))\n"
            f"X = {list(map(str, X))!r}\n"
            "p = clf.predict_proba(X)\n"
            f"print(float(np.abs(p - np.load({os.path.join(tmp, 'expected.npy')!r})).max()), "
            "clf.device)\n"
        )
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True
        )
        ok = out.returncode == 0
        detail = out.stdout.strip() if ok else out.stderr.strip().splitlines()[-1:]
        gap_ok = ok and float(out.stdout.split()[0]) < 1e-3
        check("a CUDA-fitted pickle predicts on a CPU-only process", gap_ok, f"({detail})")

    if torch.cuda.is_available() and device != "cpu":
        reserved = torch.cuda.memory_reserved()
        check("fit releases cached CUDA memory", reserved < 64 * 1024**2, f"({reserved} B)")


def throughput(root, device, image_size, epochs, backbone):
    X, y = load_image_folder(root)
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    peak = next((value for key, value in BF16_PEAKS.items() if key in name), None)
    print(f"\n{backbone} training at {image_size} px on {name}, {len(X)} images per epoch")
    print(f"{'precision':>9}  {'epoch':>5}  {'images/s':>9}  {'of bf16 peak':>12}")
    for precision in ("fp32", "bf16"):
        clf = ImageImbalanceClassifier(
            backbone=backbone,
            weights=None,
            image_size=image_size,
            max_epochs=epochs,
            batch_size=128,
            train_split=None,
            device=device,
            verbose=0,
            random_state=0,
            precision=precision,
        )
        start = time.perf_counter()
        clf.fit(X, y)
        print(f"  (fit took {time.perf_counter() - start:.1f} s including the pre-flight scan)")
        for epoch, seconds in enumerate(clf.history[:, "dur"], start=1):
            rate = len(X) / seconds
            share = rate * RESNET34_TRAIN_FLOPS / peak if peak and backbone == "resnet34" else None
            share_text = f"{share:.1%}" if share is not None else "n/a"
            print(f"{precision:>9}  {epoch:>5}  {rate:>9.1f}  {share_text:>12}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a CPU dry run)")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("No CUDA device here; run with --device cpu --quick for a dry run.")
    with tempfile.TemporaryDirectory() as tmp:
        small = make_demo_image_folder(
            os.path.join(tmp, "small"), n_majority=96, n_minority=32, image_size=32
        )
        correctness(*load_image_folder(small), args.device)
        n, size, epochs = (64, 32, 1) if args.quick else (2048, 224, 3)
        big = make_demo_image_folder(
            os.path.join(tmp, "big"), n_majority=n - n // 4, n_minority=n // 4, image_size=size
        )
        throughput(big, args.device, size, epochs, "resnet34")
    print(f"\n{sum(results)} of {len(results)} checks passed")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()

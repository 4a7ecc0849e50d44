"""Check the CUDA path against the CPU and measure resnet34 training images/s at 224 px.

Checks, each printed as PASS or FAIL (about 5 minutes on one GPU):

1. the same fit (fp32, same ``random_state``) on the CPU and on CUDA gives
   probabilities that agree within a tolerance;
2. CUDA fits with ``precision="bf16"``, ``"fp16"`` (loss scaling) and ``"auto"``
   train to finite probabilities close to the CPU's, with the network in
   channels-last format;
3. a frozen backbone on CUDA: ``fit_many`` equals separate fits, and the CUDA
   features match the CPU's;
4. a CUDA-fitted estimator, pickled, loads and predicts in a child process that
   sees no GPU, with the same probabilities;
5. ``fit`` leaves no cached CUDA memory behind.

Then it times resnet34 training at 224 px: the training step with the decoded
batches already on the GPU (fp32, and bf16 channels-last, which is what
``precision="auto"`` picks; ``--compile`` adds ``torch.compile``), and the
estimator's epochs reading decoded images from its cache. It prints images/s and
the share of the chip's dense bf16 peak (resnet34: 3.6 GFLOPs per 224 px image
forward, about 3x that forward plus backward).

Without a CUDA device it says so and runs none of the CUDA checks (exit status 2);
``--cpu-dry-run`` then runs the script's CPU-only parts at tiny sizes, to test the
script itself, and says plainly that no CUDA check ran.

Run::

    python benchmarks/gpu_check.py                  # on a CUDA machine
    python benchmarks/gpu_check.py --compile        # also time torch.compile
    python benchmarks/gpu_check.py --cpu-dry-run    # anywhere: the script's logic only
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
import torchvision

from imbal_estimators import ImageImbalanceClassifier, load_image_folder, make_demo_image_folder
from imbal_estimators.training.heads import fit_many

RESNET34_TRAIN_FLOPS = 3 * 3.6e9  # per 224 px image: forward 3.6 GFLOPs, backward about 2x
# Dense bf16 tensor-core peaks (FLOP/s): the vendors' data sheets give them with 2:4
# sparsity; dense is half. NVIDIA H200 datasheet: 1,979 TFLOPS BF16 (SXM), 1,671 (NVL).
# The reference peak this project's issue 13 names for one H200 is about 790 TFLOP/s
# dense; both are printed.
BF16_PEAKS = {
    "H200": (989e12, "H200 SXM datasheet, dense"),
    "H100": (989e12, "H100 SXM datasheet, dense"),
    "A100": (312e12, "A100 datasheet, dense"),
    "L40S": (362e12, "L40S datasheet, dense"),
    "L4": (121e12, "L4 datasheet, dense"),
    "A10": (125e12, "A10 datasheet, dense"),
    "RTX 4090": (165e12, "RTX 4090 datasheet, dense"),
}
H200_REFERENCE_PEAK = 790e12

results = []


def check(name, passed, detail=""):
    results.append(bool(passed))
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


def channels_last(clf):
    conv = next(m for m in clf.module_.modules() if isinstance(m, torch.nn.Conv2d))
    return conv.weight.is_contiguous(memory_format=torch.channels_last)


def cuda_checks(X, y, device, tmp):
    cpu = classifier("cpu").fit(X, y).predict_proba(X)
    fitted = classifier(device).fit(X, y)
    gpu = fitted.predict_proba(X)
    gap = float(np.abs(cpu - gpu).max())
    check("CPU and CUDA fp32 fits agree", gap < 0.05, f"(max |p_cpu - p_cuda| = {gap:.2e})")

    for precision in ("bf16", "fp16", "auto"):
        clf = classifier(device, precision=precision).fit(X, y)
        proba = clf.predict_proba(X)
        gap = float(np.abs(proba - cpu).max())
        scaled = clf.grad_scaler_ is not None
        expect_scaling = precision == "fp16" or (
            precision == "auto" and not torch.cuda.is_bf16_supported()
        )
        ok = np.isfinite(proba).all() and channels_last(clf) and gap < 0.25
        ok = ok and scaled == expect_scaling
        check(
            f"CUDA precision={precision!r} trains",
            ok,
            f"(channels_last={channels_last(clf)}, loss scaling={scaled}, "
            f"max |p - p_cpu_fp32| = {gap:.2e})",
        )

    weights = os.path.join(tmp, "resnet18.pth")
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    frozen = dict(freeze_backbone=True, weights=weights, train_split=0.25, max_epochs=3)
    grid = [{"alpha": a, "lr": lr} for a in (None, "balanced") for lr in (1e-3, 1e-2)]
    alone = [classifier(device, **frozen, **p).fit(X, y) for p in grid]
    together = fit_many([classifier(device, **frozen, **p) for p in grid], X, y)
    gap = max(
        float(np.abs(a.predict_proba(X) - b.predict_proba(X)).max())
        for a, b in zip(alone, together, strict=True)
    )
    same_epochs = all(a.best_epoch_ == b.best_epoch_ for a, b in zip(alone, together, strict=True))
    check("CUDA fit_many equals separate fits", gap < 1e-4 and same_epochs, f"(max gap {gap:.2e})")
    on_cpu = classifier("cpu", **frozen, cache=None).fit(X, y).predict_proba(X)
    on_gpu = classifier(device, **frozen, cache=None).fit(X, y).predict_proba(X)
    gap = float(np.abs(on_cpu - on_gpu).max())
    check("CPU and CUDA frozen-backbone fits agree", gap < 0.05, f"(max gap {gap:.2e})")

    path = os.path.join(tmp, "model.pkl")
    with open(path, "wb") as file:
        pickle.dump(fitted, file)
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
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    ok = out.returncode == 0 and float(out.stdout.split()[0]) < 1e-3
    detail = out.stdout.strip() if out.returncode == 0 else out.stderr.strip().splitlines()[-1:]
    check("a CUDA-fitted pickle predicts in a CPU-only process", ok, f"({detail})")

    classifier(device, image_size=64).fit(X, y)  # nothing may run between fit and the reading
    torch.cuda.synchronize()
    cached = torch.cuda.memory_reserved() - torch.cuda.memory_allocated()
    check("fit releases cached CUDA memory", cached < 64 * 1024**2, f"({cached} B cached)")


def step_throughput(device, image_size, batch_size, steps, compile_model):
    """Training images/s with decoded uint8 batches already on the device."""
    from imbal_estimators.models.backbones import ImageModel
    from imbal_estimators.training.precision import autocast

    rows = []
    settings = [("fp32", None, False), ("bf16 channels-last", torch.bfloat16, False)]
    if compile_model:
        settings.append(("bf16 channels-last compiled", torch.bfloat16, True))
    for name, dtype, compiled in settings:
        torch.manual_seed(0)
        model = ImageModel(torchvision.models.resnet34(num_classes=2)).to(device)
        images = torch.randint(0, 256, (batch_size, 3, image_size, image_size), dtype=torch.uint8)
        images = images.to(device)
        if dtype is not None or torch.device(device).type == "cuda":
            model = model.to(memory_format=torch.channels_last)
            images = images.contiguous(memory_format=torch.channels_last)
        targets = torch.randint(0, 2, (batch_size,), device=device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        forward = torch.compile(model) if compiled else model

        def step(forward=forward, optimizer=optimizer, images=images, targets=targets, dtype=dtype):
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, dtype):
                logits = forward(images)
            torch.nn.functional.cross_entropy(logits.float(), targets).backward()
            optimizer.step()

        for _ in range(3):  # warm-up (cuDNN autotuning, compilation)
            step()
        synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        synchronize(device)
        rows.append((name, steps * batch_size / (time.perf_counter() - start)))
        del model, optimizer, forward
    return rows


def synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def estimator_throughput(root, device, image_size, epochs, batch_size):
    X, y = load_image_folder(root)
    rows = []
    for precision in ("fp32", "auto"):
        clf = ImageImbalanceClassifier(
            backbone="resnet34",
            weights=None,
            image_size=image_size,
            max_epochs=epochs,
            batch_size=batch_size,
            augment=False,
            train_split=None,
            device=device,
            verbose=0,
            random_state=0,
            precision=precision,
        )
        clf.fit(X, y)
        best = max(len(X) / seconds for seconds in clf.history[:, "dur"])
        rows.append((f"ImageImbalanceClassifier epoch, precision={precision!r}", best))
    return rows


def report_throughput(rows, image_size):
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    peak, source = next((v for key, v in BF16_PEAKS.items() if key in name), (None, None))
    print(f"\nresnet34 training at {image_size} px on {name}")
    print(f"{'setting':<58} {'images/s':>9} {'of bf16 peak':>13}")
    for setting, rate in rows:
        flops = rate * RESNET34_TRAIN_FLOPS
        share = f"{flops / peak:.1%}" if peak else "n/a"
        print(f"{setting:<58} {rate:>9.1f} {share:>13}")
    if peak:
        print(f"(peak {peak / 1e12:.0f} TFLOP/s: {source})")
    if "H200" in name:
        best = max(rate for _, rate in rows)
        print(
            f"share of the 790 TFLOP/s H200 reference peak: "
            f"{best * RESNET34_TRAIN_FLOPS / H200_REFERENCE_PEAK:.1%} (target: >= 5,000 img/s)"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--cpu-dry-run", action="store_true", help="the script's CPU parts only")
    parser.add_argument("--quick", action="store_true", help="smaller throughput runs")
    args = parser.parse_args()
    has_cuda = torch.cuda.is_available()
    if not has_cuda:
        print("No CUDA device here: the CUDA checks did not run, and nothing below compares")
        print("CUDA with the CPU.")
        if not args.cpu_dry_run:
            sys.exit(2)
        print("CPU dry run (--cpu-dry-run): the script's CPU-only parts at tiny sizes.\n")
    with tempfile.TemporaryDirectory() as tmp:
        small = make_demo_image_folder(
            os.path.join(tmp, "small"), n_majority=96, n_minority=32, image_size=32
        )
        X, y = load_image_folder(small)
        if has_cuda:
            cuda_checks(X, y, args.device, tmp)
            device, size, steps, batch = args.device, 224, (10 if args.quick else 30), 256
            n, epochs = (512, 2) if args.quick else (4096, 3)
        else:
            proba = classifier("cpu", precision="bf16").fit(X, y).predict_proba(X)
            check("CPU dry run: a bf16 fit on the CPU trains", np.isfinite(proba).all())
            device, size, steps, batch, n, epochs = "cpu", 32, 2, 8, 32, 1
        rows = step_throughput(device, size, batch, steps, args.compile)
        big = make_demo_image_folder(
            os.path.join(tmp, "big"), n_majority=n - n // 4, n_minority=n // 4, image_size=size
        )
        rows += estimator_throughput(big, device, size, epochs, batch)
        report_throughput(rows, size)
    print(f"\n{sum(results)} of {len(results)} checks passed", end="")
    print("" if has_cuda else " (CPU dry run: no CUDA check ran)")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()

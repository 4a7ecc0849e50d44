"""Focal loss forward + backward against ``F.cross_entropy`` on the CPU.

Run from the repository root::

    PYTHONPATH=$PWD python benchmarks/loss_speed.py            # 3 shapes, 30 rounds
    PYTHONPATH=$PWD python benchmarks/loss_speed.py --rounds 5 # a quick look

Each round times one forward + backward pass of every method on the same
logits, in turn, so that all methods see the same machine load; the table
gives the fastest round of each (as ``timeit`` advises: slower rounds measure
other processes on a shared machine) and the ratio to cross-entropy, in
wall-clock time and, as a check that load cannot skew, in the process's CPU time
(with one thread the work done; with more it includes threads spin-waiting). The third method
is the focal loss most often copied from the PyTorch forums (it applies the
focusing term to the whole ``(N, C)`` log-softmax before ``nll_loss``), for
reference. Target: ``focal_loss`` <= 1.3x ``F.cross_entropy`` at every shape.
"""

import argparse
import time

import torch
import torch.nn.functional as F

from imbal_estimators import focal_loss

SHAPES = [(65536, 2), (65536, 10), (8192, 1000)]


def forum_focal_loss(logits, target, gamma=2.0):
    """The forum snippet, kept as it is usually copied (gamma on every class column)."""
    logpt = F.log_softmax(logits, dim=1)
    pt = torch.exp(logpt)
    logpt = (1 - pt) ** gamma * logpt
    return F.nll_loss(logpt, target)


METHODS = {
    "cross_entropy": lambda z, t: F.cross_entropy(z, t),
    "focal_loss": lambda z, t: focal_loss(z, t, gamma=2.0),
    "forum snippet": forum_focal_loss,
}


def time_once(method, logits, target):
    """Wall-clock and process CPU seconds of one forward + backward pass."""
    logits.grad = None
    wall, cpu = time.perf_counter(), time.process_time()
    method(logits, target).backward()
    return time.perf_counter() - wall, time.process_time() - cpu


def run(rounds, seed=0):
    torch.manual_seed(seed)
    rows = []
    for shape in SHAPES:
        logits = (torch.randn(shape) * 2).requires_grad_(True)
        target = torch.randint(0, shape[1], (shape[0],))
        for method in METHODS.values():  # warm-up
            time_once(method, logits, target)
        times = {name: [] for name in METHODS}
        for _ in range(rounds):
            for name, method in METHODS.items():
                times[name].append(time_once(method, logits, target))
        best = {name: min(wall for wall, _ in values) for name, values in times.items()}
        cpu = {name: min(c for _, c in values) for name, values in times.items()}
        rows.append((shape, best, cpu))
    return rows


def format_table(rows):
    lines = [
        "| shape (N, C) | cross_entropy, ms | focal_loss, ms | forum snippet, ms "
        "| focal / CE | forum / CE | focal / CE, CPU time |",
        "|---|---|---|---|---|---|---|",
    ]
    for shape, m, cpu in rows:
        ce = m["cross_entropy"]
        cpu_ce = cpu["cross_entropy"]
        cpu_ratio = cpu["focal_loss"] / cpu_ce if cpu_ce else float("nan")
        lines.append(
            f"| {shape} | {ce * 1e3:.2f} | {m['focal_loss'] * 1e3:.2f} | "
            f"{m['forum snippet'] * 1e3:.2f} | {m['focal_loss'] / ce:.2f} | "
            f"{m['forum snippet'] / ce:.2f} | {cpu_ratio:.2f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} rounds")
    rows = run(args.rounds)
    print(format_table(rows))
    worst = max(m["focal_loss"] / m["cross_entropy"] for _, m, _ in rows)
    print(f"worst focal / CE ratio: {worst:.2f} (target <= 1.3)")
    return rows


if __name__ == "__main__":
    main()

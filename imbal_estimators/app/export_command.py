"""The ``export`` command: a saved model as one ONNX, ``.pt2`` or TorchScript file."""

import sys

from ..estimator.export import EXPORT_FORMATS


def add_export_parser(commands, add_trusted_option):
    """Add the ``export`` subcommand to the ``commands`` of the CLI's parser."""
    formats = "; ".join(f"{name}: {text}" for name, (_, text) in EXPORT_FORMATS.items())
    parser = commands.add_parser(
        "export",
        help="export a saved model with its decision rule (ONNX, torch.export, TorchScript)",
        description="Write the model saved in MODEL_DIR (one model or an ensemble) as one "
        "graph: uint8 RGB images (N, 3, H, W) of any size in; the resize (and the network's "
        "centre crop) and normalization of predict, the class probabilities and the label "
        "index by the model's own decision rule (tuned threshold, temperature, post-hoc "
        f"adjustment) out. OUT.json names the classes and the preprocessing. Formats: {formats}.",
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="a model saved by fit or compare")
    parser.add_argument("out", metavar="OUT", help="the file to write, e.g. model.onnx")
    parser.add_argument(
        "--format",
        choices=sorted(EXPORT_FORMATS),
        default=None,
        help="default: from OUT's suffix (.onnx, .pt2, .pt), else onnx",
    )
    add_trusted_option(parser)
    return parser


def export_format(out, requested):
    """The format asked for, or the one OUT's suffix names (onnx when none does)."""
    if requested is not None:
        return requested
    for name, (suffix, _) in EXPORT_FORMATS.items():
        if str(out).lower().endswith(suffix):
            return name
    return "onnx"


def cmd_export(args, load_model):
    """Run ``export``; ``load_model(model_dir, trusted)`` is the CLI's loader."""
    model = load_model(args.model_dir, trusted=args.trusted)
    fmt = export_format(args.out, args.format)
    path = model.export(args.out, format=fmt)
    print(f"Wrote {fmt} model to {path} and its description to {path}.json", file=sys.stderr)
    return 0

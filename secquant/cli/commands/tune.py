"""``secquant tune``: train, approximate activations, search quantization parameters, run QAT, report.

Runs :func:`secquant.tuning.pipeline.run_pipeline` on a bundled data set with
progress bars over the search trials and the training epochs, prints the
per-stage accuracy table and both moduli, and optionally writes everything as
JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from secquant.errors import ConfigError


def _hidden(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--hidden takes comma-separated ints such as 128 or 128,64, got {text!r}") from exc
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"--hidden needs positive widths, got {text!r}")
    return widths


def register(subparsers: Any) -> None:
    """Add the ``tune`` command."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "tune", help="search quantization parameters, run QAT, and show where accuracy is lost",
        description="float ReLU MLP -> polynomial activations -> search (cheapest modulus within the target) "
                    "-> QAT -> accuracy per stage (float, polynomial, quantized, modular, encrypted)",
    )
    p.add_argument("--dataset", default="mnist", choices=["mnist", "digits", "breast_cancer"])
    p.add_argument("--hidden", type=_hidden, default=(128,), help="hidden widths, e.g. 128 or 128,64")
    p.add_argument("--train-limit", type=int, default=None, help="use only the first N training examples")
    p.add_argument("--test-limit", type=int, default=None, help="use only the first N test examples")
    p.add_argument("--validation", type=int, default=500, help="training examples held out for the search")
    p.add_argument("--calibration", type=int, default=1000, help="training examples that fix the scales")
    p.add_argument("--degree", type=int, default=2, help="degree of the polynomial activations")
    p.add_argument("--epochs", type=int, default=20, help="float training epochs")
    p.add_argument("--finetune-epochs", type=int, default=5, help="float epochs after the polynomial swap")
    p.add_argument("--qat-epochs", type=int, default=10)
    p.add_argument("--qat-bits", type=int, default=4)
    p.add_argument("--target-drop", type=float, default=1.0, help="accuracy points the search may lose")
    p.add_argument("--encrypted", type=int, default=0, help="test examples to run under --scheme (0: skip)")
    p.add_argument("--scheme", default="bfv", help="scheme of the encrypted stage (bfv, or plain for a dry run)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", dest="json_path", type=Path, default=None, help="write all results to this JSON file")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(func=run)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace) -> int:
    """Run the pipeline; returns 0.

    Raises:
        ConfigError: invalid sizes (reported by the CLI with exit code 2).
    """
    from secquant.tuning.pipeline import PipelineConfig, run_pipeline

    if args.train_limit is not None and args.train_limit <= args.validation:
        raise ConfigError(f"--train-limit ({args.train_limit}) must exceed --validation ({args.validation})")
    cfg = PipelineConfig(
        dataset=args.dataset, hidden=args.hidden, train_limit=args.train_limit, test_limit=args.test_limit,
        validation=args.validation, calibration=args.calibration, degree=args.degree,
        float_epochs=args.epochs, finetune_epochs=args.finetune_epochs, qat_epochs=args.qat_epochs,
        qat_bits=args.qat_bits, target_drop=args.target_drop, encrypted=args.encrypted,
        scheme=args.scheme, seed=args.seed,
    )
    result = run_pipeline(cfg, progress=not args.no_progress)
    print(result.summary())
    if args.json_path is not None:
        _write_json(args.json_path, result.to_dict())
        print(f"wrote {args.json_path}")
    return 0

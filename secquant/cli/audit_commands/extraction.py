"""``secquant audit extraction``: how many queries steal a quantized model under each release policy.

Trains a reference victim (``--victim logistic`` on breast cancer, ``--victim
mlp`` on digits) or loads one (``--model FILE``), then attacks it through a
query function that applies each release policy to ``forward_int``: equation
solving (exact for linear and logistic models at full precision) and a
learning attack (a surrogate trained on the answers).  Writes a report folder
(``results.json``, ``fidelity.png``, ``summary.md``, ``table.txt``) to
``--out`` with the per-key query budget that keeps fidelity below ``--target``.

Policies (in logits): ``full``, ``lround<k>`` (k fractional bits; ``lround-2``
rounds to multiples of 4), ``dgauss<sigma>``, ``eps<E>`` (discrete Gaussian
noise calibrated to ε = E per query over all outputs, δ = 1e-5), ``round<k>``
(probabilities), ``top1``.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from secquant.errors import ConfigError

__all__ = ["build_config", "policies_for", "register", "run"]

_DATA = {"logistic": "breast_cancer", "mlp": "digits"}


def register(subparsers: Any) -> None:
    """Add ``extraction`` under ``secquant audit``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "extraction", help="model-extraction audit: queries to steal the model under each release policy",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--victim", default="logistic", help="logistic or mlp: train this reference victim (default logistic)")
    p.add_argument("--model", default=None, help="attack this saved QuantizedModel instead (needs --data)")
    p.add_argument("--trusted", action="append", default=None, help="public key the --model must be signed by (repeatable)")
    p.add_argument("--model-key", default=None, help="key file of an encrypted --model")
    p.add_argument("--data", default=None, help="digits, breast_cancer or mnist (default: breast_cancer for "
                                                "logistic, digits for mlp)")
    p.add_argument("--policies", default="full,lround0,eps1", help="comma-separated (default full,lround0,eps1)")
    p.add_argument("--attacks", default="equation,learning", help="equation, learning (default both)")
    p.add_argument("--budgets", default="8,16,31,64,128,256", help="query counts (default 8,16,31,64,128,256)")
    p.add_argument("--target", type=float, default=0.9, help="fidelity the budget must stay below (default 0.9)")
    p.add_argument("--trials", type=int, default=1, help="repetitions per cell (default 1)")
    p.add_argument("--hidden", type=int, default=64, help="surrogate hidden width (default 64)")
    p.add_argument("--steps", type=int, default=1500, help="surrogate optimizer steps (default 1500)")
    p.add_argument("--epochs", type=int, default=30, help="victim training epochs (default 30)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--out", required=True, help="report folder (created; files inside are replaced)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plot")
    p.set_defaults(func=run)


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in str(text).split(",") if t.strip())
    except ValueError:
        raise ConfigError(f"--{what} must be comma-separated integers, got {text!r}") from None


def policies_for(text: str, classes: int) -> tuple[Any, ...]:
    """Policies from their comma-separated labels; ``eps<E>`` is calibrated for ``classes`` outputs.

    Raises:
        ConfigError: an unknown label.
    """
    from secquant.dp.release import DiscreteGaussianLogits, parse_policy

    out = []
    for item in (t.strip() for t in str(text).split(",") if t.strip()):
        m = re.fullmatch(r"eps:?([0-9]*\.?[0-9]+)", item.lower())
        out.append(DiscreteGaussianLogits.calibrated(float(m.group(1)), outputs=classes) if m else parse_policy(item))
    if not out:
        raise ConfigError("--policies names no policy")
    return tuple(out)


def _check_policies(text: str) -> None:
    """Refuse unknown labels before any training (``eps<E>`` is calibrated later)."""
    from secquant.dp.release import parse_policy

    for item in (t.strip() for t in str(text).split(",") if t.strip()):
        if not re.fullmatch(r"eps:?([0-9]*\.?[0-9]+)", item.lower()):
            parse_policy(item)


def _victim(args: argparse.Namespace) -> Any:
    from secquant.audit.extraction.victims import train_victim, victim_from_model

    if args.model is None:
        if args.victim not in _DATA:
            raise ConfigError(f"--victim must be logistic or mlp, got {args.victim!r}")
        return train_victim(args.victim, args.data or _DATA[args.victim], epochs=args.epochs, seed=args.seed)
    if args.data is None:
        raise ConfigError("--model needs --data NAME for the attacker's pool and the held-out inputs")
    from secquant.quant.model import QuantizedModel

    qm = QuantizedModel.load(args.model, trusted=args.trusted, decrypt_with=args.model_key)
    return victim_from_model(qm, args.data, seed=args.seed, description=f"{args.model} on {args.data}")


def build_config(args: argparse.Namespace, classes: int) -> Any:
    """The :class:`ExtractionAuditConfig` the arguments describe.

    Raises:
        ConfigError: any argument out of range.
    """
    from secquant.audit.extraction.audit import ExtractionAuditConfig

    return ExtractionAuditConfig(
        policies=policies_for(args.policies, classes),
        attacks=tuple(a.strip() for a in args.attacks.split(",") if a.strip()),
        budgets=_ints(args.budgets, "budgets"), target_fidelity=args.target, trials=args.trials,
        hidden=args.hidden, steps=args.steps, seed=args.seed,
    )


def run(args: argparse.Namespace) -> int:
    """Run the audit, print the table and budgets, write the report; returns the exit code."""
    import numpy as np

    from secquant.audit.extraction.audit import run_extraction_audit
    from secquant.audit.extraction.report import budget_sentence, write_report

    _check_policies(args.policies)
    victim = _victim(args)
    cfg = build_config(args, int(np.prod(victim.qm.interface().output_shape)))
    result = run_extraction_audit(victim, cfg)
    print(result.table())
    for p in cfg.policies:
        eps = result.epsilon.get(p.label)
        tail = f"; ε per query {eps[0]:.3g} at δ={eps[1]:g}" if eps else ""
        print(f"{p.label}: to stay below {cfg.target_fidelity:.0%} fidelity, {budget_sentence(result, p.label)}{tail}")
    for note in result.notes:
        print(f"note: {note}")
    paths = write_report(result, args.out, plots=not args.no_plots)
    print(f"report: {paths[0].parent} ({', '.join(p.name for p in paths)}) in {result.seconds:.0f} s")
    return 0

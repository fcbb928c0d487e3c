"""How many queries steal a quantized model, under each release policy?

Trains a reference victim, then attacks it through a query function that
applies a release policy to its integer outputs, as the service would:
equation solving (Tramèr et al. 2016; exact for linear models at full
precision) and a surrogate trained on the answers.  Prints the table and the
per-key query budget that keeps the stolen copy below the target fidelity,
and writes a report folder (JSON, PNG plot, Markdown).

    python examples/extraction_audit.py --victim logistic --out /tmp/extraction      # about a minute
    python examples/extraction_audit.py --victim mlp --budgets 25,100,400 --out /tmp/extraction-mlp
    python examples/extraction_audit.py --budgets 16,31 --steps 100 --out /tmp/x     # seconds

Same audit from the shell: ``secquant audit extraction --help``.
"""

from __future__ import annotations

import argparse
import sys

from secquant.audit.extraction import (
    ExtractionAuditConfig,
    run_extraction_audit,
    train_victim,
    write_report,
)
from secquant.audit.extraction.report import budget_sentence
from secquant.dp.release import DiscreteGaussianLogits, FullLogits, RoundedLogits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--victim", default="logistic", help="logistic (breast cancer) or mlp (digits)")
    parser.add_argument("--budgets", default="8,16,31,64,128", help="query counts")
    parser.add_argument("--trials", type=int, default=1, help="repetitions per cell")
    parser.add_argument("--steps", type=int, default=1500, help="surrogate optimizer steps")
    parser.add_argument("--epochs", type=int, default=30, help="victim training epochs")
    parser.add_argument("--epsilon", type=float, default=1.0, help="ε per query of the noisy policy")
    parser.add_argument("--out", required=True, help="report folder")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plot")
    args = parser.parse_args(argv)

    data = {"logistic": "breast_cancer", "mlp": "digits"}[args.victim]
    victim = train_victim(args.victim, data, epochs=args.epochs)
    classes = int(victim.qm.interface().output_shape[-1])
    noisy = DiscreteGaussianLogits.calibrated(args.epsilon, outputs=classes)  # ε per query over all outputs
    config = ExtractionAuditConfig(policies=(FullLogits(), RoundedLogits(0), noisy),
                                   budgets=tuple(int(b) for b in args.budgets.split(",")),
                                   trials=args.trials, steps=args.steps)
    result = run_extraction_audit(victim, config)
    print(result.victim["description"], f"(held-out accuracy {result.victim['accuracy']:.1%})")
    print(result.table())
    for p in config.policies:
        print(f"{p.label}: to stay below {config.target_fidelity:.0%} fidelity, {budget_sentence(result, p.label)}")
    paths = write_report(result, args.out, plots=not args.no_plots)
    print(f"report: {paths[0].parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``easyocc compare``: run an experiment (a shipped one by name, or a YAML file) and write its report."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--experiment", default="compare",
                        help="an experiment YAML file, or the name of a shipped one (default compare; --list shows "
                             "them)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default compare-output/<experiment name>)")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override experiment values, e.g. --set world.scenes=4 training.epochs=2 "
                             "variants.easyocc.overrides=[loss.region=all]")
    parser.add_argument("--docs", type=Path, default=None, metavar="DIR",
                        help="also copy the report into DIR as NAME.md, NAME.csv, NAME.json, NAME.png, "
                             "NAME_per_class.csv and NAME_per_class_iou.png (NAME: the experiment's)")
    parser.add_argument("--workers", type=int, default=2, help="processes for labelling and evaluation (default 2)")
    parser.add_argument("--device", default=None,
                        help="training and prediction device: cpu, cuda, cuda:1 (default: each config's, auto)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--list", action="store_true", help="list the shipped experiments and exit")


def list_experiments() -> list[tuple[str, str]]:
    """(name, first line of the description) of every shipped experiment."""
    from easyocc.experiments.definition import BUILTIN_EXPERIMENT_DIR, load_experiment

    out = []
    for path in sorted(BUILTIN_EXPERIMENT_DIR.glob("*.yaml")):
        description = load_experiment(path).config.description.strip().splitlines()
        out.append((path.stem, description[0] if description else ""))
    return out


def run(args: argparse.Namespace) -> int:
    from easyocc.errors import EasyOccError
    from easyocc.experiments.definition import load_experiment
    from easyocc.experiments.runner import RunOptions, run_experiment

    if args.list:
        for name, line in list_experiments():
            print(f"{name:18s} {line}")
        return 0
    if args.workers < 1:
        raise EasyOccError(f"--workers must be at least 1 (got {args.workers})")
    experiment = load_experiment(args.experiment, args.overrides)
    out = args.out or Path("compare-output") / experiment.name
    report = run_experiment(experiment, out, RunOptions(workers=args.workers, device=args.device, quiet=args.quiet))
    print(f"report: {report}")
    if args.docs is not None:
        from easyocc.experiments.report import export_report

        written = export_report(report.parent, args.docs, experiment.name)
        print(f"exported: {', '.join(str(p) for p in written)}")
    return 0

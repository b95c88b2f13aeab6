"""`probgen sbc`: simulation-based calibration of a model and a method."""

from __future__ import annotations

from pathlib import Path

from probgen.cli.common import EXIT_FAILED_VERDICT, raise_usage
from probgen.cli.parser import _options_and_settings


def sbc(args, spec) -> int:
    from probgen import report
    from probgen.checks.sbc import run_sbc, write_sbc

    from probgen.infer import methods

    if not methods.for_spec(None, spec).gives_posterior_sample:
        raise_usage(f"simulation-based calibration needs posterior draws of global parameters; model '{spec.name}' "
                    f"is fitted by {methods.for_spec(None, spec).describe()} to point estimates of its networks")
    options, given, _ = _options_and_settings(args)
    if args.simulations < 1 or args.num_draws < 1:
        raise_usage(f"--simulations and --num-draws must be >= 1 (got {args.simulations}, {args.num_draws})")
    if args.workers is not None and args.workers < 1:
        raise_usage(f"--workers must be >= 1, got {args.workers}")
    if not 0 < args.alpha < 1:
        raise_usage(f"--alpha must be in (0, 1), got {args.alpha}")
    simulation_options = _simulate_options(args.simulate_option, spec)
    out = Path(args.out) if args.out else Path("runs") / f"sbc_{spec.name}_{args.method}"
    report.check_destination(out, args.overwrite)
    # Dask workers load the model again from its name or path
    reference = args.model if (args.workers or args.scheduler) else spec
    result = run_sbc(reference, args.data, args.method, columns=args.columns.split(",") if args.columns else None,
                     simulation_options=simulation_options, options=options, simulations=args.simulations,
                     num_draws=args.num_draws, seed=args.seed, workers=args.workers, scheduler=args.scheduler,
                     alpha=args.alpha, progress=not args.quiet, **given)
    folder = write_sbc(result, out, overwrite=args.overwrite)
    print(f"{'CALIBRATED' if result.passed else 'MISCALIBRATED'}: {result.summary()}")
    print(f"SBC folder: {folder}  (open {folder / 'report.html'})")
    return 0 if result.passed else EXIT_FAILED_VERDICT


def _simulate_options(pairs: list[str], spec) -> dict:
    """NAME=VALUE pairs of --simulate-option, converted by the model option's type."""
    known = {option.name: option for option in spec.options}
    parsed = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in known:
            listed = ", ".join(known) or "none"
            raise_usage(f"--simulate-option '{pair}': expected NAME=VALUE with NAME an option of model "
                        f"'{spec.name}' ({listed})")
        option = known[name]
        try:
            value = option.type(text)
        except ValueError:
            raise_usage(f"--simulate-option {name}: '{text}' is not a valid {option.type.__name__}")
        if option.choices and value not in option.choices:
            raise_usage(f"--simulate-option {name}: '{text}' is not one of {', '.join(map(str, option.choices))}")
        parsed[name] = value
    return parsed

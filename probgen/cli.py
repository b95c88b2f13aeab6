"""The `probgen` command line: fit, report, sample, predict, compare, sbc, models, datasets.

Exit statuses (the README's "Exit statuses"), the same for every command:
  0    finished, and the verdict is trusted or suspect (sbc: calibrated; compare: a model can be
       preferred);
  3    finished, everything is written, and the verdict is FAILED (sbc: the ranks are not
       uniform; compare: every run failed its checks, so no model can be preferred);
  2    bad input: one line without a traceback, nothing written;
  1    a step failed after the draws were saved (the run folder names it);
  130  interrupted (a fit that saves as it goes can be resumed).
Ctrl-C leaves no half-written run folder: a fit that saves its work as
it goes (NUTS, HMC, SVI, MAP, the VAE's training) leaves its folder marked unfinished, holding
every finished chunk, which `probgen report` reports and `probgen fit --resume` carries on; any
other fit's folder is only written, atomically, at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_STEP_FAILED = 1  # a step after inference failed; the run folder holds the draws and names it
EXIT_BAD_INPUT = 2
EXIT_FAILED_VERDICT = 3  # finished and written, but the verdict is FAILED: do not use the estimates
EXIT_INTERRUPTED = 130


def verdict_status(overall: str) -> int:
    """The exit status of a command that finished with this overall verdict."""
    return EXIT_FAILED_VERDICT if overall == "failed" else 0

def method_flags() -> dict[str, tuple]:
    """flag -> (setting name, type, help, names of the methods it applies to), generated from
    the registered methods' `Setting`s: a method brings its flags with it."""
    from probgen.infer import methods

    flags: dict[str, list] = {}
    defaults: dict[str, dict] = {}
    for method in methods.registered():
        label = method.command_name if not method.exclusive else method.describe()
        for setting in method.settings:
            if setting.help is None:
                continue
            entry = flags.setdefault(setting.flag, [setting.name, setting.type, setting.help, []])
            if entry[1] is not setting.type:
                raise TypeError(f"{setting.flag}: {method.name} gives it type {setting.type.__name__}, another "
                                f"method {entry[1].__name__}")
            entry[3].append(method.name)
            defaults.setdefault(setting.flag, {}).setdefault(str(setting.default), []).append(label)
    described = {}
    for flag, (dest, kind, help_text, names) in flags.items():
        values = defaults[flag]
        default = (f"default {next(iter(values))}" if len(values) == 1 else
                   "default " + "; ".join(f"{', '.join(labels)} {value}" for value, labels in values.items()))
        described[flag] = (dest, kind, f"{help_text} ({default})", tuple(names))
    return described


SWITCHES = {"--quiet", "--overwrite", "--standardize", "--help", "-h"}


def _model_argument(argv: list[str]) -> str | None:
    """The MODEL positional of `probgen fit`, found before full parsing so that the model's
    own options can be added to the parser (and shown by --help). Every flag but the
    switches takes a value."""
    if not argv or argv[0] not in ("fit", "sbc"):
        return None
    tokens = iter(argv[1:])
    for token in tokens:
        if token.startswith("-"):
            if token not in SWITCHES and "=" not in token:
                next(tokens, None)
            continue
        return token
    return None


def _flag_argument(argv: list[str], flag: str) -> str | None:
    """The value of `flag` in argv (the last one given), read before full parsing."""
    found = None
    for index, token in enumerate(argv):
        if token.startswith(flag + "="):
            found = token.split("=", 1)[1]
        elif token == flag and index + 1 < len(argv):
            found = argv[index + 1]
    return found


def _chains_argument(argv: list[str], default: int = 4) -> int:
    """The value of --chains if given and valid (`default` otherwise), read before JAX starts."""
    value = _flag_argument(argv, "--chains")
    if value is None:
        return default
    try:
        return max(1, int(value))
    except ValueError:
        return default


def build_parser(model_spec=None) -> argparse.ArgumentParser:
    from probgen.infer import METHODS, methods

    parser = argparse.ArgumentParser(
        prog="probgen",
        description="Fit generative models written as NumPyro functions, check the fit, and report whether to trust it.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fit = commands.add_parser("fit", help="fit a model to data and write a run folder with its report",
                              description="Fit MODEL to DATA and write a run folder (posterior, diagnostics, "
                                          "report.html). MODEL is a built-in name (see `probgen models`) or a path "
                                          "to a .py file defining SPEC or a function `model`.")
    fit.add_argument("model", metavar="MODEL", nargs="?",
                     help="built-in model name or path to a model .py file (with --resume: the run's)")
    fit.add_argument("--data", metavar="DATA",
                     help="a .json file of named values (Stan/posteriordb form), a .npz file, a .csv/.tsv/.parquet "
                          "table (one argument per column) or a bundled data set (see `probgen datasets`); required "
                          "unless --resume (the run's)")
    fit.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="sets",
                     help="give the model argument NAME this value (a number or a JSON list); repeatable, and it "
                          "overrides the data's entry of that name")
    fit.add_argument("--columns", metavar="A,B", help="comma-separated columns to use (default: all numeric)")
    fit.add_argument("--standardize", action="store_true",
                     help="fit to standardised columns; the summary is converted back to original units")
    fit.add_argument("--holdout", type=float, default=0.0, metavar="FRACTION",
                     help="keep this fraction of rows (drawn with --seed) out of the fit; the report scores the model "
                          "on them and compares generated data with them (default 0: fit every row)")
    fit.add_argument("--method", choices=METHODS, default=None,
                     help="inference method (default nuts; svi for amortised models such as vae; see `probgen methods`)")
    fit.add_argument("--seed", type=int, default=None,
                     help="random seed; the same seed gives the same draws (default 0; with --resume, the run's)")
    fit.add_argument("--out", metavar="RUN_DIR", help="run folder to write (default runs/<model>_<data>_<method>)")
    fit.add_argument("--overwrite", action="store_true", help="replace RUN_DIR if it exists")
    fit.add_argument("--quiet", action="store_true", help="no progress bars")
    fit.add_argument("--resume", metavar="RUN_DIR",
                     help="carry on the run in RUN_DIR from its last save (NUTS, HMC, SVI, MAP, the minibatch trainer) "
                          "with its model, data, options and settings: `probgen fit --resume RUN_DIR` alone; flags given "
                          "anyway must agree with the run, except a higher --draws (NUTS, HMC) or --steps (SVI, MAP, "
                          "minibatch), which extends it")
    fit.add_argument("--init-from", metavar="RUN_DIR",
                     help="NUTS, HMC: start from the final positions, step sizes and mass matrices of the run in "
                          "RUN_DIR (the same model, e.g. on updated data); give a short --warmup (under 150 keeps "
                          "the mass matrix and re-tunes the step size)")
    _add_settings_and_options(fit, model_spec)
    parser.fit_parser = fit  # `main` names what `probgen fit` lacks

    sbc = commands.add_parser(
        "sbc", help="simulation-based calibration of a model and inference method",
        description="Draw parameters from the prior, simulate data sets shaped like DATA, fit each, and test whether "
                    "the ranks of the true parameters among the posterior draws are uniform. Writes a folder with "
                    "ranks, rank histograms, ECDF-difference plots and a report; exits 3 if miscalibrated. MCMC "
                    "defaults here are 2 chains x 500 warm-up x 500 draws, SVI 5000 steps.")
    sbc.add_argument("model", metavar="MODEL", help="built-in model name or path to a model .py file")
    sbc.add_argument("--data", required=True, metavar="DATA",
                     help="data whose design the simulations copy (number of rows, columns; for a model bound by "
                          "name, every argument, e.g. a .json file); the observed values are not fitted")
    sbc.add_argument("--columns", metavar="A,B", help="comma-separated columns to use (default: all numeric)")
    sbc.add_argument("--method", default="nuts",
                     choices=list(dict.fromkeys(m.command_name for m in methods.registered() if m.gives_posterior_sample)),
                     help="inference method under test (default nuts)")
    sbc.add_argument("--simulations", type=int, default=200, help="number of simulated data sets (default 200)")
    sbc.add_argument("--num-draws", type=int, default=99,
                     help="thinned posterior draws each true value is ranked among (default 99)")
    sbc.add_argument("--alpha", type=float, default=0.01,
                     help="significance level of the Holm-adjusted uniformity tests (default 0.01)")
    sbc.add_argument("--workers", type=int, metavar="N",
                     help="run the simulations on N local Dask worker processes (needs probgen[distributed])")
    sbc.add_argument("--scheduler", metavar="ADDRESS", help="run them on the Dask cluster at this address instead")
    sbc.add_argument("--simulate-option", action="append", default=[], metavar="NAME=VALUE",
                     help="simulate with this model option but fit with the one given normally (repeatable): SBC of "
                          "a deliberately misspecified fit, e.g. --simulate-option noise_sd=1 --noise-sd 3")
    sbc.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sbc.add_argument("--out", metavar="DIR", help="folder to write (default runs/sbc_<model>_<method>)")
    sbc.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    sbc.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_settings_and_options(sbc, model_spec)

    report = commands.add_parser("report", help="rebuild the report of a run folder",
                                 description="Recompute diagnostics and rewrite the summary, plots and report of RUN_DIR.")
    report.add_argument("run_dir", metavar="RUN_DIR")

    sample = commands.add_parser("sample", help="draw new data from a fitted model's posterior predictive",
                                 description="Draw N new rows from the posterior predictive of RUN_DIR (each row from "
                                             "a random posterior draw) and write them as CSV in the data's original units. "
                                             "For a language model: continue --prompt by N characters, printed or "
                                             "written to --out.")
    sample.add_argument("run_dir", metavar="RUN_DIR")
    sample.add_argument("-n", "--num", type=int, required=True, metavar="N",
                        help="number of rows to draw (language models: characters to write)")
    sample.add_argument("--out", metavar="FILE", help="file to write (CSV; a language model's text: any name, "
                                                      "default: print it)")
    sample.add_argument("--prompt", default=None, help="language models: the text to continue (default: a new document)")
    sample.add_argument("--temperature", type=float, default=1.0,
                        help="language models: sharpen (< 1) or flatten (> 1) the next-character distribution")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sample.add_argument("--overwrite", action="store_true", help="replace FILE.csv if it exists")

    predict = commands.add_parser("predict", help="posterior predictive of a fitted model at new inputs",
                                  description="Predict the target of each row of DATA (the fitted feature columns) with "
                                              "the posterior of RUN_DIR, and write one CSV row per input row: mean, sd "
                                              "and predictive quantiles (regression) or class probabilities.")
    predict.add_argument("run_dir", metavar="RUN_DIR")
    predict.add_argument("--data", required=True, metavar="DATA",
                         help="the new inputs: .json/.npz of named values or a .csv/.tsv/.parquet table")
    predict.add_argument("--out", required=True, metavar="FILE.csv",
                         help="CSV file to write (a model bound by name also gets FILE.nc with every predictive draw)")
    predict.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="sets",
                         help="give the model argument NAME this value (as for fit)")
    predict.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    predict.add_argument("--overwrite", action="store_true", help="replace FILE.csv if it exists")

    compare = commands.add_parser("compare", help="rank fitted models by PSIS-LOO",
                                  description="Rank the models of two or more run folders (fitted to the same data) by "
                                              "PSIS-LOO, with elpd differences and their standard errors, each run's "
                                              "convergence verdict, and the points whose Pareto k exceeds 0.7.")
    compare.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    compare.add_argument("--out", metavar="DIR", help="also write comparison.html/.md/.csv/.json to this folder")
    compare.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")

    commands.add_parser("models", help="list the built-in models and their options")
    commands.add_parser("methods", help="list the inference methods and their settings")
    commands.add_parser("datasets", help="list the bundled data sets")
    return parser


def _add_settings_and_options(parser, model_spec) -> None:
    settings = parser.add_argument_group("inference settings")
    for flag, (dest, kind, help_text, _) in method_flags().items():
        settings.add_argument(flag, dest=f"setting_{dest}", type=kind, default=None, help=help_text,
                              metavar=dest.upper())
    if model_spec is not None and model_spec.options:
        group = parser.add_argument_group(f"options of model '{model_spec.name}'")
        for option in model_spec.options:
            group.add_argument(f"--{option.name.replace('_', '-')}", dest=f"option_{option.name}", type=option.type,
                               default=None, choices=option.choices, metavar=None if option.choices else option.name.upper(),
                               help=option.help + (f" (default {option.default})" if option.default not in ("", None) else ""))


def _options_and_settings(args, spec=None) -> tuple[dict, dict, object]:
    """The model options, the inference settings given on the command line and the method
    that fits (`probgen.infer.methods`); a setting that does not apply to it is an error."""
    from probgen.infer import methods

    method = methods.for_spec(args.method, spec)
    args.method = method.command_name
    options = {name[len("option_"):]: value for name, value in vars(args).items() if name.startswith("option_")}
    given = {name[len("setting_"):]: value for name, value in vars(args).items()
             if name.startswith("setting_") and value is not None}
    applicable = {setting.name for setting in method.settings if setting.help is not None}
    not_applicable = sorted(k for k in given if k not in applicable)
    if not_applicable:
        flags = ", ".join("--" + k.replace("_", "-") for k in not_applicable)
        raise_usage(f"{flags} do{'es' if len(not_applicable) == 1 else ''} not apply to {method.describe()}")
    if getattr(args, "resume", None) and not (method.checkpoints or method.durable):
        raise_usage(f"--resume applies to methods that save their work as they go (nuts, hmc, svi, map, and amortised "
                    f"models such as vae), not to {method.describe()} of '{spec.name if spec else args.model}'")
    if getattr(args, "init_from", None) and not method.warm_starts:
        raise_usage(f"--init-from applies to --method nuts and hmc, not to {method.describe()}")
    return options, given, method


def raise_usage(message: str):
    from probgen.errors import ProbgenError

    raise ProbgenError(message)


def _report(args) -> int:
    from probgen import report
    from probgen.infer import durable
    from probgen.spec import load_spec

    saved = durable.read_checkpoint(args.run_dir) if Path(args.run_dir).is_dir() else None
    if saved is not None and (saved.get("status") != "finished" or not (Path(args.run_dir) / "posterior.nc").is_file()):
        return _report_stored(args.run_dir, saved)
    _, config = report.load_run(args.run_dir)
    spec = None
    try:
        spec = load_spec(config["model"]["reference"])
    except Exception as exc:  # the model file may have moved; the report still works without its plots
        print(f"note: model '{config['model']['reference']}' could not be loaded ({exc}); "
              "model-specific plots are left out", file=sys.stderr)
    folder = report.rebuild_report(args.run_dir, spec)
    import json

    verdict = json.loads((folder / "diagnostics.json").read_text())
    print(f"{verdict['overall'].upper()}: {verdict['summary']}")
    print(f"report: {folder / 'report.html'}")
    return verdict_status(verdict["overall"])


def _report_stored(run_dir, saved: dict) -> int:
    """The report of the draws an MCMC run folder holds before the run finished (stopped, or
    still sampling): the data prepared again from the run's request, the verdict judged on the
    draws so far, the report headed "incomplete: N of M draws". The report files are written
    beside the chunks; nothing the run needs to carry on is touched."""
    from probgen import report
    from probgen.infer.driver import stored_fit
    from probgen.runfolder import _write_report_files

    fit, progress = stored_fit(run_dir)
    for note in progress["damaged"][:1]:
        print(f"probgen: {run_dir}: {note} cannot be read; it and the chunks after it were moved to chains/damaged/",
              file=sys.stderr)
    config = report.run_config(fit)
    incomplete = saved.get("status") != "finished"
    if incomplete:
        config["incomplete"] = {"draws": progress["draws"], "of": progress["of"], "chunks": progress["chunks"]}
    built = report.build_report(fit.idata, config, fit.spec)
    _write_report_files(Path(run_dir), built)
    heading = f"INCOMPLETE ({progress['draws']} of {progress['of']} draws per chain) " if incomplete else ""
    print(f"{heading}{built.assessment.overall.upper()}: {built.assessment.summary}")
    print(f"report: {Path(run_dir) / 'report.html'}")
    return verdict_status(built.assessment.overall)


def _sample(args) -> int:
    from probgen.sampling import continued_text, posterior_predictive_table, write_csv

    if args.num < 1:
        raise_usage(f"-n must be >= 1, got {args.num}")
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not args.overwrite:
        raise_usage(f"output file '{out}' already exists (use --overwrite to replace it)")
    text = continued_text(args.run_dir, args.prompt, args.num, args.temperature, seed=args.seed)
    if text is not None:
        if out is None:
            print(text)
        else:
            out.write_text(text + "\n", encoding="utf-8")
            print(f"wrote {len(text)} characters to {out}")
        return 0
    if args.prompt is not None:
        raise_usage("--prompt continues a text; the model of this run is not a language model")
    if out is None:
        raise_usage("--out FILE.csv is required: where to write the new rows")
    table = posterior_predictive_table(args.run_dir, args.num, seed=args.seed)
    write_csv(table, out)
    print(f"wrote {len(table)} rows to {out}")
    return 0


def _predict(args) -> int:
    import jax

    from probgen import data, report
    from probgen.sampling import write_csv
    from probgen.spec import is_plain_model, load_spec

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise_usage(f"output file '{out}' already exists (use --overwrite to replace it)")
    idata, config = report.load_run(args.run_dir)
    spec = load_spec(config["model"]["reference"])
    key = jax.random.PRNGKey(args.seed)
    if spec.predict is not None:
        from probgen.data_kinds import kind_of

        frame = kind_of(spec).read_rows(args.data)  # a table's rows, or (user, item) pairs with ids of any type
        table = spec.predict(idata, config["model"]["options"], frame, key)
    elif is_plain_model(spec) and "keys" in (config.get("data") or {}):  # a model bound by argument name
        from probgen.predict import posterior_predictive_at

        table, draws = posterior_predictive_at(spec, idata, args.data, key, data.parse_set(args.sets))
        netcdf = out.with_suffix(".nc")
        draws.to_netcdf(str(netcdf))
        print(f"wrote the predictive draws to {netcdf}")
    else:
        raise_usage(f"model '{spec.name}' does not predict from inputs (no ModelSpec.predict); "
                    "`probgen sample` draws new data from it")
    write_csv(table, out)
    print(f"wrote {len(table)} predictions to {out}")
    return 0


def _compare(args) -> int:
    from probgen import comparison as comparing, report

    if args.out:
        report.check_destination(Path(args.out), args.overwrite)
    comparison = comparing.compare_runs(args.run_dirs)
    import pandas as pd

    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.float_format", "{:.4g}".format):
        print(comparison.table.to_string())
    print()
    print(comparison.reading)
    for line in comparing.pareto_lines(comparison):
        print(line)
    if args.out:
        folder = comparing.write_comparison(comparison, args.out, overwrite=args.overwrite)
        print(f"comparison report: {folder / 'comparison.html'}")
    preferable = "convergence" not in comparison.table or (comparison.table["convergence"] != "failed").any()
    return 0 if preferable else EXIT_FAILED_VERDICT


def _sbc(args, spec) -> int:
    from probgen import report
    from probgen.sbc import run_sbc, write_sbc

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


def _models() -> int:
    from probgen.errors import ModelError
    from probgen.spec import builtin_model_names, load_spec

    for name in builtin_model_names():
        try:
            spec = load_spec(name)
        except ModelError:  # a family still being built (its functions exist, its SPEC not yet)
            print(f"{name}: (in development: no SPEC yet, so not fittable from the command line)")
            continue
        print(f"{name}: {spec.description}")
        for option in spec.options:
            choices = f" [{'|'.join(option.choices)}]" if option.choices else ""
            default = f" (default {option.default})" if option.default not in ("", None) else ""
            print(f"    --{option.name.replace('_', '-')}{choices}  {option.help}{default}")
    return 0


def _methods() -> int:
    import inspect

    from probgen.infer import methods

    for method in methods.registered():
        doc = (inspect.getdoc(type(method)) or "").split("\n")[0]
        print(f"{method.command_name}{'' if not method.exclusive else ' (' + method.describe() + ')'}: {doc}")
        for setting in method.settings:
            if setting.help is not None:
                print(f"    {setting.flag}  {setting.help} (default {setting.default})")
    return 0


def _datasets() -> int:
    from probgen import text_data
    from probgen.data import BUNDLED

    for name, entry in sorted(BUNDLED.items()):
        columns = ", ".join(entry.columns) if entry.columns else "all (see the description)"
        print(f"{name}: {entry.description}; columns {columns}")
    for name, description in text_data.describe().items():
        print(f"{name}: {description}; text (the language models: ngram, neural_lm, attention_lm)")
    return 0


def _interruption() -> str:
    """What an interruption now means (`probgen.interruption`: a fit that saves as it goes says
    where its work is)."""
    from probgen import interruption

    return interruption.message()


def _watch_for_interrupts() -> None:
    """Make Ctrl-C work while a compiled computation runs.

    Python runs signal handlers only between bytecodes, and a whole sampling run without a
    progress bar is one XLA call that can take hours. The C-level handler still writes the
    signal number to a wakeup pipe at once; a helper thread reads it, gives the main thread 2 s
    to handle the KeyboardInterrupt itself (it does when it is running Python, e.g. while
    writing a run folder, which it then removes), and otherwise exits with status 130. A run
    folder is either written atomically at the end or, for a fit that saves as it goes, holds
    only whole chunks (each renamed into place), so an exit at any moment leaves nothing
    half-written."""
    import signal
    import threading
    import time

    if threading.current_thread() is not threading.main_thread():
        return
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)

    def watch():
        while True:
            data = os.read(read_end, 1)
            if data and data[0] == signal.SIGINT:
                time.sleep(2.0)
                print(_interruption(), file=sys.stderr, flush=True)
                os._exit(EXIT_INTERRUPTED)

    threading.Thread(target=watch, name="probgen-interrupt", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from probgen.errors import ProbgenError

    try:
        model_reference = _model_argument(argv)
        chains = 4
        resumed, request = _flag_argument(argv, "--resume") if argv[:1] == ["fit"] else None, None
        if resumed is not None:  # `probgen fit --resume RUN_DIR`: the run's model unless MODEL is given
            from probgen.resume import model_to_load, saved_request

            request = saved_request(resumed)
            model_reference = model_reference or model_to_load(request, resumed)
            chains = int((request.get("settings") or {}).get("chains") or chains)
        spec = None
        if model_reference is not None:
            from probgen.devices import expose_cpu_devices

            expose_cpu_devices(_chains_argument(argv, chains))
            from probgen.spec import load_spec

            spec = load_spec(model_reference)
        parser = build_parser(spec)
        args = parser.parse_args(argv)
        args.argv = argv
        args.saved_request = request  # what --resume RUN_DIR saved, read once (`probgen.resume`)
        if args.command == "fit" and not args.resume and (args.model is None or args.data is None):
            missing = ", ".join(name for name, value in (("MODEL", args.model), ("--data", args.data)) if value is None)
            parser.fit_parser.error(f"the following arguments are required: {missing} (or --resume RUN_DIR alone)")
        if args.command == "fit":
            from probgen.fit_command import fit_command

            return fit_command(args, spec)
        if args.command == "report":
            return _report(args)
        if args.command == "sample":
            return _sample(args)
        if args.command == "compare":
            return _compare(args)
        if args.command == "predict":
            return _predict(args)
        if args.command == "sbc":
            return _sbc(args, spec)
        if args.command == "models":
            return _models()
        if args.command == "methods":
            return _methods()
        return _datasets()
    except ProbgenError as exc:
        print(f"probgen: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(_interruption(), file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        # Leave at once: XLA's worker threads may still be running the interrupted computation,
        # and the interpreter's normal teardown races with them (seen as a segfault at exit).
        # Nothing is left to clean up: run folders are written atomically after the fit, or hold
        # whole chunks only (a fit that saves as it goes; `_interruption` says what is kept).
        os._exit(EXIT_INTERRUPTED)


def entry_point() -> int:
    """The installed `probgen` command (and `python -m probgen.cli`)."""
    _watch_for_interrupts()
    from probgen.devices import use_compilation_cache

    use_compilation_cache()
    try:
        return main()
    except BrokenPipeError:  # `probgen models | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13  # as a shell tool killed by SIGPIPE


if __name__ == "__main__":
    sys.exit(entry_point())

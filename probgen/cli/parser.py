"""The `probgen` argument parser, generated from what is registered: each method's `Setting`s
are flags, a model's `Option`s its own group."""

from __future__ import annotations

import argparse

from probgen.cli.common import raise_usage


def method_flags(only: set[str] | None = None) -> dict[str, tuple]:
    """flag -> (setting name, type, help, names of the methods it applies to), generated from
    the registered methods' `Setting`s: a method brings its flags with it. `only`: the names of
    the methods whose defaults the help states (those that can fit the model at hand)."""
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
            if only is None or method.name in only:
                defaults.setdefault(setting.flag, {}).setdefault(str(setting.default), []).append(label)
    described = {}
    for flag, (dest, kind, help_text, names) in flags.items():
        values = defaults.get(flag) or {"": []}
        default = (f"default {next(iter(values))}" if len(values) == 1 else
                   "default " + "; ".join(f"{', '.join(labels)} {value}" for value, labels in values.items()))
        described[flag] = (dest, kind, f"{help_text} ({default})", tuple(names))
    return described


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
                     help="keep this fraction of rows (drawn with --seed) out of the fit, the same rows for every "
                          "method; the report scores the model on them and compares generated data with them (default "
                          "0: fit every row; 0.1 for the methods with --validation)")
    fit.add_argument("--method", choices=METHODS, default=None,
                     help="inference method (default nuts; svi for amortised models such as vae; see `probgen methods`)")
    fit.add_argument("--seed", type=int, default=None,
                     help="random seed; the same seed gives the same draws (default 0; with --resume, the run's)")
    fit.add_argument("--out", metavar="RUN_DIR", help="run folder to write (default runs/<model>_<data>_<method>)")
    fit.add_argument("--overwrite", action="store_true", help="replace RUN_DIR if it exists")
    fit.add_argument("--quiet", action="store_true", help="no progress bars")
    fit.add_argument("--no-plots", action="store_true",
                     help="write the report without its plots, most of the report's time (`probgen report RUN_DIR` "
                          "draws them later)")
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

    graph = commands.add_parser(
        "graph", help="print a model's graph (its sites, plates and dependencies) without fitting",
        description="Trace MODEL once on DATA and print its sites (latent, observed, deterministic, factor), "
                    "their distributions, plates and the sites each depends on; --out also draws it as a PNG. "
                    "Nothing is fitted.")
    graph.add_argument("model", metavar="MODEL", help="built-in model name or path to a model .py file")
    graph.add_argument("--data", required=True, metavar="DATA",
                       help="the data the model is traced on, as for `probgen fit`")
    graph.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="sets",
                       help="give the model argument NAME this value, as for `probgen fit`")
    graph.add_argument("--columns", metavar="A,B", help="comma-separated columns to use (default: all numeric)")
    graph.add_argument("--out", metavar="FILE.png", help="also draw the graph into this PNG file")
    graph.add_argument("--json", action="store_true", help="print the graph as JSON (nodes, edges, plates)")
    _add_model_options(graph, model_spec)

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
    """Every method's settings as flags (so that one given for the wrong method is named as
    such), but `--help` with a model shows only those of the methods that can fit it."""
    from probgen.infer import methods

    shown = None if model_spec is None else {method.name for method in methods.fitting(model_spec)}
    title = "inference settings" if model_spec is None else \
        f"inference settings (of {', '.join(sorted(methods.get(n).command_name for n in shown))})"
    settings = parser.add_argument_group(title)
    for flag, (dest, kind, help_text, names) in method_flags(shown).items():
        hidden = shown is not None and not set(names) & shown
        settings.add_argument(flag, dest=f"setting_{dest}", type=kind, default=None,
                              help=argparse.SUPPRESS if hidden else help_text, metavar=dest.upper())
    _add_model_options(parser, model_spec)


def _add_model_options(parser, model_spec) -> None:
    """The model's own options as flags (--num-components), shared by fit, sbc and graph."""
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
    if getattr(args, "resume", None) and not method.durable:
        raise_usage(f"--resume applies to methods that save their work as they go ({methods.resumable_runs()}), not "
                    f"to {method.describe()} of '{spec.name if spec else args.model}'")
    if getattr(args, "init_from", None) and not method.warm_starts:
        raise_usage(f"--init-from applies to {methods.warm_starting_runs()}, not to {method.describe()}")
    return options, given, method

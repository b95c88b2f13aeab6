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

import os
import sys
from pathlib import Path

from probgen.cli.common import (  # noqa: F401  (the command's exit statuses, as before: cli.EXIT_...)
    EXIT_BAD_INPUT, EXIT_FAILED_VERDICT, EXIT_INTERRUPTED, EXIT_STEP_FAILED, _chains_argument, _flag_argument,
    _model_argument, raise_usage, verdict_status,
)
from probgen.cli.parser import _options_and_settings, build_parser, method_flags  # noqa: F401


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
            from probgen.cli.fit import fit_command

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

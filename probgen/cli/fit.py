"""`probgen fit`: fit a model and write its run folder.

One way for every method. A method that saves as it goes (`Method.durable`: NUTS, HMC, SVI,
MAP, the minibatch trainer) gets the folder first: its checkpoint.json holds the request and
the method's chunks or state stream into it (`probgen.infer.durable`), so that `--resume`
carries on and `probgen report` reports a run stopped early. Any other method writes nothing
until it is done. Either way the finished folder is written atomically (`_write_fit`), keeping
what a later `--resume` needs (`Method.keeps`). What an interruption keeps is said through
`probgen.interruption` as it goes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from probgen import interruption
from probgen.cli.common import EXIT_STEP_FAILED, raise_usage, verdict_status
from probgen.cli.parser import _options_and_settings


def fit_command(args, spec) -> int:
    """`probgen fit`: for a `durable` method the run folder is created first and every chunk
    of draws or state streams into it, so that an interruption at any moment, kill -9
    included, leaves the finished chunks intact: `probgen report RUN_DIR` reports a sampler's
    draws and `--resume RUN_DIR` carries on. The finished run folder replaces it atomically,
    keeping what the method `keeps` (the final sampler state for `--resume --draws N` and
    `--init-from`, an optimiser's chunks or a trainer's checkpoint for `--resume --steps N`)."""
    import shutil

    from probgen import report
    from probgen.data import parse_set
    from probgen.infer import durable, fit, methods

    if args.resume:
        _take_sources_from_run(args)
    options, given, method = _options_and_settings(args, spec)  # --resume, --init-from: refused unless it can
    method.resolve(given)  # fail on bad settings before loading anything heavy
    if args.resume and args.out and Path(args.out) != Path(args.resume):
        raise_usage("give --resume RUN_DIR or --out RUN_DIR, not both: a resumed run is written where it was")
    if args.resume and args.init_from:
        raise_usage("give --resume RUN_DIR (carry on that run) or --init-from RUN_DIR (a new run started from it), "
                    "not both")
    sets = parse_set(args.sets)
    if args.resume:
        out = Path(args.resume)
        saved = durable.read_checkpoint(out) if out.is_dir() else None
        if saved is None:
            raise_usage(f"nothing to resume in '{out}': " + ("it does not exist" if not out.is_dir() else
                        f"it holds no checkpoint.json (only runs of {methods.resumable_runs()} can be resumed)"))
        options, given, saved_sets = _take_from_request(args, saved["request"], spec, method, options, given)
        sets = sets or saved_sets
    else:
        out = _default_out(args, spec)
        report.check_destination(out, args.overwrite)
    command = resume_command(out)
    started = method.durable and not args.resume  # this command made the folder: it goes if nothing is saved
    if started:
        report.start_training_folder(out, command, overwrite=args.overwrite, sampling=method.stores_draws)
    args.seed = 0 if args.seed is None else args.seed
    store = durable.ChainStore(out)

    def saved() -> int:
        """Chunks or kept state files the folder holds (0: nothing worth keeping yet, or a
        method that saves nothing as it goes)."""
        if not method.durable:
            return 0
        return len(store.files()) + sum((out / name).is_file() for name in method.keeps if name != durable.CHAINS)

    def interrupted() -> str:
        if not args.resume and not saved():  # stopped before the first save: nothing worth keeping
            if started:
                shutil.rmtree(out, ignore_errors=True)
            return interruption.NOTHING_WRITTEN
        report_them = f"report the draws so far with `probgen report {out}`, " if method.stores_draws else ""
        what = f"{len(store.files())} chunk(s) of the run are" if store.files() else "the last checkpoint is"
        return f"probgen: interrupted; {what} saved in {out}: {report_them}carry on with `{command}`"

    interruption.set_message(interrupted)
    try:
        result = fit(spec, args.data, args.method, options=options, seed=args.seed, progress=not args.quiet,
                     columns=args.columns, standardize=args.standardize, holdout=args.holdout, sets=sets,
                     reference=args.model, checkpoint_dir=out if method.durable else None,
                     resume=out if args.resume else None, init_from=args.init_from, **given)
    except KeyboardInterrupt:
        raise  # `interrupted` says what is kept
    except BaseException:
        # bad input found while preparing, or a failure before the first save: a new folder
        # holds nothing worth keeping, so it goes
        if started and not saved():
            shutil.rmtree(out, ignore_errors=True)
        interruption.reset()
        raise
    interruption.reset()
    if result.facts.get("resumed_from"):  # a trainer's checkpoint: say where it carried on
        print(f"resumed from the checkpoint at step {result.facts['resumed_from']}")
    if not method.durable:
        return _write_fit(args, result, out, args.overwrite)
    # the finished folder replaces the one the chunks went to, keeping what a later --resume needs
    return _write_fit(args, result, out, True, keep_files=method.keeps,
                      extra_json={durable.CHECKPOINT_JSON: durable.finished_checkpoint(out, method.stores_draws)})


def _default_out(args, spec) -> Path:
    data_label = Path(args.data).stem if args.data else "data"
    return Path(args.out) if args.out else Path("runs") / f"{spec.name}_{data_label}_{args.method}"


def _write_fit(args, result, out: Path, overwrite: bool, keep_files=(), extra_json=None, extra_config=None) -> int:
    """Build the report of a fit and write its run folder; print the verdict and return the exit
    status (`verdict_status`). If the report fails, the draws are still saved and the failed
    step named (exit 1)."""
    from probgen import report

    result.model_reference = args.model
    if result.inputs.unused:
        print(f"note: {args.data}: the model takes no argument named {', '.join(result.inputs.unused)}; ignored",
              file=sys.stderr)
    try:
        config = report.run_config(result)
        if getattr(args, "no_plots", False):
            config["plots"] = False
        built = report.build_report(result.idata, config, result.spec)
        folder = report.save_run(result, built, out, overwrite=overwrite, keep_files=keep_files, extra_json=extra_json,
                                 extra_config=extra_config)
    except Exception as exc:  # never lose the draws: save them, name the step, exit non-zero
        folder = report.save_draws(result, out, overwrite, f"{type(exc).__name__}: {exc}", keep_files=keep_files,
                                   extra_json=extra_json, extra_config=extra_config)
        print(f"probgen: the report failed ({type(exc).__name__}: {exc}); the draws are saved in "
              f"{folder / 'posterior.nc'}", file=sys.stderr)
        return EXIT_STEP_FAILED
    from probgen.report.runfolder import naming_the_folder

    built = naming_the_folder(built, folder)  # a hint names this run's folder, so that it runs as printed
    print(f"{built.assessment.overall.upper()}: {built.assessment.summary}")
    rerun = divergence_rerun(built.assessment, args, lambda: can_noncentre(result))
    if rerun:
        print(rerun)
    print(f"run folder: {folder}  (open {folder / 'report.html'})")
    if built.failures:
        for failure in built.failures:
            print(f"probgen: step failed: {failure['step']}: {failure['error']}", file=sys.stderr)
        print(f"probgen: the draws are saved in {folder / 'posterior.nc'}; the report names the failed steps",
              file=sys.stderr)
        return EXIT_STEP_FAILED
    return verdict_status(built.assessment.overall)


def can_noncentre(result) -> bool:
    """Whether the fitted model has a hierarchical location-scale site for --reparam to
    non-centre (a mixture's or a factor model's scales have none: the command would change
    nothing)."""
    from probgen.infer.reparam import hierarchical_sites

    try:
        return bool(hierarchical_sites(result.inputs.bound_model(result.spec.model), result.inputs.observed))
    except Exception:  # a model NumPyro's inspection cannot trace: offer the command anyway
        return True


def divergence_rerun(assessment, args, noncentrable=lambda: True) -> str | None:
    """When the verdict failed on divergent transitions: the commands that rerun the fit with the
    funnel's sites non-centred (when the divergences sit at a scale's small values, the run was
    not already non-centred and `noncentrable()` says the model has a site to non-centre) and
    with a higher --target-accept (smaller steps), or None."""
    import shlex

    from probgen.checks.diagnostics import FUNNEL_ADVICE

    verdict = next((v for v in assessment.verdicts if v.check == "divergences" and v.status == "fail"), None)
    if verdict is None:
        return None
    reparam = getattr(args, "setting_reparam", None) or "none"
    funnel = FUNNEL_ADVICE in verdict.reason and reparam == "none"
    current = args.setting_target_accept or 0.8
    higher = 0.99 if current >= 0.95 else 0.95
    if current >= 0.99 and not funnel:
        return ("The divergences persist at --target-accept 0.99: reparameterise the model (a non-centred "
                "parameterisation for hierarchical scales is the usual fix"
                + (")." if reparam != "none" else "; --reparam noncentred applies it)."))

    def command(drop: str, option: str, value: str) -> str:
        argv, skip = [], False
        for token in args.argv:
            if skip:
                skip = False
                continue
            if token == drop:
                skip = True
                continue
            if token.startswith(drop + "="):
                continue
            argv.append("--out" if token == "--resume" else token)  # a resumed run: rerun it afresh
        if getattr(args, "resume", None) and "--data" not in argv:  # `fit --resume RUN` alone: name what it resumed
            argv = [argv[0], str(args.model), "--data", str(args.data), *argv[1:]]
        if "--overwrite" not in argv:
            argv.append("--overwrite")
        return " ".join(shlex.quote(token) for token in ["probgen", *argv, option, value])

    smaller = f"rerun with smaller steps (a higher target acceptance):\n    {command('--target-accept', '--target-accept', str(higher))}"
    if funnel:
        where = verdict.reason.split("; ", 1)[1].split(": the neck of a funnel", 1)[0]
        if not noncentrable():
            return (f"Divergences: {where}. The model has no hierarchical location-scale site for --reparam to "
                    "non-centre: a prior that keeps that scale away from 0 (an inverse gamma on its square) removes "
                    "the neck. Or " + (smaller if current < 0.99 else "reparameterise the model."))
        return (f"Divergences: {where}, the neck of a funnel. Rerun with the hierarchical sites non-centred:\n    "
                f"{command('--reparam', '--reparam', 'noncentred')}\n"
                + ("or " + smaller if current < 0.99 else ""))
    return f"Divergences: {smaller}"


def _take_sources_from_run(args) -> None:
    """`--resume RUN_DIR` without MODEL or --data: the run's model reference and data source
    (`probgen.runs.resume`: the data file where it is now, or one line naming it)."""
    from probgen.runs.resume import data_to_read, model_to_load, saved_request

    from probgen.infer import durable

    request = getattr(args, "saved_request", None) or saved_request(args.resume)
    args.saved_request = request
    if args.model is None:  # where the file is now (check_resume knows it by its recorded path)
        args.model = model_to_load(request, args.resume)
    if args.method is None:  # the method that wrote the run, as --method names it (the trainer answers to svi)
        from probgen.infer import methods

        ran = (durable.read_checkpoint(args.resume) or {}).get("method")
        args.method = methods.get(ran).command_name if ran is not None else None
    if args.data is None:
        args.data = data_to_read(request, args.resume)


def _take_from_request(args, request: dict, spec, method, options: dict,
                       given: dict) -> tuple[dict, dict, dict | None]:
    """What a `--resume` command line leaves out, taken from the request of the run it resumes
    (`probgen.infer.durable.run_request`): model options, settings, seed, holdout, columns,
    standardisation (set on `args`); returns (options, settings, the run's --set values)."""
    options = {name: (request.get("options") or {}).get(name) if value is None else value
               for name, value in options.items()}
    given = {**{k: v for k, v in (request.get("settings") or {}).items() if k in method.defaults()}, **given}
    data = request.get("data") or {}
    args.seed = request.get("seed", 0) if args.seed is None else args.seed
    args.holdout = args.holdout or request.get("holdout", 0.0)
    from probgen.data.kinds import kind_of

    if not args.columns and kind_of(spec).takes_columns:  # text and ratings name their columns by options
        args.columns = data.get("columns")
    args.standardize = args.standardize or data.get("standardize", False)
    return options, given, data.get("sets")


def resume_command(out: Path) -> str:
    """The command that carries on the run in `out`: `probgen fit --resume OUT` (the folder's
    saved request holds the model, data, options and settings; `probgen.runs.resume`)."""
    import shlex

    return shlex.join(["probgen", "fit", "--resume", str(out)])

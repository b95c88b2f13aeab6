"""`probgen report`, `probgen sample` and `probgen predict`: the verbs that act on a run folder."""

from __future__ import annotations

import sys
from pathlib import Path

from probgen.cli.common import raise_usage, verdict_status


def report(args) -> int:
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
    from probgen.report.runfolder import _write_report_files

    fit, progress = stored_fit(run_dir)
    for note in progress["damaged"][:1]:
        print(f"probgen: {run_dir}: {note} cannot be read; it and the chunks after it were moved to chains/damaged/",
              file=sys.stderr)
    config = report.run_config(fit)
    incomplete = saved.get("status") != "finished"
    if incomplete:
        config["incomplete"] = {"draws": progress["draws"], "of": progress["of"], "chunks": progress["chunks"]}
    built = report.build_report(fit.idata, config, fit.spec)
    _write_report_files(Path(run_dir), built, Path(run_dir))
    heading = f"INCOMPLETE ({progress['draws']} of {progress['of']} draws per chain) " if incomplete else ""
    print(f"{heading}{built.assessment.overall.upper()}: {built.assessment.summary}")
    print(f"report: {Path(run_dir) / 'report.html'}")
    return verdict_status(built.assessment.overall)


def sample(args) -> int:
    from probgen.runs.sampling import continued_text, posterior_predictive_table, write_csv

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


def predict(args) -> int:
    import jax

    from probgen import data, report
    from probgen.runs.sampling import write_csv
    from probgen.spec import is_plain_model, load_spec

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise_usage(f"output file '{out}' already exists (use --overwrite to replace it)")
    idata, config = report.load_run(args.run_dir)
    spec = load_spec(config["model"]["reference"])
    key = jax.random.PRNGKey(args.seed)
    if spec.predict is not None:
        from probgen.data.kinds import kind_of

        frame = kind_of(spec).read_rows(args.data)  # a table's rows, or (user, item) pairs with ids of any type
        table = spec.predict(idata, config["model"]["options"], frame, key)
    elif is_plain_model(spec) and "keys" in (config.get("data") or {}):  # a model bound by argument name
        from probgen.runs.predict import posterior_predictive_at

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

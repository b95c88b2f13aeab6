"""`probgen graph`: a model's graph, read from one trace on the data, without fitting."""

from __future__ import annotations

import json
from pathlib import Path


def graph(args, spec) -> int:
    from probgen.data import parse_set
    from probgen.graph import graph_figure, graph_text
    from probgen.cli.common import raise_usage
    from probgen.infer import driver, methods
    from probgen.spec import describe_function

    method = methods.for_spec(None, spec)
    if not method.traces_model:
        raise_usage(f"model '{spec.name}' is fitted by {method.describe()}, which does not run it as a NumPyro model "
                    "whose sites are drawn: it has no graph of sites to show")
    options = {name[len("option_"):]: value for name, value in vars(args).items()
               if name.startswith("option_") and value is not None}
    columns = args.columns.split(",") if args.columns else None
    _, inputs, _ = driver.prepare(spec, args.data, spec.resolve_options(options), columns=columns,
                                  sets=parse_set(args.sets))
    found = driver.user_code(spec, lambda: driver.read_graph(spec, inputs, strict=True))
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        print(graph_text(found, f"Model graph of {describe_function(spec.model)} on {args.data}"))
    if args.out:
        import matplotlib

        matplotlib.use("Agg", force=False)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        graph_figure(found).savefig(out, dpi=110)
        print(f"drawn: {out}")
    return 0

"""The `probgen` command line: fit, report, sample, predict, compare, sbc, graph, models, datasets.

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

from probgen.cli.common import (  # noqa: F401  (the command's exit statuses, as before: cli.EXIT_...)
    EXIT_BAD_INPUT, EXIT_FAILED_VERDICT, EXIT_INTERRUPTED, EXIT_STEP_FAILED, _chains_argument, _flag_argument,
    _model_argument, raise_usage, verdict_status,
)
from probgen.cli.parser import _options_and_settings, build_parser, method_flags  # noqa: F401


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
            from probgen.runs.resume import model_to_load, saved_request

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
        args.saved_request = request  # what --resume RUN_DIR saved, read once (`probgen.runs.resume`)
        if args.command == "fit" and not args.resume and (args.model is None or args.data is None):
            missing = ", ".join(name for name, value in (("MODEL", args.model), ("--data", args.data)) if value is None)
            parser.fit_parser.error(f"the following arguments are required: {missing} (or --resume RUN_DIR alone)")
        if args.command == "fit":
            from probgen.cli.fit import fit_command

            return fit_command(args, spec)
        if args.command in ("report", "sample", "predict"):
            from probgen.cli import runs

            return getattr(runs, args.command)(args)
        if args.command == "compare":
            from probgen.cli.compare import compare

            return compare(args)
        if args.command == "graph":
            from probgen.cli.graph import graph

            return graph(args, spec)
        if args.command == "sbc":
            from probgen.cli.sbc import sbc

            return sbc(args, spec)
        from probgen.cli import listing

        return getattr(listing, args.command)()
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

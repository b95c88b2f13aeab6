"""What `probgen fit --resume RUN_DIR` carries on: the request the run folder saved, and where its
model file and data file are now.

`--resume RUN_DIR` alone is enough: the model, the data source, the columns, the options and the
settings come from the saved request (`probgen.infer.durable.run_request`, in the folder's
checkpoint.json, which every resumable method writes). A model or data file
is looked for where the command that started the run named it (relative to the current folder),
then at the absolute place recorded then; a file found in neither is one line naming it. The data
are checked against the saved hash later, when they are read (`durable.check_resume`).
"""

from __future__ import annotations

from pathlib import Path

from probgen.errors import DataError, ModelError, RunFolderError

def saved_request(run_dir) -> dict:
    """The request saved in `run_dir`, or RunFolderError naming what is missing."""
    from probgen.infer import durable

    folder = Path(run_dir)
    if not folder.is_dir():
        raise RunFolderError(f"nothing to resume in '{folder}': it does not exist")
    saved = durable.read_checkpoint(folder)
    if saved is not None and saved.get("request"):
        return saved["request"]
    from probgen.infer import methods

    raise RunFolderError(f"nothing to resume in '{folder}': it holds no saved request (checkpoint.json); only runs of "
                         f"{methods.resumable_runs()} can be resumed")


def _find(named: str, recorded: str | None) -> Path | None:
    for candidate in (named, recorded):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def model_to_load(request: dict, run_dir) -> str:
    """The model reference to load: a built-in name as saved, or the model file where it is now."""
    from probgen.spec import builtin_model_names

    reference = str(request["model"])
    if reference in builtin_model_names() or not reference.endswith(".py"):
        return reference
    found = _find(reference, request.get("model_path"))
    if found is None:
        where = f" nor at {request['model_path']}" if request.get("model_path") else ""
        raise ModelError(f"the model file '{reference}' of the run in '{run_dir}' is not there{where} any more (moved "
                         f"or deleted?): give its new place as MODEL")
    return str(found)


def data_to_read(request: dict, run_dir) -> str:
    """The data source to read: a bundled name as saved, or the data file where it is now."""
    data = request.get("data") or {}
    source = str(data.get("source"))
    recorded = data.get("path")
    if recorded is None and not Path(source).suffix:
        return source  # a bundled data set (`probgen datasets`)
    found = _find(source, recorded)
    if found is None:
        where = f" nor at {recorded}" if recorded and recorded != source else ""
        raise DataError(f"the data file '{source}' of the run in '{run_dir}' is not there{where} any more (moved or "
                        f"deleted?): give its new place with --data")
    return str(found)


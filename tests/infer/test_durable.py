"""Long MCMC runs that survive (`probgen.infer.durable`), through the Python API: the draws
stream to a checkpoint folder chunk by chunk; a run stopped at any chunk resumes to exactly the
draws of an uninterrupted run; a damaged chunk is dropped and re-drawn; a finished run is
extended; a warm start takes a finished run's positions, step sizes and mass matrices.

A stopped run is simulated here by removing the chunks after a point (what a kill leaves: every
chunk is written to a temporary name and renamed, so a file is whole or absent); the CLI
tests (`tests/test_long_runs.py`) kill real processes."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from probgen.errors import InferenceError
from probgen.infer import fit
from probgen.infer.durable import CHECKPOINT_JSON, STATE, ChainStore

from _seeds import seeded

REPO = Path(__file__).resolve().parents[2]
MODEL = str(REPO / "benchmarks" / "eight_schools" / "model.py")
DATA = str(REPO / "benchmarks" / "eight_schools" / "data.json")
# checkpoint_overhead 0: a save every 5% of the run, however short (these runs take a second)
SETTINGS = {"chains": 2, "warmup": 100, "draws": 100, "progress": False, "checkpoint_overhead": 0.0}


def same_draws(a, b, draws=None) -> bool:
    """Bit-for-bit equality of every posterior variable and sample statistic (the first
    `draws` draws of b)."""
    cut = slice(None) if draws is None else slice(0, draws)
    return (set(a.posterior.data_vars) == set(b.posterior.data_vars)
            and all(np.array_equal(a.posterior[v].values, b.posterior[v].values[:, cut]) for v in a.posterior.data_vars)
            and all(np.array_equal(a.sample_stats[v].values, b.sample_stats[v].values[:, cut])
                    for v in a.sample_stats.data_vars))


def stop_after(folder: Path, chunks: int) -> None:
    """Leave `folder` as a kill after its first `chunks` chunk files would have left it."""
    for path in ChainStore(folder).files()[chunks:]:
        path.unlink()
    (folder / STATE).unlink(missing_ok=True)
    saved = json.loads((folder / CHECKPOINT_JSON).read_text())
    (folder / CHECKPOINT_JSON).write_text(json.dumps({**saved, "status": "sampling"}))


@pytest.fixture(scope="module")
def plain():
    return fit(MODEL, DATA, "nuts", seed=seeded(1), **SETTINGS)


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("durable") / "run"
    return folder, fit(MODEL, DATA, "nuts", seed=seeded(1), checkpoint_dir=folder, **SETTINGS)


def test_a_checkpointed_run_gives_the_draws_of_a_plain_one(plain, checkpointed):
    folder, result = checkpointed
    assert same_draws(plain.idata, result.idata)
    # 200 iterations saved every 5%: 20 chunks, the first ten warm-up only (no draws)
    files = ChainStore(folder).files()
    assert len(files) == 20 and (folder / STATE).is_file()
    assert json.loads((folder / CHECKPOINT_JSON).read_text())["status"] == "finished"
    stored = ChainStore(folder).read()
    assert stored.done == 200 and stored.num_draws == 100


@pytest.mark.parametrize("chunks", [5, 14], ids=["stopped in warm-up", "stopped while sampling"])
def test_a_stopped_run_resumes_to_the_same_draws(plain, checkpointed, tmp_path, chunks):
    import shutil

    folder = tmp_path / "run"
    shutil.copytree(checkpointed[0], folder)
    stop_after(folder, chunks)
    resumed = fit(MODEL, DATA, "nuts", seed=seeded(1), resume=folder, **SETTINGS)
    assert same_draws(plain.idata, resumed.idata)
    assert len(ChainStore(folder).files()) == 20


def test_hmc_resumes_the_same_way(tmp_path):
    settings = {**SETTINGS, "trajectory_length": 1.0}
    plain = fit(MODEL, DATA, "hmc", seed=seeded(5), **settings)
    folder = tmp_path / "run"
    fit(MODEL, DATA, "hmc", seed=seeded(5), checkpoint_dir=folder, **settings)
    stop_after(folder, 12)
    resumed = fit(MODEL, DATA, "hmc", seed=seeded(5), resume=folder, **settings)
    assert same_draws(plain.idata, resumed.idata)


def test_a_truncated_chunk_is_set_aside_and_drawn_again(plain, checkpointed, tmp_path, capsys):
    import shutil

    folder = tmp_path / "run"
    shutil.copytree(checkpointed[0], folder)
    stop_after(folder, 16)
    last = ChainStore(folder).files()[-1]
    with open(last, "r+b") as file:  # a disk that filled up, a copy cut short
        file.truncate(os.path.getsize(last) // 2)
    resumed = fit(MODEL, DATA, "nuts", seed=seeded(1), resume=folder, **SETTINGS)
    message = capsys.readouterr().err
    assert "chunk-00015.nc" in message and "cannot be read" in message and "iteration 150" in message
    assert (folder / "chains" / "damaged" / "chunk-00015.nc").is_file()
    assert same_draws(plain.idata, resumed.idata)


def test_a_finished_run_is_extended_without_a_new_warm_up(plain, checkpointed, tmp_path):
    import shutil

    folder = tmp_path / "run"
    shutil.copytree(checkpointed[0], folder)
    longer = fit(MODEL, DATA, "nuts", seed=seeded(1), resume=folder, **{**SETTINGS, "draws": 160})
    assert longer.idata.posterior.sizes["draw"] == 160
    assert same_draws(plain.idata, longer.idata, draws=100)
    # no warm-up: the step size stays the adapted one of the first 100 draws
    adapted = plain.idata.sample_stats["step_size"].values[:, -1]
    assert np.array_equal(longer.idata.sample_stats["step_size"].values[:, 100:],
                          np.repeat(adapted[:, None], 60, axis=1))
    with pytest.raises(InferenceError, match="fewer than the 160 draws"):
        fit(MODEL, DATA, "nuts", seed=seeded(1), resume=folder, **{**SETTINGS, "draws": 120})


def test_resuming_under_another_request_names_what_changed(checkpointed, tmp_path):
    folder = checkpointed[0]
    with pytest.raises(InferenceError, match=r"setting target_accept 0.8 there, 0.9 now.*only --draws may change"):
        fit(MODEL, DATA, "nuts", seed=seeded(1), resume=folder, target_accept=0.9, **SETTINGS)
    changed = json.loads(Path(DATA).read_text())
    changed["y"][0] += 1
    (tmp_path / "data.json").write_text(json.dumps(changed))
    with pytest.raises(InferenceError, match="data .* there, .* now \\(different values\\)"):
        fit(MODEL, str(tmp_path / "data.json"), "nuts", seed=seeded(1), resume=folder, **SETTINGS)
    with pytest.raises(InferenceError, match="already holds the draws of a run"):
        fit(MODEL, DATA, "nuts", seed=seeded(1), checkpoint_dir=folder, **SETTINGS)
    with pytest.raises(InferenceError, match="does not save its work in steps"):
        fit(MODEL, DATA, "pathfinder", checkpoint_dir=tmp_path / "pathfinder")
    with pytest.raises(InferenceError, match="init_from .* applies to --method nuts and --method hmc"):
        fit(MODEL, DATA, "svi", init_from=folder)


def test_a_warm_start_takes_the_step_size_and_the_model_must_match(plain, checkpointed, tmp_path):
    folder = checkpointed[0]
    # no warm-up at all: the chains sample with the saved run's adapted step sizes
    warm = fit(MODEL, DATA, "nuts", seed=seeded(2), init_from=folder, **{**SETTINGS, "warmup": 0, "draws": 200})
    adapted = plain.idata.sample_stats["step_size"].values[:, -1]
    assert np.array_equal(warm.idata.sample_stats["step_size"].values[:, 0], adapted)
    # and they start where the saved run ended, in its typical set: no divergences, and the
    # mean of tau within 5 Monte Carlo standard errors of the plain run's (2 x 100 draws)
    assert int(warm.idata.sample_stats["diverging"].sum()) <= 2
    import arviz as az

    a, b = az.summary(plain.idata, var_names=["tau"]), az.summary(warm.idata, var_names=["tau"])
    assert abs(a["mean"].iloc[0] - b["mean"].iloc[0]) < 5 * np.hypot(a["mcse_mean"].iloc[0], b["mcse_mean"].iloc[0])

    def other(y):
        import numpyro
        import numpyro.distributions as dist

        numpyro.sample("y", dist.Normal(numpyro.sample("mu", dist.Normal(0, 5)), 1), obs=y)

    with pytest.raises(InferenceError, match="not this model's.*a warm start needs a run of the same model"):
        fit(other, {"y": np.arange(3.0)}, "nuts", init_from=folder, **SETTINGS)


# --------------------------------------------------------------------------------------------
# SVI and MAP: the optimiser state (parameters, Adam's moments and step, the random key) saved
# to the same chunk store, resumed the same way
# --------------------------------------------------------------------------------------------
from infer.conjugate import SPEC  # noqa: E402

OPTIMISED = {"steps": 2000, "check_every": 100, "progress": False, "checkpoint_overhead": 0.0}


@pytest.mark.parametrize("method, settings, part", [
    ("svi", {"draws": 200}, ""),
    ("map", {"restarts": 2}, "restart-2"),
], ids=["svi", "map"])
def test_an_optimiser_resumes_to_the_same_trace(frame, tmp_path, method, settings, part):
    # a window of 2,000 steps: convergence is first judged after 4,000, so every step runs (a
    # converged run stays stopped when resumed, as the VAE's does)
    settings = {**OPTIMISED, **settings, "window": 2000}
    plain = fit(SPEC, frame, method, seed=seeded(4), **settings)
    folder = tmp_path / "run"
    fit(SPEC, frame, method, seed=seeded(4), checkpoint_dir=folder, **settings)
    store = ChainStore(folder, part)
    assert len(store.part_files()) == 20  # a save every 5% of the steps
    for path in store.part_files()[7:]:  # stopped after 700 of 2000 steps (MAP: in its second restart)
        path.unlink()
    resumed = fit(SPEC, frame, method, seed=seeded(4), resume=folder, **settings)
    assert np.array_equal(plain.idata.optimization["loss"].values, resumed.idata.optimization["loss"].values)
    assert np.array_equal(plain.idata.posterior["mu"].values, resumed.idata.posterior["mu"].values)
    # a finished run trains on when --steps is raised
    longer = fit(SPEC, frame, method, seed=seeded(4), resume=folder, **{**settings, "steps": 2500})
    assert longer.facts["steps_run"] == 2500
    assert np.array_equal(plain.idata.optimization["loss"].values, longer.idata.optimization["loss"].values[:2000])

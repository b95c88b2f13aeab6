"""The run folder: every file DESIGN.md lists, written all-or-nothing, rebuildable."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from probgen import report
from probgen.errors import RunFolderError
from _seeds import seeded


@pytest.fixture(scope="module")
def run_folder(faithful_fit, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "faithful"
    section = report.Section("Extra", "A section added by an analysis.", pd.DataFrame({"a": [1.0]}, index=["row"]))
    return report.write_run(faithful_fit, out, sections=[section])


def test_run_folder_holds_every_file(run_folder):
    for name in report.RUN_FILES:
        assert (run_folder / name).is_file(), name
    plots = {p.stem for p in (run_folder / "plots").glob("*.png")}
    assert {"rank", "posterior", "posterior_predictive", "components", "predictive_statistics"} <= plots


def test_metrics_time_each_step_of_the_report(run_folder):
    # issue 31 (point 5): where the report's time goes, step by step (the plots are most of it)
    seconds = json.loads((run_folder / "metrics.json").read_text())["report_seconds"]
    assert {"convergence diagnostics", "posterior summary", "LOO and WAIC", "plots"} <= set(seconds)
    assert all(isinstance(v, float) and v >= 0 for v in seconds.values())
    assert "report_seconds" not in (run_folder / "report.md").read_text()


def test_no_plots_leaves_the_figures_out_and_report_draws_them_later(faithful_fit, tmp_path):
    # issue 31 (point 5): `probgen fit --no-plots` skips the plots (most of the report's time);
    # the report says so, and `probgen report` (rebuild_report) draws them from the saved run
    from probgen.cli.parser import build_parser

    assert build_parser().parse_args(["fit", "gmm", "--data", "faithful", "--no-plots"]).no_plots
    config = {**report.run_config(faithful_fit), "plots": False}
    out = report.save_run(faithful_fit, report.build_report(faithful_fit.idata, config, faithful_fit.spec), tmp_path / "run")
    assert not list((out / "plots").glob("*.png")) if (out / "plots").is_dir() else True
    metrics = json.loads((out / "metrics.json").read_text())
    assert "plots" not in metrics["report_seconds"] and "--no-plots" in metrics["skipped"]["plots"]
    assert "plots: not drawn (--no-plots)" in (out / "report.md").read_text()
    assert json.loads((out / "config.json").read_text())["plots"] is False
    report.rebuild_report(out, faithful_fit.spec)
    assert {"rank", "posterior", "components"} <= {p.stem for p in (out / "plots").glob("*.png")}
    assert "skipped" not in json.loads((out / "metrics.json").read_text()) or \
        "plots" not in json.loads((out / "metrics.json").read_text())["skipped"]


def test_config_records_seed_versions_data_and_settings(run_folder):
    config = json.loads((run_folder / "config.json").read_text())
    assert config["seed"] == seeded(0) and config["method"] == "nuts"
    assert {"jax", "numpyro", "arviz"} <= set(config["versions"])
    assert config["data"]["source"] == "faithful" and len(config["data"]["sha256"]) == 64
    assert config["settings"]["chains"] == 4 and config["model"]["options"]["num_components"] == 2


def test_report_puts_the_verdict_first_and_is_self_contained(run_folder):
    html = (run_folder / "report.html").read_text()
    assert html.index("Verdict") < html.index("Posterior summary") < html.index("Plots") < html.index("Configuration")
    assert "TRUSTED" in html
    sources = re.findall(r"src='([^']*)'", html) + re.findall(r'src="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in html and "https://" not in html
    markdown = (run_folder / "report.md").read_text()
    assert markdown.startswith("# probgen report") and "## Verdict: TRUSTED" in markdown
    assert "## Fit quality" in markdown and "MMD permutation test" in markdown
    quality = json.loads((run_folder / "metrics.json").read_text())["fit_quality"]
    assert {row["statistic"] for row in quality["predictive_check"]} == {"mean", "sd", "min", "max"}
    summary = pd.read_csv(run_folder / "summary.csv", index_col=0)
    assert {"mean", "sd", "ess_bulk", "ess_tail", "r_hat"} <= set(summary.columns)
    diagnostics = json.loads((run_folder / "diagnostics.json").read_text())
    assert diagnostics["overall"] == "trusted" and {c["check"] for c in diagnostics["checks"]} >= {"r_hat", "divergences"}


def test_existing_folder_is_refused_unless_overwrite(faithful_fit, run_folder):
    with pytest.raises(RunFolderError, match="already exists .*--overwrite"):
        report.write_run(faithful_fit, run_folder)


def test_a_failure_while_writing_leaves_nothing(tmp_path):
    out = tmp_path / "run"

    def fill(folder):
        (folder / "config.json").write_text("{}")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        report.atomic_folder(out, fill, overwrite=False)
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_atomically(tmp_path):
    out = tmp_path / "run"
    report.atomic_folder(out, lambda f: (f / "a.txt").write_text("old"), overwrite=False)
    report.atomic_folder(out, lambda f: (f / "b.txt").write_text("new"), overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]


def test_rebuild_recomputes_and_keeps_sections(run_folder):
    from probgen.spec import load_spec

    (run_folder / "report.md").unlink()
    report.rebuild_report(run_folder, load_spec("gmm"))
    markdown = (run_folder / "report.md").read_text()
    assert "## Extra" in markdown and "A section added by an analysis." in markdown
    assert (run_folder / "plots" / "components.png").is_file()


def test_load_run_names_what_is_missing(tmp_path):
    with pytest.raises(RunFolderError, match="does not exist"):
        report.load_run(tmp_path / "nope")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(RunFolderError, match="posterior.nc is missing"):
        report.load_run(tmp_path)


def _png_size(content: bytes) -> tuple[int, int]:
    import struct

    return struct.unpack(">II", content[16:24])  # the PNG header's width and height


def test_a_parameter_that_never_moves_is_left_out_of_the_plots_and_no_plot_grows_past_its_figure():
    """The weight of a one-component mixture is 1 in every draw: it was drawn as a density, and
    ArviZ's labels for it made the posterior plot 1558 x 123945 pixels (750 MB, 4.6 s)."""
    import arviz as az
    import matplotlib.pyplot as plt
    import numpy as np

    from probgen.infer import methods

    rng = np.random.default_rng(seeded(0))
    idata = az.from_dict(posterior={"weight": np.ones((2, 100)), "mu": rng.normal(size=(2, 100)),
                                    "partly": np.stack([np.zeros((2, 100)), rng.normal(size=(2, 100))], -1)})
    pngs = report.figures_for(idata, None, methods.get("nuts"), ["weight", "mu", "partly"])
    for name in ("rank", "posterior"):
        width, height = _png_size(pngs[name])
        assert width < 3000 and height < 3000, (name, width, height)
    assert report._varying(idata, ["weight", "mu", "partly"]) == ["mu", "partly"]

    figure, axis = plt.subplots(figsize=(4, 3))  # an artist far outside: the figure keeps its own area
    axis.text(0.5, 5000.0, "far away", transform=axis.transAxes)
    width, height = _png_size(report.figure_png(figure))
    assert width <= 360 and height <= 270  # 4 x 3 in at 90 dpi
    axis.texts[0].remove()
    axis.set_title("a title that runs past the figure's right edge, cut off by a plain save", loc="left")
    width, height = _png_size(report.figure_png(figure))  # drawn up to the edge: the tight box takes it in
    assert 360 < width <= 720 and height <= 270, (width, height)
    plt.close(figure)
    from matplotlib.figure import Figure

    bare = Figure(figsize=(4, 3))  # made without pyplot (the bnn and n-gram reports): a bare canvas
    bare.subplots().plot([0, 1])
    width, height = _png_size(report.figure_png(bare))
    assert width <= 360 and height <= 270


def test_tables_show_no_row_numbers_and_no_index_header_row():
    """Issue 30: a table with a default index shows no 0..N-1 column, and a named index
    ("order") is a column under its name, not a header row of its own (pandas' HTML)."""
    from probgen.report.render import html_table, markdown_table

    plain = pd.DataFrame({"character": ["a", "b"], "bits": [1.5, 2.25]})
    assert markdown_table(plain).splitlines()[0] == "| character | bits |"
    assert "<th>0</th>" not in html_table(plain) and ">0<" not in html_table(plain)
    named = pd.DataFrame({"bits": [4.9, 3.9]}, index=pd.Index([1, 2], name="order"))
    assert markdown_table(named).splitlines()[0] == "| order | bits |"
    html = html_table(named)
    assert html.count("<tr") == 3 and "<th>order</th>" in html  # one header row and two rows
    labelled = pd.DataFrame({"mean": [1.0]}, index=["mu"])  # row labels are data: kept
    assert markdown_table(labelled).splitlines()[2].startswith("| mu |")


def test_section_text_keeps_generated_lines_apart_in_html():
    """Issue 30: text a model generated (a block indented by 4 spaces) keeps its line breaks in
    the HTML report, items are a list, and paragraphs stay paragraphs."""
    from probgen.report.render import text_html

    text = ("Samples at two temperatures:\n\nT = 0.5:\n\n    the cat sat\n    on the mat\n\n    a dog ran\n\n"
            "- first item\n- second <item>\n\nA closing paragraph\nover two lines.")
    html = text_html(text)
    assert "<pre>the cat sat\non the mat\n\na dog ran</pre>" in html
    assert "<ul><li>first item</li><li>second &lt;item&gt;</li></ul>" in html
    assert "<p>A closing paragraph over two lines.</p>" in html and html.startswith("<p>Samples at two temperatures:</p>")


def test_long_tables_and_the_configuration_are_folded_in_html():
    """Issue 30: a table of more than LONG_TABLE rows is folded (<details>) under a line giving
    its row count; a short one is not."""
    from probgen.report.render import LONG_TABLE, html_table

    long = pd.DataFrame({"p": np.linspace(0, 1, LONG_TABLE + 1)})
    assert html_table(long).startswith(f"<details><summary>{LONG_TABLE + 1} rows")
    assert not html_table(long.iloc[:LONG_TABLE]).startswith("<details>")


def test_the_predictive_check_of_a_table_has_a_panel_per_named_column(faithful_fit):
    """Issue 30: eruption minutes and waiting minutes are two panels under their names, not one
    density pooled on an axis called "x"."""
    import matplotlib.pyplot as plt

    figure = report.table_predictive_figure(faithful_fit.idata, 20)
    assert [axis.get_xlabel() for axis in figure.axes] == ["eruptions", "waiting"]
    plt.close(figure)


def test_summary_digits_follow_the_mcse():
    """Issue 30: a mean is shown to the decimal its MCSE supports (MCSE 0.012: 2 decimals), its sd
    and HDI bounds with it, so a bound is never rounded to "14 to 14"; MCSE to 2 significant
    digits, ESS whole, R-hat to 3 decimals; the consistency check reads the shown precision."""
    from probgen.report.consistency import agrees
    from probgen.report.render import summary_display

    summary = pd.DataFrame({"mean": [14.0312, 12345.6], "sd": [0.0931, 310.2], "hdi_3%": [13.8567, 11790.0],
                            "hdi_97%": [14.2104, 12910.0], "mcse_mean": [0.0123, 31.0], "mcse_sd": [0.0087, 22.0],
                            "ess_bulk": [612.4, 98.7], "ess_tail": [701.2, 120.3], "r_hat": [1.0012, 1.0213]},
                           index=["mu", "big"])
    shown = summary_display(summary)
    assert shown.loc["mu"].tolist() == ["14.03", "0.09", "13.86", "14.21", "0.012", "0.0087", "612", "701", "1.001"]
    assert shown.loc["big", "mean"] == "12350" and shown.loc["big", "hdi_3%"] == "11790"  # MCSE 31: tens
    assert all(agrees(shown.loc[row, column], summary.loc[row, column])
               for row in summary.index for column in summary.columns)
    assert not agrees("14.03", 14.0412)
    no_mcse = pd.DataFrame({"estimate": [1.23456]}, index=["mu"])  # one draw (MAP): shown as it is
    assert summary_display(no_mcse) is no_mcse


def test_the_html_report_comes_from_templates_that_escape_what_they_show(faithful_fit, tmp_path):
    """Issue 30: the HTML is written by Jinja2 with autoescaping: a section's title and text and a
    table cell holding markup arrive as text, not as tags."""
    from probgen import report
    from probgen.spec import Section

    built = report.build_report(faithful_fit.idata, faithful_fit.config(), faithful_fit.spec,
                                sections=[Section("<b>Mine</b>", "x < y & <script>alert(1)</script>",
                                                  pd.DataFrame({"cell": ["<i>a</i>"]}))])
    from probgen.report.render import render_html

    html = render_html(built)
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;Mine&lt;/b&gt;" in html
    assert "&lt;i&gt;a&lt;/i&gt;" in html and "<i>a</i>" not in html
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")


def test_a_nuts_report_states_gradients_per_effective_draw(faithful_fit):
    """Issue 31, point 2: every NUTS report gives its gradient evaluations (the kept draws'
    leapfrog steps) per effective draw, the smallest bulk ESS being the ess_bulk verdict's."""
    from probgen import report

    built = report.build_report(faithful_fit.idata, faithful_fit.config(), faithful_fit.spec)
    cost = built.metrics["sampling"]
    steps = int(faithful_fit.idata.sample_stats["n_steps"].values.sum())
    ess = next(v.value for v in built.assessment.verdicts if v.check == "ess_bulk")
    assert cost["gradient_evaluations"] == steps and cost["draws"] == 4000
    assert abs(cost["gradients_per_effective_draw"] - steps / ess) < 1e-9 * steps
    section = next(s for s in built.sections if s.title == "Sampling cost")
    assert f"{steps:,} gradient evaluations" in section.text and f"{steps / ess:.1f} per effective draw" in section.text
    # the realised acceptance beside its target: a step size that undershoots shows here
    accepted = float(faithful_fit.idata.sample_stats["acceptance_rate"].values.mean())
    assert cost["mean_acceptance"] == accepted
    assert f"mean acceptance {accepted:.3f} (target {faithful_fit.config()['settings']['target_accept']})" in section.text

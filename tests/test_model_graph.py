"""The model's graph (issue 33, point 2): sites, kinds, distributions, plates and dependencies
read from the trace, checked against the edges each model has by construction; `probgen graph`
prints it without fitting, and every posterior report carries it."""

import json

import numpy as np

from probgen.cli import main
from probgen.graph import collapse, layout
from test_user_models import CENTRED_EIGHT_SCHOOLS, EIGHT_DATA, EIGHT_SCHOOLS, MIXTURE, QUICK, write

FACTOR = '''
    import numpyro
    import numpyro.distributions as dist


    def model(x, y):
        a = numpyro.sample("a", dist.Normal(0, 5))
        b = numpyro.sample("b", dist.Normal(0, 5))
        numpyro.factor("soft_constraint", -0.5 * (a + b) ** 2)  # a penalty, not an observation
        with numpyro.plate("rows", x.shape[0]):
            numpyro.sample("y", dist.Normal(a + b * x, 1.0), obs=y)
    '''

LOOPED = '''
    import numpyro
    import numpyro.distributions as dist


    def model(y):
        mu = numpyro.sample("mu", dist.Normal(0, 5))
        for i in range(len(y)):  # a site per item, as a Python loop makes them
            theta = numpyro.sample(f"theta_{i}", dist.Normal(mu, 1))
            numpyro.sample(f"y_{i}", dist.Normal(theta, 1), obs=y[i])
    '''

NESTED = '''
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist


    def model(y, z):
        scale = numpyro.sample("scale", dist.HalfNormal(1))
        with numpyro.plate("groups", 3, dim=-2):
            group_mean = numpyro.sample("group_mean", dist.Normal(0, scale))
            with numpyro.plate("rows", 5, dim=-1):
                numpyro.sample("y", dist.Normal(group_mean, 1), obs=y)
        with numpyro.plate("cols", 4):
            offset = numpyro.sample("offset", dist.Normal(0, 1))
            numpyro.sample("z", dist.Normal(offset, scale), obs=z)
    '''


def graph_of(tmp_path, capsys, model_text, data, *extra):
    model = write(tmp_path, "model.py", model_text)
    data_file = write(tmp_path, "data.json", json.dumps(data))
    capsys.readouterr()
    status = main(["graph", str(model), "--data", str(data_file), "--json", *map(str, extra)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out)


def edges(graph):
    return {tuple(edge) for edge in graph["edges"]}


def nodes(graph):
    return {node["name"]: node for node in graph["nodes"]}


def test_eight_schools_graph_has_the_edges_of_its_code(tmp_path, capsys):
    found = graph_of(tmp_path, capsys, EIGHT_SCHOOLS, EIGHT_DATA)
    assert edges(found) == {("mu", "theta"), ("tau", "theta"), ("theta_tilde", "theta"), ("theta", "obs")}
    sites = nodes(found)
    assert {name: n["kind"] for name, n in sites.items()} == {
        "mu": "latent", "tau": "latent", "theta_tilde": "latent", "theta": "deterministic", "obs": "observed"}
    assert sites["tau"]["distribution"] == "HalfCauchy" and sites["obs"]["distribution"] == "Normal"
    assert found["plates"] == {"J": 8}
    assert [name for name, n in sites.items() if n["plates"] == ["J"]] == ["theta_tilde", "theta", "obs"]
    # the centred form: theta is drawn from mu and tau, obs from theta
    centred = graph_of(tmp_path, capsys, CENTRED_EIGHT_SCHOOLS, EIGHT_DATA)
    assert edges(centred) == {("mu", "theta"), ("tau", "theta"), ("theta", "y")}


def test_an_enumerated_mixture_shows_its_discrete_site_and_the_report_carries_the_graph(tmp_path, capsys):
    y = np.concatenate([np.full(10, -2.0), np.full(5, 3.0)]) + np.linspace(-0.3, 0.3, 15)
    data = {"y": y.tolist()}
    found = graph_of(tmp_path, capsys, MIXTURE, data)
    assert edges(found) == {("weights", "z"), ("locs", "y"), ("scale", "y"), ("z", "y")}
    sites = nodes(found)
    assert sites["z"]["kind"] == "discrete" and sites["z"]["distribution"] == "Categorical"
    assert sites["z"]["plates"] == ["points"] and found["plates"] == {"points": 15}
    # the fit's report: the same graph (kept in config.json), its section and plots/model_graph.png
    out = tmp_path / "run"
    status = main(["fit", str(tmp_path / "model.py"), "--data", str(tmp_path / "data.json"), "--out", str(out), *QUICK])
    assert status in (0, 3)
    config = json.loads((out / "config.json").read_text())
    assert config["facts"]["model_graph"] == found
    report = (out / "report.md").read_text()
    assert "## Model graph" in report and "| z | discrete | Categorical | points (15) | weights |" in report
    assert (out / "plots" / "model_graph.png").stat().st_size > 0
    assert "plots/model_graph.png" in report


def test_a_factor_is_a_site_of_its_own_with_the_parameters_it_uses(tmp_path, capsys):
    found = graph_of(tmp_path, capsys, FACTOR, {"x": [1.0, 2.0, 3.0], "y": [1.0, 2.5, 2.9]})
    assert edges(found) == {("a", "soft_constraint"), ("b", "soft_constraint"), ("a", "y"), ("b", "y")}
    assert nodes(found)["soft_constraint"]["kind"] == "factor"
    assert nodes(found)["y"]["kind"] == "observed"


def test_hundreds_of_looped_sites_collapse_to_one_node_per_name(tmp_path, capsys):
    found = graph_of(tmp_path, capsys, LOOPED, {"y": [float(i % 7) for i in range(150)]})
    assert [(n["name"], n["count"]) for n in found["nodes"]] == [("mu", 1), ("theta_#", 150), ("y_#", 150)]
    assert edges(found) == {("mu", "theta_#"), ("theta_#", "y_#")}
    assert found["collapsed"]["theta_#"][:2] == ["theta_0", "theta_1"] and len(found["collapsed"]["y_#"]) == 150
    # below the limit nothing is collapsed
    assert collapse({"nodes": [], "edges": [], "plates": {}, "collapsed": {}})["nodes"] == []
    small = graph_of(tmp_path, capsys, LOOPED, {"y": [1.0, 2.0, 3.0]})
    assert len(small["nodes"]) == 7 and small["collapsed"] == {}


def test_plate_boxes_hold_their_sites_and_no_others(tmp_path, capsys):
    found = graph_of(tmp_path, capsys, NESTED, {"y": np.zeros((3, 5)).tolist(), "z": [0.0, 1.0, 2.0, 3.0]})
    sites = nodes(found)
    assert found["plates"] == {"groups": 3, "rows": 5, "cols": 4}
    assert sites["y"]["plates"] == ["groups", "rows"]  # outer plate first
    assert edges(found) == {("scale", "group_mean"), ("group_mean", "y"), ("offset", "z"), ("scale", "z")}
    positions, boxes = layout(found)
    for plate, x0, x1, y0, y1, _ in boxes:
        inside = {name for name, (x, y) in positions.items() if x0 < x < x1 and y0 < y < y1}
        assert inside == {name for name, n in sites.items() if plate in n["plates"]}, plate
    # a parent sits above its children
    for parent, child in found["edges"]:
        assert positions[parent][1] > positions[child][1]


def test_graph_prints_a_table_and_draws_a_png_without_fitting(tmp_path, capsys):
    model = write(tmp_path, "model.py", EIGHT_SCHOOLS)
    data = write(tmp_path, "data.json", json.dumps(EIGHT_DATA))
    status = main(["graph", str(model), "--data", str(data), "--out", str(tmp_path / "graph.png")])
    out = capsys.readouterr().out
    assert status == 0
    assert "3 latent, 1 deterministic, 1 observed site(s) in 1 plate (J: 8)" in out
    assert any(line.split() == ["theta", "deterministic", "J", "(8)", "mu,", "tau,", "theta_tilde"]
               for line in out.splitlines()), out
    assert (tmp_path / "graph.png").stat().st_size > 0
    assert not (tmp_path / "runs").exists()


def test_graph_of_a_family_fitted_without_drawing_sites_is_refused_in_one_line(capsys):
    status = main(["graph", "ngram", "--data", "python_docs"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1
    assert "model 'ngram' is fitted by the exact conjugate posterior" in err and "no graph" in err


def test_a_built_in_family_reads_as_its_code(capsys):
    # the Gaussian mixture's likelihood depends on its means, scales and weights; the means and
    # the scale factor are deterministic functions of their drawn parts
    status = main(["graph", "gmm", "--data", "faithful", "--json"])
    found = json.loads(capsys.readouterr().out)
    assert status == 0
    assert {p for p, c in found["edges"] if c == "x"} == {"means", "scale_tril", "weights"}
    assert nodes(found)["means"]["kind"] == "deterministic" and found["plates"] == {"obs": 272}

"""The model's graph, read from its trace: sites, their kinds, distributions, plates and parents.

`model_graph(model, observed)` traces the model once (shapes only) and asks NumPyro which sites
each site's log density (or a deterministic site's value) depends on
(`numpyro.infer.inspect.get_model_relations`, which follows values through the computation:
an edge is a real dependency, not a guess from names). The result is plain JSON (it is kept in
the run's config.json, so `probgen report RUN_DIR` redraws it):

    {"nodes": [{"name", "kind", "distribution", "plates", "shape", "count"}],
     "edges": [[parent, child]], "plates": {name: size}, "collapsed": {node: [site names]}}

kind is one of latent, discrete (summed out by enumeration), observed, deterministic, factor.
A model with more than MAX_NODES sites (a Python loop that makes a site per item) has the
sites whose names differ only in their numbers collapsed into one node ("x_#", count n), with
their edges merged. `graph_text` is the table `probgen graph` prints; `graph_figure` draws it
with matplotlib (no graphviz binary): each plate a box around its sites, nested plates inside
their parents, parents above their children.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any, Mapping

MAX_NODES = 40  # beyond this many sites, repeated names are collapsed
KINDS = ("latent", "discrete", "deterministic", "factor", "observed")


def model_graph(model, observed: Mapping[str, Any]) -> dict:
    """The graph of `model(**observed)` (see the module's docstring)."""
    import jax
    from numpyro import handlers
    from numpyro.infer.initialization import init_to_sample
    from numpyro.infer.inspect import get_model_relations

    relations = get_model_relations(model, model_kwargs=dict(observed))
    found: dict = {}

    def trace():
        traced = handlers.substitute(handlers.seed(model, 0), substitute_fn=init_to_sample)
        tr = handlers.trace(traced).get_trace(**observed)
        found["plates"] = {name: int(site["args"][0]) for name, site in tr.items() if site["type"] == "plate"}
        found["names"] = {name: _distribution_name(site["fn"]) for name, site in tr.items() if site["type"] == "sample"}
        found["sites"] = {name: {"type": site["type"], "observed": bool(site.get("is_observed")),
                                 "discrete": site["type"] == "sample" and not site.get("is_observed")
                                 and bool(getattr(getattr(site["fn"], "support", None), "is_discrete", False)),
                                 "factor": site["type"] == "sample" and _is_factor(site),
                                 "plates": [frame.name for frame in site["cond_indep_stack"]]}
                          for name, site in tr.items() if site["type"] in ("sample", "deterministic")}
        return {name: site["value"] for name, site in tr.items() if site["type"] in ("sample", "deterministic")}

    shapes = jax.eval_shape(trace)
    sites = found["sites"]
    # a plate holding more sites is the outer one: each site's plates, outermost first
    members = defaultdict(set)
    for name, site in sites.items():
        for plate in site["plates"]:
            members[plate].add(name)
    nodes = []
    for name, site in sites.items():
        kind = ("factor" if site["factor"] else "observed" if site["observed"] else
                "deterministic" if site["type"] == "deterministic" else "discrete" if site["discrete"] else "latent")
        plates = sorted(set(site["plates"]), key=lambda p: (-len(members[p]), p))
        distribution = found["names"].get(name, relations["sample_dist"].get(name, ""))
        nodes.append({"name": name, "kind": kind, "distribution": distribution,
                      "plates": plates, "shape": list(shapes[name].shape), "count": 1})
    edges = sorted({(parent, child) for child, parents in relations["sample_sample"].items()
                    for parent in parents if parent in sites and child in sites and parent != child},
                   key=lambda e: ([n["name"] for n in nodes].index(e[1]), e[0]))
    graph = {"nodes": nodes, "edges": [list(e) for e in edges],
             "plates": {p: found["plates"][p] for p in found["plates"] if p in members}, "collapsed": {}}
    return collapse(graph) if len(nodes) > MAX_NODES else graph


def _distribution_name(fn) -> str:
    """The family's name as the user wrote it: through .expand, .to_event and .mask;
    CategoricalProbs and BernoulliLogits as Categorical and Bernoulli; a transformed one by its
    base ("InverseGamma, transformed")."""
    import numpyro.distributions as dist

    while isinstance(fn, (dist.Independent, dist.ExpandedDistribution, dist.MaskedDistribution)):
        fn = fn.base_dist
    if type(fn) is dist.TransformedDistribution:  # subclasses (LogNormal, ...) keep their own name
        return f"{_distribution_name(fn.base_dist)}, transformed"
    return re.sub(r"(?<=[a-z])(Probs|Logits)$", "", type(fn).__name__)


def _is_factor(site) -> bool:
    from probgen.tracing import _is_factor as is_factor

    return is_factor(site)


def collapse(graph: dict) -> dict:
    """Sites whose names differ only in their numbers (x_0 ... x_99), of one kind and
    distribution, as one node "x_#" with their count; edges merged."""
    groups: dict = defaultdict(list)
    for node in graph["nodes"]:
        groups[(re.sub(r"\d+", "#", node["name"]), node["kind"], node["distribution"], tuple(node["plates"]))].append(node)
    rename, nodes, collapsed = {}, [], {}
    for (pattern, *_), group in groups.items():
        if len(group) == 1 or pattern == group[0]["name"]:
            for node in group:
                rename[node["name"]] = node["name"]
                nodes.append(node)
            continue
        collapsed[pattern] = [node["name"] for node in group]
        for node in group:
            rename[node["name"]] = pattern
        nodes.append({**group[0], "name": pattern, "count": len(group)})
    edges = []
    for parent, child in graph["edges"]:
        edge = [rename[parent], rename[child]]
        if edge[0] != edge[1] and edge not in edges:
            edges.append(edge)
    return {**graph, "nodes": nodes, "edges": edges, "collapsed": collapsed}


def parents(graph: dict) -> dict[str, list[str]]:
    found = {node["name"]: [] for node in graph["nodes"]}
    for parent, child in graph["edges"]:
        found[child].append(parent)
    return found


def graph_rows(graph: dict) -> list[dict]:
    """One row per node: site (with its count when collapsed), kind, distribution, plates
    (with sizes) and the sites it depends on."""
    up = parents(graph)
    return [{"site": node["name"] + (f" (x{node['count']})" if node["count"] > 1 else ""), "kind": node["kind"],
             "distribution": node["distribution"] if node["kind"] not in ("factor", "deterministic") else "",
             "plates": ", ".join(f"{p} ({graph['plates'].get(p, '?')})" for p in node["plates"]) or "-",
             "depends on": ", ".join(up[node["name"]]) or "-"} for node in graph["nodes"]]


def graph_summary(graph: dict) -> str:
    """'3 latent, 1 deterministic, 1 observed site(s) in 1 plate (J, 8)' and what was collapsed."""
    counts = defaultdict(int)
    for node in graph["nodes"]:
        counts[node["kind"]] += node["count"]
    text = ", ".join(f"{counts[k]} {k}" for k in KINDS if counts[k]) + " site(s)"
    if graph["plates"]:
        text += (f" in {len(graph['plates'])} plate{'s' if len(graph['plates']) > 1 else ''} ("
                 + ", ".join(f"{name}: {size}" for name, size in graph["plates"].items()) + ")")
    if graph["collapsed"]:
        text += "; collapsed: " + "; ".join(f"{name} stands for {sites[0]} ... {sites[-1]} ({len(sites)} sites)"
                                            for name, sites in graph["collapsed"].items())
    return text


def graph_text(graph: dict, title: str = "") -> str:
    """The graph as `probgen graph` prints it: a summary line, then a table of the sites."""
    rows = graph_rows(graph)
    header = list(rows[0]) if rows else ["site", "kind", "distribution", "plates", "depends on"]
    table = [header] + [[row[h] for h in header] for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ([title] if title else []) + [graph_summary(graph)]
    lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in table]
    return "\n".join(lines)


# -- drawing -------------------------------------------------------------------------------------
def layout(graph: dict) -> tuple[dict, list]:
    """({node: (x, y)}, [(plate, x0, x1, y0, y1)]) in grid units: y is minus the node's depth
    (parents above children); each plate's sites occupy a band of columns of their own, nested
    plates inside their parent's band, so that a plate's box holds its sites and no others."""
    up = parents(graph)
    depth: dict = {}

    def depth_of(name, seen=()):
        if name not in depth:
            depth[name] = 0 if not up[name] or name in seen else 1 + max(depth_of(p, seen + (name,)) for p in up[name])
        return depth[name]

    for node in graph["nodes"]:
        depth_of(node["name"])
    # the plate tree: a group per plate path (outermost first), its own sites and its sub-groups
    tree: dict = {"own": [], "children": {}}
    for node in graph["nodes"]:
        group = tree
        for plate in node["plates"]:
            group = group["children"].setdefault(plate, {"own": [], "children": {}})
        group["own"].append(node["name"])
    positions, boxes = {}, []

    def place(group, x0, plate=None, level=0):
        by_depth = defaultdict(list)
        for name in group["own"]:
            by_depth[depth[name]].append(name)
        # own sites: the columns at the left, one per site at the busiest depth
        own_width = max((len(v) for v in by_depth.values()), default=0)
        for d, names in by_depth.items():
            for i, name in enumerate(names):
                positions[name] = (x0 + i + (own_width - len(names)) / 2, -d)
        x = x0 + own_width
        for child_plate, child in sorted(group["children"].items(), key=lambda c: min(_depths(c[1], depth))):
            width = place(child, x + 0.3, child_plate, level + 1) + 0.6
            x += width
        width = x - x0
        if plate is not None:
            ds = _depths(group, depth)
            boxes.append((plate, x0 - 0.45, x0 + width - 0.55, -max(ds) - 0.5, -min(ds) + 0.45, level))
        return width

    place(tree, 0.0)
    return positions, boxes


def _depths(group, depth) -> list:
    found = [depth[n] for n in group["own"]]
    for child in group["children"].values():
        found += _depths(child, depth)
    return found


STYLE = {"latent": dict(facecolor="white", edgecolor="#333333", linestyle="-"),
         "discrete": dict(facecolor="#fdf1d8", edgecolor="#8a5a00", linestyle="-"),
         "deterministic": dict(facecolor="white", edgecolor="#333333", linestyle="--"),
         "observed": dict(facecolor="#c9c9c9", edgecolor="#333333", linestyle="-"),
         "factor": dict(facecolor="#333333", edgecolor="#333333", linestyle="-")}


def graph_figure(graph: dict, title: str = ""):
    """The graph drawn with matplotlib: ellipses for sites (grey: observed, dashed:
    deterministic, amber: discrete summed out, black square: factor), arrows from parents,
    plates as boxes labelled with their size."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse, FancyArrowPatch, Rectangle

    positions, boxes = layout(graph)
    xs = [p[0] for p in positions.values()] + [b[1] for b in boxes] + [b[2] for b in boxes]
    ys = [p[1] for p in positions.values()] + [b[3] for b in boxes] + [b[4] for b in boxes]
    x0, x1, y0, y1 = min(xs) - 0.6, max(xs) + 0.6, min(ys) - 0.4, max(ys) + 0.6
    scale = 1.6  # inches per grid unit
    figure, ax = plt.subplots(figsize=(min(16, max(4.0, (x1 - x0) * scale)), min(16, max(2.5, (y1 - y0) * 1.2))))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("auto")
    ax.axis("off")
    for plate, bx0, bx1, by0, by1, level in boxes:
        ax.add_patch(Rectangle((bx0, by0), bx1 - bx0, by1 - by0, fill=False, edgecolor="#4a6fa5", linewidth=1.2))
        ax.text(bx1 - 0.05, by0 + 0.05, f"{plate} ({graph['plates'].get(plate, '?')})", ha="right", va="bottom",
                fontsize=8, color="#4a6fa5")
    kinds = {node["name"]: node for node in graph["nodes"]}
    width, height = 0.82, 0.42
    for name, (x, y) in positions.items():
        node = kinds[name]
        style = STYLE[node["kind"]]
        if node["kind"] == "factor":
            ax.add_patch(Rectangle((x - 0.08, y - 0.08), 0.16, 0.16, **style))
            ax.text(x, y - 0.14, name, ha="center", va="top", fontsize=8)
            continue
        ax.add_patch(Ellipse((x, y), width, height, linewidth=1.2, **style))
        label = name + (f" (x{node['count']})" if node["count"] > 1 else "")
        ax.text(x, y + 0.05, label, ha="center", va="center", fontsize=8.5, fontweight="bold")
        ax.text(x, y - 0.1, node["distribution"], ha="center", va="center", fontsize=7, color="#444444")
    def radius(name):  # (a, b) of the node's outline, where arrows start and end
        return (0.1, 0.1) if kinds[name]["kind"] == "factor" else (width / 2 + 0.02, height / 2 + 0.02)

    for parent, child in graph["edges"]:
        (px, py), (cx, cy) = positions[parent], positions[child]
        dx, dy = cx - px, cy - py
        (pa, pb), (ca, cb) = radius(parent), radius(child)
        start = 1 / max(1e-9, ((dx / pa) ** 2 + (dy / pb) ** 2) ** 0.5)
        end = 1 / max(1e-9, ((dx / ca) ** 2 + (dy / cb) ** 2) ** 0.5)
        ax.add_patch(FancyArrowPatch((px + start * dx, py + start * dy), (cx - end * dx, cy - end * dy),
                                     arrowstyle="-|>", mutation_scale=10, color="#555555", linewidth=0.9,
                                     shrinkA=0, shrinkB=0))
    if title:
        ax.set_title(title, fontsize=10)
    figure.tight_layout()
    return figure

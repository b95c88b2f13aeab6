"""Non-centring hierarchical location-scale sites, on request or from a run's own diagnosis.

`--reparam noncentred` applies NumPyro's `LocScaleReparam(0)` to every latent site of a
location-scale family (Normal, Student-t, Cauchy, Laplace, logistic, Gumbel) whose location or
scale depends on another latent site (from `numpyro.infer.inspect.get_model_relations`): the
sampler draws `<site>_decentered` from the standard family and the site itself becomes a
deterministic function of it, so it keeps its name in the posterior. The model function keeps
its signature, so a user's plain NumPyro function binds to its data as before.

`--reparam auto` (`probgen.infer.driver.rerun_noncentred`): after a NUTS/HMC run with
divergences, the latent sites whose divergent draws sit at their smallest values (a scale in a
funnel's neck: `probgen.checks.diagnostics.funnel_sites`) are found, and the hierarchical sites
that depend on them (`sites_for_funnel`) are non-centred for one rerun.
"""

from __future__ import annotations

import functools

CHOICES = ("none", "noncentred", "auto")
# location-scale families LocScaleReparam can decentre, with the parameters it copies unchanged
LOC_SCALE = {"Normal": (), "StudentT": ("df",), "Cauchy": (), "Laplace": (), "Logistic": (), "Gumbel": ()}


def relations(model, observed) -> dict:
    """NumPyro's model relations (sample_sample: each sample site's upstream sample sites;
    sample_dist: its distribution's name; observed)."""
    from numpyro.infer.inspect import get_model_relations

    return get_model_relations(model, model_kwargs=dict(observed))


def hierarchical_sites(model, observed, found: dict | None = None) -> dict[str, list[str]]:
    """{latent location-scale site: the latent sites its location or scale depends on}, for
    every such site with at least one (the sites non-centring can help). found: the model's
    `relations`, when already read (each read traces the model)."""
    found = relations(model, observed) if found is None else found
    observed_sites = set(found["observed"])
    latent = set(found["sample_sample"]) - observed_sites
    return {site: sorted(set(parents) & latent) for site, parents in found["sample_sample"].items()
            if site in latent and found["sample_dist"].get(site) in LOC_SCALE and set(parents) & latent}


def noncentred(model, sites: dict[str, str]):
    """`model` with each of `sites` ({site: its family's name}) drawn non-centred
    (`LocScaleReparam(0)`); the signature, name and docstring stay the model's."""
    from numpyro.handlers import reparam
    from numpyro.infer.reparam import LocScaleReparam

    config = {site: LocScaleReparam(0, shape_params=LOC_SCALE[family]) for site, family in sites.items()}
    handled = reparam(model, config=config)

    @functools.wraps(model)
    def reparameterised(*args, **kwargs):
        return handled(*args, **kwargs)

    reparameterised.noncentred_sites = tuple(sites)
    return reparameterised


def noncentre_spec(spec, inputs, sites=None):
    """(spec with `sites` non-centred, the sites): every hierarchical location-scale site when
    `sites` is None. A spec without such a site comes back unchanged, with no sites."""
    import dataclasses

    bound = inputs.bound_model(spec.model)
    found = relations(bound, inputs.observed)  # read once: each read traces the model
    if sites is None:
        sites = sorted(hierarchical_sites(bound, inputs.observed, found))
    if not sites:
        return spec, []
    families = {site: found["sample_dist"][site] for site in sites}
    return dataclasses.replace(spec, model=noncentred(spec.model, families)), list(sites)


def sites_for_funnel(hierarchical: dict[str, list[str]], funnel: list[dict]) -> list[str]:
    """The hierarchical sites that depend on a funnel's scale site (the ones to non-centre)."""
    necks = {f["site"] for f in funnel}
    return sorted(site for site, parents in hierarchical.items() if necks & set(parents))

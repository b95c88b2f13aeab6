"""Process set-up of the command-line entry point (`probgen.devices`)."""

import jax

from probgen.devices import use_compilation_cache


def test_the_compilation_cache_goes_where_asked_and_can_be_turned_off(tmp_path, monkeypatch):
    before = jax.config.jax_compilation_cache_dir
    try:
        monkeypatch.setenv("PROBGEN_CACHE_DIR", str(tmp_path / "xla"))
        assert use_compilation_cache() == str(tmp_path / "xla")
        assert (tmp_path / "xla").is_dir() and jax.config.jax_compilation_cache_dir == str(tmp_path / "xla")
        monkeypatch.setenv("PROBGEN_CACHE_DIR", "")
        jax.config.update("jax_compilation_cache_dir", before)
        assert use_compilation_cache() is None and jax.config.jax_compilation_cache_dir == before
        monkeypatch.delenv("PROBGEN_CACHE_DIR")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home-cache"))
        assert use_compilation_cache() == str(tmp_path / "home-cache" / "probgen" / "xla")
    finally:
        jax.config.update("jax_compilation_cache_dir", before)

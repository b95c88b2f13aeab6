"""`probgen models`, `probgen methods`, `probgen datasets`: what there is."""

from __future__ import annotations


def models() -> int:
    from probgen.errors import ModelError
    from probgen.spec import builtin_model_names, load_spec

    for name in builtin_model_names():
        try:
            spec = load_spec(name)
        except ModelError:  # a family still being built (its functions exist, its SPEC not yet)
            print(f"{name}: (in development: no SPEC yet, so not fittable from the command line)")
            continue
        print(f"{name}: {spec.description}")
        for option in spec.options:
            choices = f" [{'|'.join(option.choices)}]" if option.choices else ""
            default = f" (default {option.default})" if option.default not in ("", None) else ""
            print(f"    --{option.name.replace('_', '-')}{choices}  {option.help}{default}")
    return 0


def methods() -> int:
    import inspect

    from probgen.infer import methods

    for method in methods.registered():
        doc = (inspect.getdoc(type(method)) or "").split("\n")[0]
        print(f"{method.command_name}{'' if not method.exclusive else ' (' + method.describe() + ')'}: {doc}")
        for setting in method.settings:
            if setting.help is not None:
                print(f"    {setting.flag}  {setting.help} (default {setting.default})")
    return 0


def datasets() -> int:
    from probgen.data import text as text_data
    from probgen.data import BUNDLED

    for name, entry in sorted(BUNDLED.items()):
        columns = ", ".join(entry.columns) if entry.columns else "all (see the description)"
        print(f"{name}: {entry.description}; columns {columns}")
    for name, description in text_data.describe().items():
        print(f"{name}: {description}; text (the language models: ngram, neural_lm, attention_lm)")
    return 0

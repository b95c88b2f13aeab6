"""probgen's model families, one module each; installed as `probgen.models`."""

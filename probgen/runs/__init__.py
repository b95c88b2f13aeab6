"""What is done with a finished run folder: draw new rows from it (`sampling`, `probgen
sample`), predict at new inputs (`predict`, `probgen predict`), and find what a `--resume`
carries on (`resume`: the saved request's model and data)."""

"""The shell commands of README.md, as `tests/test_readme.py` runs them.

A fenced block marked `sh`, `bash` or `console` is a list of commands (a `console` block holds
`$ COMMAND` lines, each followed by the output it prints, which must appear). A line that ends
in a backslash goes on on the next line. A block preceded by the line `<!-- file: NAME -->` is
not run: it is written to NAME in the folder the commands run in (the tour's model and data).

Commands run as printed, except for their size, shrunk by `shrink` below so that the whole README
runs in about 10 minutes on 2 cores (`make test-install`). Flags are only *appended*: a size flag the command lacks
(METHOD_SIZE, FAMILY_SIZE), and the lengths it gives (--draws, --steps, --warmup) scaled down,
which argparse's last-value-wins turns into an override. Every other flag is the README's.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path

FENCE = re.compile(r"^```(\w*)\s*$")
FILE_MARK = re.compile(r"^<!-- file: (\S+) -->$")


@dataclasses.dataclass
class Command:
    text: str                  # as printed in the README (continuations joined)
    line: int                  # its first line in README.md
    expected_output: list[str]  # console blocks: the lines it must print


@dataclasses.dataclass
class Block:
    section: str   # the heading above it
    line: int
    commands: list[Command]


def read(readme: Path) -> tuple[list[Block], dict[str, str]]:
    """The README's command blocks in order, and the files its marked blocks define."""
    lines = readme.read_text(encoding="utf-8").split("\n")
    blocks, files, section, index = [], {}, "", 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("#") and not line.startswith("#!"):
            section = line.lstrip("#").strip()
        fence = FENCE.match(line)
        if not fence:
            index += 1
            continue
        start, language = index, fence.group(1)
        index += 1
        body = []
        while index < len(lines) and not lines[index].startswith("```"):
            body.append(lines[index])
            index += 1
        index += 1
        mark = FILE_MARK.match(lines[start - 1]) if start else None
        if mark:
            files[mark.group(1)] = "\n".join(body) + "\n"
        elif language in ("sh", "bash", "console"):
            blocks.append(Block(section, start + 1, _commands(body, start + 2, console=language == "console")))
    return blocks, files


def _commands(body: list[str], first_line: int, console: bool) -> list[Command]:
    commands: list[Command] = []
    pending, pending_line = "", 0
    for offset, raw in enumerate(body):
        line = raw.rstrip()
        if console:
            if line.startswith("$ "):
                commands.append(Command(line[2:], first_line + offset, []))
            elif line and commands:
                commands[-1].expected_output.append(line)
            continue
        if not line.strip() or (line.lstrip().startswith("#") and not pending):
            continue
        if not pending:
            pending_line = first_line + offset
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        commands.append(Command((pending + line.strip()).strip(), pending_line, []))
        pending = ""
    return commands


# --------------------------------------------------------------------------------------------
# Shrinking: the README's commands at CI's size
# --------------------------------------------------------------------------------------------
# Appended to every `probgen fit` by the method that fits (the family's default unless --method):
METHOD_SIZE = {
    "nuts": ["--chains", "2", "--warmup", "50", "--draws", "50", "--max-tree-depth", "6"],
    "hmc": ["--chains", "2", "--warmup", "50", "--draws", "50"],
    "svi": ["--steps", "300", "--draws", "50"],
    "map": ["--steps", "300"],
    "minibatch": ["--steps", "60", "--eval-every", "30", "--batch-size", "64"],
    "adversarial": ["--steps", "60", "--eval-every", "30"],
    "exact": ["--draws", "20"],
}
# ... and by family: smaller networks, fewer users, fewer importance samples (each only where the
# command does not set it).
FAMILY_SIZE = {
    "vae": ["--hidden", "16", "--latent-dim", "2", "--iwae-samples", "5"],
    "made": ["--hidden", "16"],
    "gan": ["--hidden", "16", "--discriminator-hidden", "16"],
    "neural_lm": ["--context", "8", "--block", "16", "--hidden", "16", "--draws", "2"],
    "attention_lm": ["--context", "16", "--block", "16", "--hidden", "16", "--layers", "1", "--heads", "2",
                     "--draws", "2"],
    "pmf": ["--max-users", "30"],
}
# Lengths the README gives are divided (a resumed run must ask for more than the run it carries
# on, so they stay in proportion): --draws by 400, --steps by 200, --warmup capped at 50.
DRAWS_DIVISOR, STEPS_DIVISOR, MAX_WARMUP = 400, 200, 50
SBC_SIZE = ["--simulations", "4", "--num-draws", "9", "--chains", "1", "--warmup", "50", "--draws", "50"]
ANALYSIS_SIZE = {"text_lm.py": ["--documents", "300", "--order", "3", "--steps", "40", "--eval-every", "20",
                                "--attention-context", "16", "--attention-block", "16"]}


def _value(tokens: list[str], flag: str) -> str | None:
    value = None
    for index, token in enumerate(tokens):
        if token == flag and index + 1 < len(tokens):
            value = tokens[index + 1]
        elif token.startswith(flag + "="):
            value = token.split("=", 1)[1]
    return value


def _scaled(tokens: list[str]) -> list[str]:
    extra = []
    for flag, divisor, floor in (("--draws", DRAWS_DIVISOR, 20), ("--steps", STEPS_DIVISOR, 60)):
        given = _value(tokens, flag)
        if given is not None:
            extra += [flag, str(max(floor, int(given) // divisor))]
    warmup = _value(tokens, "--warmup")
    if warmup is not None:
        extra += ["--warmup", str(min(int(warmup), MAX_WARMUP))]
    return extra


def shrink(command: str, family_of, method_of) -> str:
    """The command at CI's size. family_of(model reference) -> a built-in family name or
    "user"; method_of(model reference, --method value or None) -> the method's registry name."""
    tokens = shlex.split(command, comments=True)
    if tokens[:2] == ["probgen", "fit"]:
        if _value(tokens, "--resume") is not None and len(tokens) > 2 and tokens[2].startswith("--"):
            extra = _scaled(tokens)  # --resume RUN_DIR alone: the run's own sizes, lengths in proportion
        else:
            model = tokens[2]
            method = method_of(model, _value(tokens, "--method"))
            sizes = METHOD_SIZE.get(method, []) + FAMILY_SIZE.get(family_of(model), [])
            extra = [token for flag, value in zip(sizes[::2], sizes[1::2]) if _value(tokens, flag) is None
                     for token in (flag, value)] + _scaled(tokens)
        tokens += ["--quiet", *extra]
    elif tokens[:2] == ["probgen", "sbc"]:
        method = _value(tokens, "--method") or "nuts"
        tokens += ["--quiet", *SBC_SIZE[:4]]
        tokens += SBC_SIZE[4:] if method in ("nuts", "hmc") else ["--steps", "300"]
        if _value(tokens, "--workers") is not None:
            tokens += ["--workers", "2"]
    elif tokens[:1] == ["python"] and len(tokens) > 1 and Path(tokens[1]).name in ANALYSIS_SIZE:
        tokens += ["--quiet", *ANALYSIS_SIZE[Path(tokens[1]).name]]
    return shlex.join(tokens)

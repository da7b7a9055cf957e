"""Every `python -m bench COMMAND ...` the README shows, and every `nox -s SESSION -- ...` whose
arguments go to a command, parses with that command's own parser: a renamed or removed option, or
a value of the wrong type, fails here instead of in a user's shell. (Parsing only: nothing runs.)"""

import re
import shlex
from pathlib import Path

import pytest

from bench.__main__ import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[2]

# README placeholders, given a value of their kind
PLACEHOLDERS = {"S": "0", "N": "3", "DIR": "results/x", "REF": "HEAD", "RECIPE": "smoke_resnet20_cifar10_jpeg"}


def nox_commands() -> dict[str, str]:
    """session -> the bench command its arguments go to, read from noxfile.py's
    `session.run("python", "-m", "bench", "COMMAND", *session.posargs ...)`."""
    text = (ROOT / "noxfile.py").read_text()
    found = {}
    for name, body in re.findall(r"^def (\w+)\(session.*?\n(.*?)(?=^\S)", text, re.S | re.M):
        command = re.search(r'"bench",\s*"(\w+)",\s*\*\(?session\.posargs', body)
        if command:
            found[name] = command.group(1)
    return found


def code_in(readme: str) -> list[str]:
    """The README's code: each line of its fenced blocks (continuations joined) and each inline span."""
    blocks = re.findall(r"^ *```\w*\n(.*?)^ *```", readme, re.S | re.M)
    lines = [ln for block in blocks for ln in re.sub(r"\\\n\s*", " ", block).splitlines()]
    prose = re.sub(r"^ *```\w*\n.*?^ *```", "", readme, flags=re.S | re.M)
    return lines + [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", prose)]


def words(rest: str) -> list[str]:
    """A command's arguments as a shell splits them; one quoted inside another command (`ssh host
    --command "cd x && python -m bench ..."`) ends at that command's closing quote."""
    try:
        return shlex.split(rest)
    except ValueError:
        return shlex.split(rest.rstrip().removesuffix('"'))


def readme_commands() -> list[tuple[str, list[str], str]]:
    """(command, its arguments, the README's text) for every command line the README shows."""
    sessions = nox_commands()
    found = {}
    for line in code_in((ROOT / "README.md").read_text()):
        for part in re.split(r";|&&|\|\||\bdo\b", re.sub(r"\s#.*", "", line)):
            m = re.search(r"python -m bench (\w+)(.*)|nox -s (\w+) --(.*)", part)
            if not m:
                continue
            command, rest = (m.group(1), m.group(2)) if m.group(1) else (sessions.get(m.group(3)), m.group(4))
            if command is None or "..." in rest or "$" in rest or re.search(r"<\w+>", rest):
                continue  # a session that passes no arguments on, or an elided command
            args = [PLACEHOLDERS.get(a, a.split("|")[0]) for a in words(rest)]
            found[(command, tuple(args))] = part.strip()
    return [(command, list(args), text) for (command, args), text in sorted(found.items())]


COMMAND_LINES = readme_commands()


def test_the_readme_shows_the_commands():
    shown = {command for command, _, _ in COMMAND_LINES}
    assert len(COMMAND_LINES) >= 40 and shown == set(COMMANDS), set(COMMANDS) - shown
    assert nox_commands()["bench"] == "throughput" and nox_commands()["ab"] == "ab"


@pytest.mark.parametrize("command, args, text", COMMAND_LINES, ids=[t for _, _, t in COMMAND_LINES])
def test_a_readme_command_parses(command, args, text, capsys):
    argv = [command, *args]
    try:
        build_parser(argv).parse_args(argv)
    except SystemExit:
        pytest.fail(f"README: `{text}` does not parse: {capsys.readouterr().err.strip()}")

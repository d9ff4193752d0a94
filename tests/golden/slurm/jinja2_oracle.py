"""Oracle for tests/slurm_render.test.ts: render templates with Python Jinja2.

Reads JSON [{"name", "template", "context"}, ...] on stdin; writes JSON [output, ...] on stdout.
The environment matches lib/exec/jinja.ts: trim_blocks, lstrip_blocks, keep_trailing_newline,
StrictUndefined, and an `sh` filter that is an independent port of lib/shell.ts shellQuote.
"""
import json
import re
import sys

import jinja2

SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")


def sh(value):
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError("sh takes a string or an integer")
    s = str(value)
    if s == "":
        return "''"
    if SAFE.fullmatch(s):
        return s
    return "'" + s.replace("'", "'\"'\"'") + "'"


def main():
    env = jinja2.Environment(
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    env.filters["sh"] = sh
    cases = json.load(sys.stdin)
    out = [env.from_string(c["template"]).render(**c["context"]) for c in cases]
    json.dump(out, sys.stdout)


main()

#!/usr/bin/env python3
"""Checks that every #include in the C/CUDA sources points down the layer stack (docs/ARCHITECTURE.md).

    core -> format -> template -> tokenizer -> backend (+ cuda/ kernels) -> model -> exec/comm -> exec
         -> exec/tp -> engine -> api  ->  cli, bench (tools: include/ headers only)

A file may include headers of its own layer or of a lower one; include/ (the public contract)
is open to every layer. The tools (host/cli, bench) may include include/ and each other only.
Exit status 1 and one line per offending include ("file:line: layer X includes Y of layer Z").

    check_layers.py [ROOT]        check the tree at ROOT (default: this repository)
    check_layers.py --self-test   build a small tree with one wrong-way include and one
                                  right-way include, and check that only the first is reported
"""
import os
import re
import sys
import tempfile

# (directory prefix under the root, layer name, rank): the longest matching prefix wins
LAYERS = [
    ("host/core/", "core", 0),
    ("host/format/", "format", 1),
    ("host/template/", "template", 1.5),  # the Jinja interpreter: chat templates need it
    ("host/tokenizer/", "tokenizer", 2),
    ("host/backend/", "backend", 3),
    ("cuda/", "backend", 3),  # the kernels and cusim: below the host backend glue
    ("host/model/", "model", 4),
    ("host/exec/comm/", "exec/comm", 5),
    ("host/exec/", "exec", 6),
    ("host/exec/tp/", "exec/tp", 7),
    ("host/engine/", "engine", 8),
    ("host/api/", "api", 9),
    ("include/", "public", -1),  # open to every layer
    ("host/cli/", "tools", 10),
    ("host/server/", "tools", 10),
    ("bench/", "tools", 10),
]
TOOLS = "tools"
SEARCH = ["host", "include", "cuda", "cuda/sim"]  # the include paths of the build, in order
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^">]+)[">]')
SOURCE_EXT = (".c", ".h", ".cu", ".cuh")


def layer_of(rel):
    best = None
    for prefix, name, rank in LAYERS:
        if rel.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, name, rank)
    return best


def resolve(root, rel_file, kind, target):
    """The repository path an include names, or None for a system header."""
    cands = []
    if kind == '"':
        cands.append(os.path.join(os.path.dirname(rel_file), target))
    cands += [os.path.join(d, target) for d in SEARCH]
    for c in cands:
        c = os.path.normpath(c)
        if os.path.isfile(os.path.join(root, c)):
            return c
    return None


def check(root):
    problems = []
    for top in ("host", "bench", "cuda", "include"):
        for dp, _, files in os.walk(os.path.join(root, top)):
            for f in sorted(files):
                if not f.endswith(SOURCE_EXT):
                    continue
                rel = os.path.relpath(os.path.join(dp, f), root)
                me = layer_of(rel)
                if me is None:
                    continue
                with open(os.path.join(root, rel), errors="replace") as fh:
                    for n, line in enumerate(fh, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        dep = resolve(root, rel, m.group(1), m.group(2))
                        if dep is None:
                            continue
                        it = layer_of(dep)
                        if it is None or it[2] < 0 or it[1] == me[1]:
                            continue
                        if me[1] == TOOLS:
                            bad = it[1] != TOOLS
                            why = "the tools use include/ headers only"
                        else:
                            bad = it[2] > me[2]
                            why = "an include must point down the layers"
                        if bad:
                            problems.append(f"{rel}:{n}: layer {me[1]} includes {dep} of layer "
                                            f"{it[1]} ({why})")
    return problems


def self_test():
    with tempfile.TemporaryDirectory() as d:
        files = {
            "host/core/error.h": "",
            "host/format/gguf.h": '#include "../core/error.h"\n',  # down: fine
            "host/engine/engine.h": "",
            "host/format/bad.c": '#include "../engine/engine.h"\n',  # up: must be reported
            "host/cli/main.c": '#include "format/gguf.h"\n',  # tool reaching inside: reported
        }
        for p, text in files.items():
            os.makedirs(os.path.join(d, os.path.dirname(p)), exist_ok=True)
            with open(os.path.join(d, p), "w") as fh:
                fh.write(text)
        got = check(d)
        want = ["host/cli/main.c:1:", "host/format/bad.c:1:"]
        ok = len(got) == 2 and all(any(g.startswith(w) for g in got) for w in want)
        print("\n".join(got))
        print("self-test:", "ok" if ok else "FAILED (expected exactly %s)" % want)
        return 0 if ok else 1


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--self-test":
        return self_test()
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    problems = check(os.path.abspath(root))
    for p in problems:
        print(p)
    print(f"layering: {len(problems)} wrong-way include(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

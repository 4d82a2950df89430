"""The ``llmrt`` console script of the wheel: runs the command-line tool the wheel bundles
(``llmrt/bin/llmrt``, the same program ``cmake --build`` makes) with the same arguments."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def binary_path() -> Path:
    """Where the bundled command is (it exists only in a wheel built by pyproject.toml)."""
    return Path(__file__).parent / "bin" / "llmrt"


def main() -> None:
    exe = binary_path()
    if not exe.is_file():
        sys.stderr.write(
            f"llmrt: the command-line tool is not in this installation ({exe} is missing); "
            "install the package from the project's root (pip install .), which builds it\n")
        sys.exit(1)
    os.execv(str(exe), [str(exe), *sys.argv[1:]])


if __name__ == "__main__":
    main()

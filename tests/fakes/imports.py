"""Blocking imports in a subprocess: `blocker_source("torch")` is Python source that, run first, makes `import
torch` (and any torch.* submodule) raise ImportError, as on a machine without it. Prepend it to the script of a
`python -c` subprocess; the interpreter running the tests stays untouched."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def blocker_source(*packages: str) -> str:
    """Source that installs a meta-path finder refusing `packages` (top-level names) before anything else runs."""
    return (
        "import sys\n"
        "class _Blocked:\n"
        f"    names = {tuple(packages)!r}\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in self.names:\n"
        "            raise ImportError(f'blocked for this test: {name}')\n"
        "        return None\n"
        "sys.meta_path.insert(0, _Blocked())\n"
    )


def run_blocked(script: str, *packages: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -c BLOCKER + script` in the repository root with `packages` unimportable; text output captured."""
    return subprocess.run([sys.executable, "-c", blocker_source(*packages) + script], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)

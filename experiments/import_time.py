"""How long `import searchq` takes (target: under ~1.5 s; heavy modules load lazily).

Run:  .venv/bin/python experiments/import_time.py
Writes experiments/results/import_time.md.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

STATEMENTS = {
    "import searchq": "import searchq",
    "import searchq.core (loads torch)": "import searchq.core",
    "import torch (reference)": "import torch",
    "searchq --help (CLI parser)": "import searchq.cli as c; c.build_parser().format_help()",
}
REPEATS = 7


def wall_time(statement: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True)
    return time.perf_counter() - start


def main() -> None:
    rows = []
    for label, statement in STATEMENTS.items():
        wall_time(statement)  # warm the file cache
        times = [wall_time(statement) for _ in range(REPEATS)]
        rows.append((label, statistics.median(times), min(times), max(times)))
    lines = [
        "# Import time",
        "",
        "Command: `.venv/bin/python experiments/import_time.py` (wall time of a fresh interpreter, "
        f"median of {REPEATS} after one warm-up run; 2-core CPU machine).",
        "",
        "| statement | median s | min s | max s |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [f"| `{label}` | {med:.3f} | {lo:.3f} | {hi:.3f} |" for label, med, lo, hi in rows]
    text = "\n".join(lines) + "\n"
    out = Path(__file__).with_name("results") / "import_time.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

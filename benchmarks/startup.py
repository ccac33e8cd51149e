"""Start-up time of nas-llv commands: the wall time of each command line, in a fresh process.

Each command runs `--repeats` times; the median is printed. The error cases (a recipe whose
data folder is missing, a recipe with an unknown key) measure how soon a user learns of a
mistake. Run from the repository root; to time another checkout side by side, put it first on
PYTHONPATH (``PYTHONPATH=../old python benchmarks/startup.py``).

    python benchmarks/startup.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "--help": ["--help"],
    "list ops": ["list", "ops"],
    "list spaces": ["list", "spaces"],
    "list strategies": ["list", "strategies"],
    "space show ruas_cell": ["space", "show", "ruas_cell"],
    "search: missing LOL data": ["search", "recipes/ruas_lol.yaml"],
    "search: unknown recipe key": ["search", "recipes/ruas_demo.yaml", "search.epoch=2"],
    "search: data key of another dataset": ["search", "recipes/ruas_demo.yaml", "data.type=folder"],
}


def wall(args: list[str]) -> float:
    start = time.perf_counter()
    # the CLI's entry point itself (works for any checkout on PYTHONPATH, old or new)
    subprocess.run([sys.executable, "-c", "import sys; from nas_llv.cli import main; sys.exit(main())", *args],
                   capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"| command | median of {args.repeats} (s) |")
    print("| --- | --- |")
    for name, argv in COMMANDS.items():
        print(f"| `nas-llv {' '.join(argv)}` ({name}) | {statistics.median(wall(argv) for _ in range(args.repeats)):.2f} |",
              flush=True)


if __name__ == "__main__":
    main()

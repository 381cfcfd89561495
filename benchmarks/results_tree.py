"""The bookkeeping ``esc50 analyze`` does for each recording of one flat folder, by the number
of recordings the folder holds: per recording, it should not grow with the folder.

    python benchmarks/results_tree.py [--sizes 1000 5000 20000] [--timed 300]

For each size N, a results tree as a folder of N recordings leaves it once N - TIMED of them are
done (their result file and done record, made as plain files), then the last TIMED recordings
go through what ``esc50 analyze`` does around a recording's analysis: its claim, the temporary
files a killed write left of it cleared, its result file written atomically and its done record
written. The reference, in the same run: the same result file written atomically alone, in a
folder of the same size (the file system's own cost, fsync included). Both in milliseconds per
recording; "x" is the bookkeeping's time over the reference's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from esc50.commands.analyze.formats import SUFFIXES, output_path
from esc50.commands.analyze.results import ResultsTree
from esc50.commands.analyze.run import embedding_paths
from esc50.core.files.write import write_text

RESULT = "start,end,class,probability\n0.000,5.000,rain,0.9000\n"


def filled_tree(root: Path, done: int) -> ResultsTree:
    """A results tree whose one folder holds ``done`` recordings' results and records."""
    tree = ResultsTree(root, {"benchmark": True})
    for number in range(done):
        relative = Path(f"rec{number:06d}.wav")
        output_path(tree.result_base(relative), "csv").write_text(RESULT)
        (tree.state / "done" / f"{relative.name}.json").write_text("{}\n")
    return tree


def bookkeeping(tree: ResultsTree, numbers: range) -> float:
    """Milliseconds per recording of what analyze does around each of ``numbers``."""
    started = time.perf_counter()
    for number in numbers:
        relative = Path(f"rec{number:06d}.wav")
        base = tree.result_base(relative)
        with tree.claimed(relative) as mine:
            assert mine
            tree.clear_leftovers(relative, [*(output_path(base, f) for f in SUFFIXES),
                                            *embedding_paths(base)])  # as analyze_recording
            write_text(output_path(base, "csv"), RESULT)
            tree.mark_done(relative, {"file": relative.as_posix()})
    return (time.perf_counter() - started) * 1000 / len(numbers)


def reference(folder: Path, numbers: range) -> float:
    """Milliseconds per recording of its result file written atomically, alone."""
    started = time.perf_counter()
    for number in numbers:
        write_text(folder / f"rec{number:06d}.wav.csv", RESULT)
    return (time.perf_counter() - started) * 1000 / len(numbers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--timed", type=int, default=300)
    args = parser.parse_args()
    print("| recordings in the folder | reference ms | bookkeeping ms | x |")
    print("|---:|---:|---:|---:|")
    for size in args.sizes:
        timed = range(size - args.timed, size)
        with tempfile.TemporaryDirectory() as work:
            plain = Path(work) / "plain"
            plain.mkdir()
            for number in range(timed.start):
                (plain / f"rec{number:06d}.wav.csv").write_text(RESULT)
            alone = reference(plain, timed)
            tree = filled_tree(Path(work) / "results", timed.start)
            kept = bookkeeping(tree, timed)
        print(f"| {size} | {alone:.2f} | {kept:.2f} | {kept / alone:.1f} |")


if __name__ == "__main__":
    main()

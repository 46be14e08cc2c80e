"""Machine instructions per Batch API record: a cost figure the machine's load does not move.

Run it from the repository root (it needs valgrind: ``apt-get install valgrind``; about
3 minutes on 2 idle cores, longer under load):

    python benchmarks/instructions.py [--small 1000] [--large 3000]

``batch_api_scale.py`` runs the diamond twice, with ``--small`` and ``--large`` records, side
by side, each flowrun process under valgrind's callgrind. The difference of their instruction
counts over the difference of their records is what one more record costs: start-up and the
waits cancel out. On a shared machine the CPU time of a whole run varies by about 8% from run
to run; this figure varies by about 0.25% (the hash seed), so a cut of 1% shows. It counts
instructions, not time: what it cannot see is cache misses and system calls (the process's
writes to SQLite's log are about a tenth of its time; ``strace -c`` counts them). Printed:
instructions per record, and, when ``callgrind_annotate`` is there, their split by library
(the Python interpreter, ``_json``, ``libsqlite3``, ...).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(records: int, out: Path) -> subprocess.Popen[bytes]:
    prefix = f"valgrind --tool=callgrind --callgrind-out-file={out}"
    command = [sys.executable, str(HERE / "batch_api_scale.py"), "--records", str(records)]
    command += ["--delay", "5", "--prefix", prefix]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def total(out: Path) -> int:
    found = re.search(r"^totals: (\d+)", out.read_text(), re.M)
    if found is None:
        raise SystemExit(f"{out}: no totals (did the run fail?)")
    return int(found.group(1))


def by_library(out: Path) -> dict[str, int]:
    """Instructions by the library (or the interpreter's source file) that ran them."""
    text = subprocess.run(
        ["callgrind_annotate", "--inclusive=no", "--threshold=100", str(out)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    counts: dict[str, int] = collections.Counter()
    for line in text.splitlines():
        found = re.match(r"\s*([\d,]+) \([^)]*\)\s+(\S.*?):(\S+?)(?: \[(.*)\])?$", line)
        if found is None or "PROGRAM TOTALS" in line:
            continue
        library = (found.group(4) or "").rsplit("/", 1)[-1]
        if "libpython" in library:
            library = "python:" + found.group(2).rsplit("/", 1)[-1]
        counts[library or "(inlined)"] += int(found.group(1).replace(",", ""))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=3_000)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("instructions.py needs valgrind (apt-get install valgrind)")
    work = Path(tempfile.mkdtemp(prefix="flowrun-instructions-"))
    outs = {n: work / f"callgrind.{n}" for n in (args.small, args.large)}
    runs = [run(n, out) for n, out in outs.items()]
    if any(p.wait() != 0 for p in runs):
        raise SystemExit("a run failed: run batch_api_scale.py alone to see why")
    records = args.large - args.small
    per_record = (total(outs[args.large]) - total(outs[args.small])) / records
    print(f"Batch API, diamond: {per_record:,.0f} instructions per record")
    print(f"  ({args.small:,} and {args.large:,} records under callgrind; files in {work})")
    if shutil.which("callgrind_annotate") is None:
        return
    small, large = by_library(outs[args.small]), by_library(outs[args.large])
    share = {k: (large.get(k, 0) - small.get(k, 0)) / records for k in set(small) | set(large)}
    for library, count in sorted(share.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {100 * count / per_record:5.1f}%  {count:10,.0f}  {library}")


if __name__ == "__main__":
    main()

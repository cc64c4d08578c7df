"""Native arguments and locals against gdb's ``bt full``, at scale: the generated programs of
tests/test_native_locals.py (the test runs 6), here N of them at each optimisation level. Prints
how many values agree, and each disagreement; ``--json`` for the figures. gdb reads an argument the
optimiser did not keep from the caller's DWARF call site (``p@entry=1``); we do not yet, and the
count of those is given apart.

    python bench/native_locals.py [-n 200] [--opt O0 O1 O2] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.coretools import crash_program  # noqa: E402
from tests.test_native_locals import gdb_bt_full, program  # noqa: E402


def compare(seed: int, opt: str, root: Path) -> tuple[int, list[str]]:
    """(values compared, disagreements) for one program at one level."""
    work = root / f"{opt}-{seed}"
    work.mkdir()
    (work / "p.c").write_text(program(seed))
    exe = work / "p"
    core = crash_program(["gcc", "-g", f"-{opt}", "p.c", "-o", "p"], exe, work)
    theirs = gdb_bt_full(exe, core)
    r = subprocess.run([sys.executable, "-m", "notmyfault", "stack", str(core), "-v", "--json"],
                       capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    ours = {f["function"]: f for f in json.loads(r.stdout)["threads"][0]["frames"]}
    compared, wrong = 0, []
    for name, (args, local) in theirs.items():
        if name not in ours or not (name.startswith("f") or name == "main"):
            continue
        where = f"{opt} seed {seed} {name}"
        for what, gdb_pairs in (("arguments", args), ("locals", local)):
            mine = [(v["name"], v["value"]) for v in ours[name][what]]
            for pair, gdb_pair in zip(mine, gdb_pairs, strict=False):
                if gdb_pair[1] == "...":  # gdb shows a structure argument so in the frame line
                    continue
                compared += 1
                if pair != gdb_pair:
                    wrong.append(f"{where} {what} {gdb_pair[0]}: ours {pair[1]!r}, gdb {gdb_pair[1]!r}")
            if len(mine) != len(gdb_pairs):
                wrong.append(f"{where}: {len(mine)} {what}, gdb {len(gdb_pairs)}")
    return compared, wrong


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=100, help="programs per optimisation level")
    ap.add_argument("--opt", nargs="+", default=["O0", "O1", "O2"])
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for opt in a.opt:
            total, wrong = 0, []
            for seed in range(a.n):
                c, w = compare(seed, opt, Path(tmp))
                total, wrong = total + c, wrong + w
            entry = [w for w in wrong if "@entry" in w]
            other = [w for w in wrong if "@entry" not in w]
            results[opt] = {
                "programs": a.n,
                "values": total,
                "disagreements": len(wrong),
                "entry_values": len(entry),
                "examples": other[:20] + entry[:3],
            }
    if a.json:
        print(json.dumps(results, indent=2))
    else:
        for opt, r in results.items():
            print(
                f"{opt}: {r['values']} values of {r['programs']} programs, {r['disagreements']} disagree with "
                f"gdb, {r['entry_values']} of them values gdb took from the caller's call site (@entry)"
            )
            for line in r["examples"]:  # type: ignore[attr-defined]
                print("   ", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

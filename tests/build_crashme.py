"""Build tests/fixtures/crashme.c the ways real programs come: PIE, non-PIE, static, static PIE,
-O2 without frame pointers, frame pointers without unwind tables, and stripped.

    python tests/build_crashme.py OUTDIR      # writes OUTDIR/crashme-VARIANT for every variant

The tests build them into a temporary directory (tests/test_crashme.py).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "fixtures" / "crashme.c"
COMMON = ["-fno-optimize-sibling-calls", "-fno-stack-protector"]
VARIANTS: dict[str, list[str]] = {
    "pie": ["-O1", "-g", "-fPIE", "-pie"],
    "nopie": ["-O1", "-g", "-fno-pie", "-no-pie"],
    "static": ["-O1", "-g", "-static"],
    "static-pie": ["-O1", "-g", "-static-pie"],
    "omit-fp": ["-O2", "-g", "-fomit-frame-pointer"],
    "fp-no-cfi": ["-O1", "-fno-omit-frame-pointer", "-fno-asynchronous-unwind-tables", "-fno-unwind-tables"],
}
STRIPPED = "stripped"
"""A stripped copy of the 'pie' build (same code, same build-id, no symbols or debug info)."""


def build(outdir: Path, cc: str = "gcc") -> dict[str, Path]:
    """Build every variant into ``outdir``; return {variant: executable}."""
    outdir.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, flags in VARIANTS.items():
        exe = outdir / f"crashme-{name}"
        subprocess.run([cc, *flags, *COMMON, "-Wl,--build-id", "-o", str(exe), str(SOURCE)], check=True)
        out[name] = exe
    stripped = outdir / f"crashme-{STRIPPED}"
    shutil.copyfile(out["pie"], stripped)
    stripped.chmod(0o755)
    subprocess.run(["strip", "--strip-all", str(stripped)], check=True)
    out[STRIPPED] = stripped
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python tests/build_crashme.py OUTDIR")
    for variant, path in build(Path(sys.argv[1])).items():
        print(f"{variant:<11} {path}")

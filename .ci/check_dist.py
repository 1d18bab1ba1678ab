"""Check a built wheel and sdist: the wheel is the package with its type marker and license, the sdist builds it.

    python .ci/check_dist.py dist/

Exits non-zero with one line per problem.
"""

from __future__ import annotations

import sys
import tarfile
import zipfile
from pathlib import Path

PACKAGE = "lightning_bal"


def problems(dist: Path) -> list[str]:
    """Every way the wheel and sdist in ``dist`` fall short; empty when both are fine."""
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        return [f"expected one wheel and one sdist in {dist}, found {[p.name for p in wheels + sdists]}"]
    wheel = set(zipfile.ZipFile(wheels[0]).namelist())
    with tarfile.open(sdists[0]) as tar:
        # Members are "lightning_bal-VERSION/PATH": the paths relative to the source tree.
        sdist = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    found = []
    if f"{PACKAGE}/py.typed" not in wheel:
        found.append(f"the wheel lacks {PACKAGE}/py.typed: type checkers would ignore the package's annotations")
    stray = sorted(name for name in wheel if not name.startswith((f"{PACKAGE}/", f"{PACKAGE}-")))
    if stray:
        found.append(f"the wheel holds files outside the package: {stray[:5]}")
    tests = sorted(name for name in wheel | sdist if name.startswith("tests/") or "/tests/" in name)
    if tests:
        found.append(f"tests were packaged: {tests[:5]}")
    package = {name for name in wheel if name.startswith(f"{PACKAGE}/")}
    missing = sorted(package - sdist)
    if missing:
        found.append(f"the sdist lacks what the wheel holds: {missing[:5]}")
    for needed in ("pyproject.toml", "README.md", "LICENSE", "PKG-INFO"):
        if needed not in sdist:
            found.append(f"the sdist lacks {needed}")
    # The license travels with the wheel's metadata (`license-files`): Apache-2.0 asks for its text with every copy.
    if not any(name.endswith(".dist-info/licenses/LICENSE") for name in wheel):
        found.append("the wheel lacks the LICENSE file in its .dist-info/licenses")
    return found


def main(argv: list[str]) -> int:
    """Print the problems of the distributions in ``argv[0]``; 1 if there are any."""
    found = problems(Path(argv[0]))
    for problem in found:
        print(f"check_dist: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

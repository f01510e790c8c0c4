"""The licences of hitl-backend's runtime dependencies, read from the installed packages' metadata.

    .venv/bin/python scripts/licences.py            # print the table
    .venv/bin/python scripts/licences.py --write    # rewrite docs/licences.md from the installed metadata
    .venv/bin/python scripts/licences.py --check    # exit 1 on a copyleft licence, an unknown one, or a stale
                                                    # docs/licences.md

The runtime dependencies are the closure of hitl-backend's Requires-Dist without extras (what
``pip install hitl-backend`` installs; the dev and postgres extras are not in it), walked through the
installed distributions. A licence is read from the License-Expression field (SPDX), else a short
License field, else the License :: classifiers, else the first lines of the licence file the
distribution ships. The policy is in docs/licences.md (POLICY below).
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "licences.md"
PROJECT = "hitl-backend"

PERMISSIVE = "permissive"
WEAK = "weak copyleft (file-level)"
COPYLEFT = "copyleft"
UNKNOWN = "unknown"
ALLOWED = (PERMISSIVE, WEAK)

# SPDX identifiers by family. Anything GPL-like (GPL, AGPL, LGPL, SSPL, EUPL, OSL, CC BY-SA, ...) is copyleft.
_PERMISSIVE_IDS = re.compile(
    r"^(MIT|MIT-CMU|MIT-0|BSD-[0-9]-Clause(-[A-Za-z]+)?|0BSD|BSD|Apache-2\.0|Apache-2\.0 WITH LLVM-exception|ISC|"
    r"PSF-2\.0|Python-2\.0|CNRI-Python|Unlicense|CC0-1\.0|Zlib|BSL-1\.0|HPND|TCL|NCSA|W3C|MPL-2\.0-no-copyleft-exception|"
    r"Matplotlib|ZPL-2\.1)$"
)
_WEAK_IDS = re.compile(r"^(MPL-2\.0|MPL-1\.1|EPL-2\.0|EPL-1\.0|CDDL-1\.[01])$")
_COPYLEFT_IDS = re.compile(r"(^|-)(A?GPL|LGPL|SSPL|EUPL|OSL|RPL|CC-BY-SA|CC-BY-NC|Sleepycat|QPL|CPAL)", re.IGNORECASE)

# Names and phrases seen in License fields, classifiers and licence files, as SPDX identifiers.
_ALIASES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p, re.IGNORECASE), spdx)
    for p, spdx in (
        (r"affero|\bagpl", "AGPL-3.0"),
        (r"lesser general public|library general public|\blgpl", "LGPL"),
        (r"gnu general public|\bgpl", "GPL"),
        (r"mozilla public license 2\.0|\bmpl[ -]?2(\.0)?\b", "MPL-2.0"),
        (r"apache", "Apache-2.0"),
        (r"\bmit\b|permission is hereby granted, free of charge", "MIT"),
        (r"bsd 3-clause|bsd-3-clause|3-clause bsd|new bsd|modified bsd", "BSD-3-Clause"),
        (r"bsd 2-clause|bsd-2-clause|simplified bsd", "BSD-2-Clause"),
        (r"\bbsd\b|redistribution and use in source and binary forms", "BSD"),
        (r"python software foundation|\bpsfl?\b", "PSF-2.0"),
        (r"license agreement for matplotlib", "Matplotlib"),
        (r"\bisc\b", "ISC"),
        (r"unlicense", "Unlicense"),
        (r"public domain|cc0", "CC0-1.0"),
    )
]

POLICY = """\
Policy for the default install (`pip install hitl-backend`, what the Docker image and `hitl` run):

- **Permissive** licences (MIT, BSD, Apache-2.0, ISC, PSF, Unlicense, ...) are accepted.
- **Weak, file-level copyleft** (MPL-2.0) is accepted: it binds only the MPL-licensed files themselves
  (changes to them are shared under MPL-2.0), not this project or the packages beside it. We use these
  packages unmodified.
- **Copyleft** licences are refused: GPL, AGPL, SSPL, EUPL and the like, unless the package also offers
  a permissive licence (`GPL-2.0 OR MIT` is taken as MIT). LGPL is refused as well, as a conservative
  default: it can work for an imported Python package, but its duties (the library's source and changes
  offered, users able to replace it, in the Docker image too) should be weighed for the package at hand,
  by changing this policy on purpose rather than by an upgrade that slips one in.
- An **unknown** licence (no licence in the metadata at all) fails the check until someone reads the
  package's licence and records it in `REVIEWED` in `scripts/licences.py`, with where it was read.

`tests/test_licences.py` applies this to the installed metadata and fails on a copyleft or unknown
licence; it also fails when this file differs from what `scripts/licences.py --write` would write.
The optional extras (`dev`, `postgres`) are not part of the default install and are not checked here."""

# Distributions whose metadata names no licence at all, read by hand: name -> (licence, where it was read).
REVIEWED: dict[str, tuple[str, str]] = {}


@dataclass(frozen=True)
class Licence:
    name: str
    version: str
    licence: str
    source: str  # where it was read: License-Expression, License, classifier, licence file, reviewed
    category: str


def runtime_closure(root: str = PROJECT, path: list[str] | None = None) -> list[metadata.Distribution]:
    """``root`` and every distribution its Requires-Dist pulls in without extras, as installed in
    ``path`` (default sys.path; the first match of a name wins, as for imports)."""
    installed: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions(path=path if path is not None else sys.path):
        installed.setdefault(canonicalize_name(dist.metadata["Name"] or ""), dist)
    found: dict[str, metadata.Distribution] = {}
    todo, missing = [root], []
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found:
            continue
        dist = installed.get(name)
        if dist is None:
            missing.append(name)
            continue
        found[name] = dist
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    if missing:
        raise SystemExit(f"not installed, though {root} needs them: {', '.join(sorted(missing))}")
    return [found[name] for name in sorted(found)]


def licence_of(dist: metadata.Distribution) -> Licence:
    meta = dist.metadata
    name, version = canonicalize_name(meta["Name"]), meta["Version"]
    expression = (meta.get("License-Expression") or "").strip()
    if expression:
        return Licence(name, version, expression, "License-Expression", category(expression))
    field = (meta.get("License") or "").strip()
    if field and "\n" not in field and category(field) != UNKNOWN:  # already an SPDX expression ("MPL-2.0 AND MIT")
        return Licence(name, version, field, "License", category(field))
    if field and "\n" not in field and len(field) <= 60 and _spdx(field):
        return Licence(name, version, _spdx(field), f"License: {field}", category(_spdx(field)))
    classifiers = [c.split(" :: ")[-1] for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    named = sorted({s for c in classifiers if (s := _spdx(c))})
    if named:
        licence = " OR ".join(named) if len(named) > 1 else named[0]
        return Licence(name, version, licence, "classifier: " + "; ".join(classifiers), category(licence))
    text = field or _licence_file(dist)
    if text and _spdx(text[:400]):
        return Licence(
            name,
            version,
            _spdx(text[:400]),
            "licence file" if not field else "License text",
            category(_spdx(text[:400])),
        )
    if name in REVIEWED:
        licence, where = REVIEWED[name]
        return Licence(name, version, licence, f"reviewed: {where}", category(licence))
    return Licence(name, version, "UNKNOWN", "no licence in the metadata", UNKNOWN)


def _licence_file(dist: metadata.Distribution) -> str:
    for file in dist.files or []:
        if re.search(r"(^|/)(LICEN[CS]E|COPYING)[^/]*$", str(file), re.IGNORECASE) and ".dist-info" in str(file):
            try:
                return Path(str(dist.locate_file(file))).read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
    return ""


def _spdx(text: str) -> str:
    """An SPDX identifier for a licence name, classifier or the start of a licence text ('' if none)."""
    cleaned = text.strip()
    if " " not in cleaned and (
        _PERMISSIVE_IDS.match(cleaned) or _WEAK_IDS.match(cleaned) or _COPYLEFT_IDS.search(cleaned)
    ):
        return cleaned
    for pattern, spdx in _ALIASES:
        if pattern.search(cleaned):
            return spdx
    return ""


def category(expression: str) -> str:
    """The category of an SPDX expression: with OR, the most permissive alternative; with AND (or WITH
    inside one term), the least."""
    order = [PERMISSIVE, WEAK, COPYLEFT, UNKNOWN]
    alternatives = re.split(r"\s+OR\s+", expression.replace("(", " ").replace(")", " ").strip())
    best = UNKNOWN
    for alternative in alternatives:
        terms = [t.strip() for t in re.split(r"\s+AND\s+", alternative) if t.strip()]
        worst = max((_term_category(t) for t in terms), key=order.index, default=UNKNOWN)
        best = min(best, worst, key=order.index)
    return best


def _term_category(term: str) -> str:
    if _COPYLEFT_IDS.search(term):
        return COPYLEFT
    if _WEAK_IDS.match(term):
        return WEAK
    if _PERMISSIVE_IDS.match(term) or _PERMISSIVE_IDS.match(term.split(" WITH ")[0]):
        return PERMISSIVE
    return UNKNOWN


def licences(path: list[str] | None = None) -> list[Licence]:
    """Every runtime dependency of hitl-backend (itself left out) with its licence."""
    return [licence_of(d) for d in runtime_closure(PROJECT, path) if canonicalize_name(d.metadata["Name"]) != PROJECT]


def refused(found: Iterable[Licence]) -> list[Licence]:
    return [lic for lic in found if lic.category not in ALLOWED]


def document(found: list[Licence]) -> str:
    counts = {c: sum(lic.category == c for lic in found) for c in (PERMISSIVE, WEAK, COPYLEFT, UNKNOWN)}
    lines = [
        "# Licences",
        "",
        'hitl-backend is licensed under the Apache License 2.0 (`LICENSE`; `license = "Apache-2.0"` in',
        "pyproject.toml). The test data in `tests/fixtures/data` keeps its datasets' own terms (AG News:",
        "research and non-commercial use; TREC-6: no licence statement, research use; WNUT-17: CC BY 4.0):",
        "see `tests/fixtures/data/README.md`. It is not part of the installed package.",
        "",
        "## Runtime dependencies",
        "",
        f"The {len(found)} distributions that `pip install hitl-backend` installs (the closure of its",
        "Requires-Dist without extras), with the licence their installed metadata states. Generated by",
        "`.venv/bin/python scripts/licences.py --write`; `tests/test_licences.py` fails when this table",
        "differs from the installed metadata. Versions: `requirements/constraints.txt`.",
        "",
        ", ".join(f"{n} {c}" for c, n in counts.items() if n) + ".",
        "",
        "| distribution | licence | category | read from |",
        "|---|---|---|---|",
    ]
    for lic in found:
        source = lic.source.replace("|", "/")
        lines.append(f"| {lic.name} | {lic.licence} | {lic.category} | {source} |")
    lines += ["", "## Policy", "", POLICY, ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite {DOC.relative_to(ROOT)}")
    parser.add_argument("--check", action="store_true", help="exit 1 on a refused licence or a stale document")
    args = parser.parse_args(argv)
    found = licences()
    if args.write:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(document(found), encoding="utf-8")
        print(f"wrote {DOC.relative_to(ROOT)} ({len(found)} distributions)")
    elif not args.check:
        for lic in found:
            print(f"{lic.name:28} {lic.licence:40} {lic.category}")
    status = 0
    for lic in refused(found):
        print(f"refused: {lic.name} {lic.version}: {lic.licence} ({lic.category}; {lic.source})", file=sys.stderr)
        status = 1
    if args.check and (not DOC.exists() or DOC.read_text(encoding="utf-8") != document(found)):
        print(
            f"{DOC.relative_to(ROOT)} differs from the installed metadata: run scripts/licences.py --write",
            file=sys.stderr,
        )
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())

"""Definition files: which variables of a meter are kept, and how (DESIGN section 6).

One line per variable, ``index;label;description;unit;action``, ``#`` comments. Action codes:
0 off, 1 parameter (only in the parameters file), 2 min, max and mean (three columns),
4 instant value, 8 instant value and an alarm on every change. The gateway ships one per family
(built from the label catalogue's default actions) and generates one from the labels seen when the
family is unknown (manual 10.3.1: "un fichier de définition sera généré avec ces variables").
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import catalogue

ACTIONS = (0, 1, 2, 4, 8)


class DefinitionError(ValueError):
    """A definition file that cannot be used; says which line and why."""


@dataclass(frozen=True, slots=True)
class Variable:
    index: int
    label: str
    description: str
    unit: str
    action: int


@dataclass(frozen=True, slots=True)
class Definition:
    name: str                        # the file name, e.g. WEBDYN_TIC_CBEMM-ICC.ini
    variables: tuple[Variable, ...]

    def by_label(self) -> dict[str, Variable]:
        return {v.label: v for v in self.variables}

    def sampled(self) -> tuple[Variable, ...]:
        """Variables written to data files (actions 2, 4, 8), in index order."""
        return tuple(v for v in self.variables if v.action in (2, 4, 8))

    def parameters(self) -> tuple[Variable, ...]:
        return tuple(v for v in self.variables if v.action == 1)

    def columns(self) -> list[str]:
        """Data column names: an action-2 variable gives three (min, max, mean)."""
        out = []
        for v in self.sampled():
            if v.action == 2:
                out += ["%d min" % v.index, "%d max" % v.index, "%d avg" % v.index]
            else:
                out.append(str(v.index))
        return out

    def render(self) -> str:
        lines = ["# ticgw definition file: index;label;description;unit;action",
                 "# action: 0 off, 1 parameter, 2 min/max/mean, 4 instant, 8 instant + alarm"]
        lines += ["%d;%s;%s;%s;%d" % (v.index, v.label, v.description, v.unit, v.action)
                  for v in self.variables]
        return "\n".join(lines) + "\n"


def parse(name: str, text: str) -> Definition:
    """Parse a definition file; DefinitionError names the line and the reason."""
    variables = []
    seen_idx, seen_label = set(), set()
    for no, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(";")
        if len(fields) != 5:
            raise DefinitionError("%s line %d: expected 5 fields index;label;description;unit;"
                                  "action, found %d" % (name, no, len(fields)))
        idx, label, desc, unit, action = (f.strip() for f in fields)
        if not idx.isdigit() or int(idx) < 1:
            raise DefinitionError("%s line %d: index %r is not a positive number" % (name, no, idx))
        if not label or " " in label:
            raise DefinitionError("%s line %d: bad label %r" % (name, no, label))
        if not action.isdigit() or int(action) not in ACTIONS:
            raise DefinitionError("%s line %d: action %r is not one of 0, 1, 2, 4, 8"
                                  % (name, no, action))
        if int(idx) in seen_idx or label in seen_label:
            raise DefinitionError("%s line %d: index or label %s repeated" % (name, no, label))
        seen_idx.add(int(idx))
        seen_label.add(label)
        variables.append(Variable(int(idx), label, desc, unit, int(action)))
    if not variables:
        raise DefinitionError("%s: no variable" % name)
    return Definition(name, tuple(sorted(variables, key=lambda v: v.index)))


def file_name(site: str, family: str, mode: str | None = None, input_no: int | None = None) -> str:
    """`<site>_TIC_<family>.ini`; a historic Linky gets LINKY-HIST, an unknown meter UNKNOWN<n>."""
    if family == "LINKY" and mode == "historic":
        family = "LINKY-HIST"
    if family == "UNKNOWN":
        family = "UNKNOWN%d" % (input_no or 0)
    return "%s_TIC_%s.ini" % (site, family)


def default_for(site: str, family: str, mode: str | None = None) -> Definition:
    """The shipped definition of a known family, from the catalogue's default actions."""
    infos = catalogue.labels(family, mode if family == "LINKY" else None)
    variables = tuple(Variable(i, info.label, info.description, info.unit, info.action)
                      for i, info in enumerate(infos.values(), 1))
    return Definition(file_name(site, family, mode), variables)


def generate(site: str, labels: list[str], input_no: int, family: str = "UNKNOWN") -> Definition:
    """A definition for a meter whose family is unknown: every label seen, instant values."""
    variables = []
    for i, label in enumerate(labels, 1):
        info = catalogue.describe(label)
        variables.append(Variable(i, label, info.description, info.unit, info.action or 4))
    return Definition(file_name(site, family, None, input_no), tuple(variables))


def load(path: Path) -> Definition:
    return parse(path.name, path.read_text(encoding="utf-8", errors="replace"))

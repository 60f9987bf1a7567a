"""What a run reports: the machine it ran on, tables (aligned text for the terminal, Markdown
for benchmarks/results) and its result files (JSON, Markdown, PNG) under one stem."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from support.plots import save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the machine ------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "platform": platform.platform(),
        "git_commit": commit,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def shared_machine_note(info: dict[str, Any]) -> str:
    return (
        f"machine: {info['cores']} cores ({info['cpu_model'] or 'unknown CPU'}), shared by the "
        "server, every client process and anything else running (load average at start "
        f"{info['load_average_at_start']}); figures are noisy and relative to this machine"
    )


def header(benchmark: str) -> dict[str, Any]:
    """The opening of a results dict: the benchmark, the command that ran it, the machine and
    a note saying it is shared (logged as the run starts)."""
    info = machine_info()
    note = shared_machine_note(info)
    log(note)
    script = Path(sys.argv[0]).name
    return {
        "benchmark": benchmark,
        "command": f"python benchmarks/{script} " + " ".join(sys.argv[1:]),
        "note": note,
        "machine": info,
    }


def footer(results: dict[str, Any], code: str = "") -> str:
    """The Markdown's last line: the code (`code` qualifies the commit) and versions measured."""
    machine = results["machine"]
    return (
        f"git {machine['git_commit']}{code}, Python {machine['python']}, "
        f"grpcio {machine['grpcio']}, {machine['date']}."
    )


# --- tables -----------------------------------------------------------------------------------


def markdown_row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1) -> str:
    """The first `left` columns left-aligned, the rest right-aligned."""
    rule = "|" + "|".join("---" if i < left else "---:" for i in range(len(headers))) + "|"
    return "\n".join([markdown_row(headers), rule, *map(markdown_row, rows)])


def text_table(headers: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1) -> str:
    """Fixed-width table: the first `left` columns left-aligned, the rest right-aligned."""
    cells = [list(map(str, headers)), *[[str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def fmt(row: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([fmt(cells[0]), rule, *[fmt(row) for row in cells[1:]]])


def cell(value: float | None, spec: str = ".2f") -> str:
    """A figure formatted for a table; empty when there is none."""
    return "" if value is None else format(value, spec)


def errors_cell(summary: Mapping[str, Any]) -> str:
    """A load summary's failed calls, with their codes."""
    if not summary["errors"]:
        return "0"
    codes = ", ".join(f"{code} {count}" for code, count in summary["errors_by_code"].items())
    return f"{summary['errors']} ({codes})"


# --- result files -----------------------------------------------------------------------------


def write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")


@dataclass(frozen=True)
class ResultFiles:
    """Where a run's files go: `out`/`stem` + part + `tag` + extension. The tag, "-quick" for a
    smoke run, keeps those files out of git (.gitignore) and off the full results."""

    out: Path
    stem: str
    tag: str = ""

    def path(self, extension: str, part: str = "") -> Path:
        return self.out / f"{self.stem}{part}{self.tag}.{extension}"

    def save(
        self,
        results: Any = None,
        *,
        markdown: str | None = None,
        figures: Mapping[str, Figure] | None = None,
        part: str = "",
    ) -> None:
        """The results as JSON (unless None), the Markdown, and each figure as a PNG whose
        name ends with its key; prints what it wrote."""
        self.out.mkdir(parents=True, exist_ok=True)
        written = []
        if results is not None:
            write_json(self.path("json", part), results)
            written.append(self.path("json", part))
        if markdown is not None:
            self.path("md", part).write_text(markdown)
            written.append(self.path("md", part))
        for name, figure in (figures or {}).items():
            save_figure(figure, self.path("png", name))
            written.append(self.path("png", name))
        print("wrote " + ", ".join(map(str, written)))

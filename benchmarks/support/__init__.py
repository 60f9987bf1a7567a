"""What the benchmark scripts share, imported from here: the server under test (`server`),
closed-loop load (`load`), the command line (`cli`), tables and result files (`report`) and
figures (`plots`).

Importing it puts this checkout first on sys.path, so that the server, solver and stubs
measured in-process are the ones next to the script (a baseline commit's worktree, say) and
not the ones the venv was installed from."""

import sys

from support.report import REPO  # first: it imports none of the checkout's code

sys.path[:0] = [str(REPO), str(REPO / "gen")]

from support import plots  # noqa: E402
from support.cli import BenchParser, listed  # noqa: E402
from support.load import (  # noqa: E402
    LoadResult,
    Measured,
    Workload,
    median,
    process_cpu_seconds,
    run_load,
    summarise,
)
from support.report import (  # noqa: E402
    ResultFiles,
    cell,
    errors_cell,
    footer,
    header,
    log,
    machine_info,
    markdown_row,
    markdown_table,
    shared_machine_note,
    text_table,
    write_json,
)
from support.server import (  # noqa: E402
    Server,
    SyncServicer,
    omniroute_server,
    pg_schema,
    stock_network,
    worktree,
)

__all__ = [
    "REPO",
    "BenchParser",
    "LoadResult",
    "Measured",
    "ResultFiles",
    "Server",
    "SyncServicer",
    "Workload",
    "cell",
    "errors_cell",
    "footer",
    "header",
    "listed",
    "log",
    "machine_info",
    "markdown_row",
    "markdown_table",
    "median",
    "omniroute_server",
    "pg_schema",
    "plots",
    "process_cpu_seconds",
    "run_load",
    "shared_machine_note",
    "stock_network",
    "summarise",
    "text_table",
    "worktree",
    "write_json",
]

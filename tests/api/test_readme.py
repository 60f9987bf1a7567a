"""The README's worked example runs as written against a real server, and runs again on the
same data (readers run it more than once)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def worked_example(port: int) -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## A worked example", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    assert "localhost:50051" in code, "the example no longer names the address to replace"
    return code.replace("localhost:50051", f"localhost:{port}")


def test_the_readme_worked_example_runs_twice_against_the_same_server(omniroute, capsys):
    code = compile(worked_example(omniroute.port), str(README), "exec")
    for run in (1, 2):
        exec(code, {"__name__": "readme_example"})
        printed = capsys.readouterr().out
        assert "newark-dc" in printed, f"run {run}"
        assert "us-web jeans on hand 42 ATF 42 ATO 42" in printed, f"run {run}"

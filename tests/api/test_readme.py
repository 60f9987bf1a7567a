"""The README's worked example runs as written against a real server."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def worked_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## A worked example", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_the_readme_worked_example_runs_against_a_real_server(omniroute, capsys):
    code = worked_example().replace("localhost:50051", f"localhost:{omniroute.port}")
    exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
    printed = capsys.readouterr().out
    assert "newark-dc" in printed
    assert "us-web jeans on hand 42 ATF 42 ATO 42" in printed

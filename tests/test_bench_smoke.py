"""Every benchmark at its smallest sizes (bench/run.py --smoke), so a broken benchmark fails
`make test` instead of waiting for the next person who runs `make bench` (issue 20). The figures
are not checked: benchmarks assert nothing; the run must finish and name the machine."""

from __future__ import annotations

import ast
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = sorted(p for p in (ROOT / "bench").glob("*.py") if p.name != "run.py" and not p.name.startswith("_"))
"""What bench/run.py runs: not itself, nor its helpers (bench/_smoke.py)."""


def test_every_benchmark_runs_at_its_smallest_sizes(tools: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    lines = result.stdout.splitlines()
    for field in ("cpu", "cores", "ram", "python", "helm"):
        line = next(line for line in lines if line.strip().startswith(field + " "))
        assert "unknown" not in line and "not found" not in line, line
    scripts = sorted(p.name for p in BENCHMARKS)
    assert scripts, "bench/ has benchmarks"
    for name in scripts:
        assert any(line.startswith(f"== bench/{name}: ok in ") for line in lines), (
            f"{name} did not run:\n{result.stdout}"
        )


def test_the_runner_refuses_a_benchmark_it_does_not_have() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--only", "no_such_bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "no benchmark named ['no_such_bench']" in result.stderr, result.stderr


def _runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_broken_benchmark_or_one_without_smoke_fails_the_run_after_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """What makes the smoke test above fail CI: any benchmark's non-zero exit, including
    argparse's refusal of --smoke by a benchmark that does not take it; the others still run."""
    run = _runner()
    (tmp_path / "a_ok.py").write_text("import sys\nassert sys.argv[1:] == ['--smoke']\nprint('figures')\n")
    (tmp_path / "b_broken.py").write_text("raise FileNotFoundError('helm')\n")
    (tmp_path / "c_no_smoke.py").write_text("import argparse\nargparse.ArgumentParser().parse_args()\n")
    (tmp_path / "d_ok.py").write_text("print('more figures')\n")
    monkeypatch.setattr(run, "BENCH", tmp_path)
    monkeypatch.setattr(sys, "argv", ["run.py", "--smoke"])
    assert run.main() == 1
    out, err = capfd.readouterr()
    assert "== bench/a_ok.py: ok in " in out and "== bench/d_ok.py: ok in " in out
    assert "== bench/b_broken.py: FAILED (exit 1)" in out
    assert "== bench/c_no_smoke.py: FAILED (exit 2)" in out
    assert "failed: b_broken.py, c_no_smoke.py" in err


def test_a_benchmark_that_hangs_is_stopped_named_and_the_others_still_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A hung benchmark (a loopback server that never answers, a helm that waits) would hang
    `make bench` and `make test` with it; it is killed after its limit, with what it started
    (its process group), and named as failed."""
    run = _runner()
    pid_file = tmp_path / "child.pid"
    (tmp_path / "a_hangs.py").write_text(
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(600)\n"
    )
    (tmp_path / "b_ok.py").write_text("print('figures')\n")
    monkeypatch.setattr(run, "BENCH", tmp_path)
    monkeypatch.setattr(run, "SMOKE_LIMIT_S", 3)
    monkeypatch.setattr(sys, "argv", ["run.py", "--smoke"])
    started = time.monotonic()
    assert run.main() == 1
    assert time.monotonic() - started < 30
    out, err = capfd.readouterr()
    assert "== bench/a_hangs.py: FAILED (no result after 3 s, stopped)" in out, out
    assert "== bench/b_ok.py: ok in " in out
    assert "failed: a_hangs.py" in err
    child = int(pid_file.read_text())
    for _ in range(50):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the hung benchmark's own child process was left running")


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_every_benchmark_takes_smoke_through_the_one_helper(path: Path) -> None:
    """--smoke is declared once (bench/_smoke.py), not copied into each benchmark with its own
    `if args.smoke:` block."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    literals = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value == "--smoke"]
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "parse"
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id == "_smoke"
    ]
    assert not literals and len(calls) == 1, (
        f"{path.name}: --smoke declared {len(literals)}x, _smoke.parse {len(calls)}x"
    )


def test_the_helper_gives_the_smoke_sizes_and_refuses_an_option_the_benchmark_lacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import argparse

    sys.path.insert(0, str(ROOT))
    from bench import _smoke

    parser = argparse.ArgumentParser()
    parser.add_argument("--apps", default="1,10,30")
    monkeypatch.setattr(sys, "argv", ["x.py", "--apps", "300", "--smoke"])
    assert _smoke.parse(parser, "1 app", apps="1").apps == "1"
    parser = argparse.ArgumentParser()
    parser.add_argument("--apps", default="1,10,30")
    monkeypatch.setattr(sys, "argv", ["x.py"])
    assert _smoke.parse(parser, "1 app", apps="1").apps == "1,10,30"
    with pytest.raises(ValueError, match=r"does not have: \['files'\]"):
        _smoke.parse(argparse.ArgumentParser(), "x", files="10")

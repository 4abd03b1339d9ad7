"""scripts/bench_scale_all.py with its parts faked (no benchmark runs): the page is written
after every part, a stopped run keeps the parts that finished, and --resume reruns only the
parts that did not finish with the same command."""

from __future__ import annotations

import json
import sys

import pytest

from tests.helpers import load_script


def _script():
    return load_script("bench_scale_all")


def _fake_runs(module, monkeypatch, fail=(), stop_at=None):
    """Replace run_part: each part "measures" one row; ``fail`` parts exit 1; the part
    ``stop_at`` is interrupted (Ctrl-C). Returns the list of parts run."""
    ran = []

    def run_part(part, command, logs):
        if part == stop_at:
            raise KeyboardInterrupt
        ran.append(part)
        record = {"command": command, "rc": 1 if part in fail else 0, "wall_s": 2.0, "done": "-"}
        record |= {"load": [1.0, 1.5], "log": str(logs / f"{part}.log")}
        if part not in fail:
            record |= {"header": f"{part} setup", "rows": [{}], "markdown": f"| {part} |"}
        return record

    monkeypatch.setattr(module, "run_part", run_part)
    return ran


def _main(module, monkeypatch, *argv):
    monkeypatch.setattr(sys, "argv", ["bench_scale_all.py", *argv])
    module.main()


def test_resume_reruns_only_the_failed_part(tmp_path, monkeypatch):
    module = _script()
    out = tmp_path / "run.md"
    parts = ["--parts", "batch", "distributed", "cache-classic", "--quick", "--out", str(out)]
    ran = _fake_runs(module, monkeypatch, fail={"distributed"})
    _main(module, monkeypatch, *parts)
    assert ran == ["batch", "distributed", "cache-classic"]
    page = out.read_text()
    assert "| batch |" in page and "| cache-classic |" in page
    assert "stopped (rc 1" in page and "No table: the script failed" in page
    assert "--quick" in page and "torch" in page
    state = json.loads(out.with_suffix(".json").read_text())
    assert state["parts"]["batch"]["command"][1:] == module.commands(module.parse())["batch"][1:]

    ran = _fake_runs(module, monkeypatch)
    _main(module, monkeypatch, *parts, "--resume")
    assert ran == ["distributed"]  # the others were done with the same command
    page = out.read_text()
    assert "stopped" not in page and page.count("- command: ") == 2  # both invocations

    ran = _fake_runs(module, monkeypatch)
    _main(module, monkeypatch, *parts, "--resume", "--extra", "batch=--n 4")
    assert ran == ["batch"]  # another command: measured again


def test_a_stopped_run_keeps_the_parts_that_finished(tmp_path, monkeypatch):
    module = _script()
    out = tmp_path / "run.md"
    _fake_runs(module, monkeypatch, stop_at="cache-dinov2")
    with pytest.raises(KeyboardInterrupt):
        _main(module, monkeypatch, "--quick", "--out", str(out))
    page = out.read_text()
    finished = ["scale-classic", "scale-dinov2", "big-image", "batch", "distributed"]
    assert all(f"| {part} |" in page for part in finished + ["cache-classic"])
    assert "cache-dinov2" not in page


def test_full_sizes_by_default_and_overrides(monkeypatch):
    module = _script()
    monkeypatch.setattr(sys, "argv", ["bench_scale_all.py"])
    full = module.commands(module.parse())
    argv = ["bench_scale_all.py", "--big-sizes", "2048", "--extra", "cache-dinov2=-x"]
    monkeypatch.setattr(sys, "argv", argv)
    changed = module.commands(module.parse())
    assert full["scale-dinov2"][-5:] == ["30", "300", "2000", "--backend", "dinov2"]
    assert full["big-image"][-4:] == ["1024", "4096", "10000", "20480"]
    assert full["cache-dinov2"][-4:] == ["--n", "2000", "--backends", "dinov2"]
    assert changed["big-image"][-1] == "2048" and changed["cache-dinov2"][-1] == "-x"


def test_a_part_that_fails_keeps_the_rows_it_wrote(tmp_path, monkeypatch):
    """run_part on a real child that writes one row to its --json, then exits 3: the record
    has rc 3 and the row; the page shows it as stopped, with its table."""
    module = _script()
    write = "import json, sys; open(sys.argv[-1], 'w').write(json.dumps(dict(header='h', "
    write += "rows=[1], markdown='| one row |'))); print('ran'); sys.exit(3)"
    record = module.run_part("batch", [sys.executable, "-c", write], tmp_path)
    assert record["rc"] == 3 and record["rows"] == [1]
    assert (tmp_path / "batch.log").read_text().strip() == "ran"
    monkeypatch.setattr(module, "run_part", lambda part, command, logs: record)
    out = tmp_path / "run.md"
    _main(module, monkeypatch, "--quick", "--parts", "batch", "--out", str(out))
    page = out.read_text()
    assert "Stopped (rc 3): the rows that finished." in page and "| one row |" in page

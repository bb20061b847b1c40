"""The Arrow index: records survive the round trip, the table has the right columns."""
import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest

import param_search as ps
from param_search import index_file
from param_search.experiment import Experiment
from param_search.table import frame


def _record(name, params, **fields):
    record = {"job_name": name, "hash": "h" + name, "params": params, "script_hash": "s", "mode": "source",
              "attempt": 0, "restarts": 0, "queue": None, "job_id": None, "batch": None, "owner": None, "state": "NEW",
              "exit_code": None, "signal": None, "submitted": None, "started": None, "ended": None,
              "node": None, "reason": None, "error": None, "stdout": None, "stderr": None,
              "time_limit": None, "mem_limit": None, "excluded": None, "history": None}
    record.update(fields)
    return record


RECORDS = [
    _record("a", {"lr": 0.1, "layers": [64, 64], "opt": "adam", "flag": True, "seed": 1, "mixed": 1},
            attempt=2, queue="slurm", job_id="17_3", state="COMPLETED", exit_code=0,
            submitted=1_700_000_000.25, started=1_700_000_010.5, ended=1_700_000_070.75,
            node="n1", stdout="loss 0.1\n", stderr="", error=""),
    _record("b", {"lr": 1, "layers": [32], "opt": "sgd", "flag": None, "mixed": "x", "extra": None},
            attempt=1, queue="local", state="RUNNING", started=1_700_000_020.0, owner="host:12:34"),
    _record("c", {"lr": np.float64(0.5), "seed": np.int64(3)}),
]


def test_records_survive_the_round_trip(tmp_path):
    path = str(tmp_path / "index.arrow")
    index_file.write(path, index_file.from_records(RECORDS, str(tmp_path)))
    back = index_file.to_records(index_file.read(path))
    assert [r["params"] for r in back] == [
        {"lr": 0.1, "layers": [64, 64], "opt": "adam", "flag": True, "seed": 1, "mixed": 1},
        {"lr": 1, "layers": [32], "opt": "sgd", "flag": None, "mixed": "x", "extra": None},
        {"lr": 0.5, "seed": 3},
    ]
    for before, after in zip(RECORDS, back):
        for key, value in before.items():
            if key in ("submitted", "started", "ended") and value is not None:
                assert after[key] == pytest.approx(value, abs=1e-6)
            elif key != "params":
                assert after[key] == value, key


def test_table_columns_and_types(tmp_path):
    exp = Experiment.create(tmp_path)
    table = frame(exp, index_file.from_records(RECORDS, exp.work_dir))
    assert list(table.columns[:7]) == ["lr", "layers", "opt", "flag", "seed", "mixed", "extra"]
    assert table.lr.dtype == np.float64 and list(table.lr) == [0.1, 1.0, 0.5]
    assert list(table.layers[:2]) == [[64, 64], [32]] and table.layers[2] is None
    assert table.seed.dtype == np.float64 and math.isnan(table.seed[1])   # missing -> NaN, like pandas
    assert list(table.mixed[:2]) == [1, "x"]
    assert table.job_name.dtype == "str" and list(table.job_state) == ["COMPLETED", "RUNNING", "NEW"]
    assert list(table.job_dir) == [f"{exp.work_dir}/{n}" for n in "abc"]
    assert table.exit_code.dtype == "Int64" and table.exit_code[0] == 0 and pd.isna(table.exit_code[1])
    assert table.runtime[0] == pytest.approx(60.25) and math.isnan(table.runtime[1])
    assert table.started[0] == pd.Timestamp(1_700_000_010.5, unit="s") and pd.isna(table.ended[1])
    assert list(table.attempt) == [2, 1, 0] and table.attempt.dtype == np.int64
    assert table.stdout[0] == "loss 0.1\n" and table.stdout[2] == ""


def test_running_jobs_show_their_live_logs(tmp_path):
    exp = Experiment.create(tmp_path)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "job.1.out").write_text("epoch 1\n")
    table = frame(exp, index_file.from_records(RECORDS, exp.work_dir))
    assert table.stdout[1] == "epoch 1\n"


def test_a_moved_experiment_shows_its_new_folders(tmp_path):
    ps.submit("true\n", "job_{i}", ps.ParamSpace(i=range(3)), work_dir=tmp_path / "old")
    shutil.move(tmp_path / "old", tmp_path / "new")
    jobs = ps.load(tmp_path / "new")
    assert list(jobs.job_dir) == [str(tmp_path / "new" / f"job_{i}") for i in range(3)]
    assert set(jobs.job_state) == {"COMPLETED"}


def test_an_empty_experiment_has_an_empty_table(tmp_path):
    exp = Experiment.create(tmp_path)
    exp.save_records({})
    table = ps.load(tmp_path)
    assert len(table) == 0 and "job_state" in table


def test_a_file_of_another_kind_is_unreadable(tmp_path):
    path = tmp_path / "index.arrow"
    path.write_bytes(b"ARROW1\x00\x00garbage")
    with pytest.raises(ValueError, match="not an Arrow file"):
        index_file.read(str(path))


def test_the_table_can_be_edited(tmp_path):
    ps.submit("exit {i}\n", "job_{i}", ps.ParamSpace(i=range(2)), work_dir=tmp_path)
    for jobs in (ps.load(tmp_path), ps.status(tmp_path)):
        jobs.loc[0, "i"] = 10
        jobs.loc[0, "attempt"] = 5
        jobs.loc[1, "exit_code"] = 7
        jobs.loc[0, "started"] = pd.Timestamp("2026-01-01")
        assert (jobs.i[0], jobs.attempt[0], jobs.exit_code[1]) == (10, 5, 7)


def test_a_read_error_is_raised_not_taken_for_a_lost_index(tmp_path, monkeypatch):
    ps.submit("exit {i}\n", "job_{i}", ps.ParamSpace(i=range(2)), work_dir=tmp_path)
    before = (tmp_path / ".param_search" / "index.arrow").read_bytes()

    def stale(path):
        raise OSError(116, "Stale file handle")

    monkeypatch.setattr(index_file, "read", stale)
    with pytest.raises(OSError, match="Stale"):
        ps.load(tmp_path)
    assert (tmp_path / ".param_search" / "index.arrow").read_bytes() == before


def test_an_index_of_version_0_2_is_migrated(tmp_path):
    jobs = ps.submit("exit {i}\n", "job_{i}", ps.ParamSpace(i=range(2)), work_dir=tmp_path)
    state = tmp_path / ".param_search"
    records = index_file.to_records(index_file.read(str(state / "index.arrow")))
    records[0].update(job_id="4242_0", queue="local")
    (state / "index.json").write_text(json.dumps({"version": 1, "jobs": records}))
    (state / "index.arrow").unlink()
    migrated = ps.load(tmp_path)
    assert list(migrated.job_id[:1]) == ["4242_0"] and list(migrated.exit_code) == list(jobs.exit_code)
    assert not (state / "index.json").exists() and (state / "index.json.migrated").exists()
    assert (state / "index.arrow").exists()


def test_a_folder_that_is_no_job_is_left_alone(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "job.sh").write_text("precious\n")
    (data / "input.csv").write_text("1,2\n")
    with pytest.raises(ps.ConflictError, match="is not a job folder"):
        ps.submit("echo {name}\n", "{name}", [{"name": "data"}], work_dir=tmp_path)
    assert (data / "job.sh").read_text() == "precious\n" and not (data / "params.json").exists()


def test_integers_beyond_64_bits_are_kept(tmp_path):
    jobs = ps.submit("echo {x}\n", "job_{i}", ps.ParamSpace(i=[0, 1], x=[2**70]), work_dir=tmp_path)
    assert set(jobs.job_state) == {"COMPLETED"} and list(ps.load(tmp_path).x) == [2**70, 2**70]
    assert (tmp_path / "job_0" / "job.1.out").read_text() == f"{2**70}\n"

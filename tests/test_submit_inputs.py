"""What ps.submit accepts as a space, empty spaces, and parameters with any string name."""
import json
import os

import pandas as pd
import pytest

import param_search as ps
from param_search.identity import params_hash

SCRIPT = "echo {x} > out\n"


def _submit(space, **kwargs):
    return ps.submit(SCRIPT, "job_{x}", space, progress=False, **kwargs)


@pytest.mark.parametrize("space", [
    ps.ParamSpace(x=[1, 2, 3]),
    {"x": [1, 2, 3]},
    {"x": range(1, 4)},
    pd.DataFrame({"x": [1, 2, 3]}),
    [{"x": 1}, {"x": 2}, {"x": 3}],
    ({"x": i} for i in (1, 2, 3)),
    ps.ParamSpace(x=[1, 2, 3]).sample(3, seed=0),
], ids=["space", "dict", "dict-range", "dataframe", "list-of-dicts", "generator", "sample"])
def test_accepted_kinds_of_space(in_tmp, space):
    jobs = _submit(space)
    assert sorted(jobs["x"]) == [1, 2, 3] and set(jobs.job_state) == {"COMPLETED"}
    assert sorted(open(os.path.join(d, "out")).read() for d in jobs.job_dir) == ["1\n", "2\n", "3\n"]


def test_dataframe_rows_keep_their_types(in_tmp):
    frame = pd.DataFrame({"x": [1, 2], "lr": [0.1, 0.01], "act": ["relu", "gelu"], "on": [True, False]})
    jobs = ps.submit("echo {x} {lr} {act} {on}\n", "job_{x}", frame, progress=False)
    params = json.load(open(os.path.join(jobs.job_dir[0], "params.json")))["params"]
    assert params == {"x": 1, "lr": 0.1, "act": "relu", "on": True}
    assert type(params["x"]) is int and type(params["on"]) is bool


@pytest.mark.parametrize("space, fragment", [
    ([1, 2, 3], "point 0 of the parameter space is a int"),
    ("x", "not str"),
    (42, "not int"),
    (None, "not NoneType"),
    ([{"x": 1}, (2,)], "point 1 of the parameter space is a tuple"),
    ([{1: 2}], "name 1 that is not a string"),
    (pd.DataFrame([[1, 2]]), "column 0 is not a string"),
])
def test_other_kinds_are_a_clear_error_before_anything_is_written(in_tmp, space, fragment):
    with pytest.raises(ps.ParamSearchError, match="ParamSpace, a dict|not a string") as info:
        _submit(space, work_dir="sweep")
    assert fragment in str(info.value)
    assert not os.path.exists(in_tmp / "sweep")


def test_empty_space_writes_nothing_and_returns_an_empty_table(in_tmp, capfd):
    jobs = _submit(ps.ParamSpace(x=[]), work_dir="sweep")
    assert "param_search: 0 new" in capfd.readouterr().err
    assert len(jobs) == 0 and list(jobs.columns[:3]) == ["x", "job_name", "job_dir"]
    assert {"job_state", "exit_code", "error", "hash"} <= set(jobs.columns)
    assert not os.path.exists(in_tmp / "sweep")
    assert len(_submit([], work_dir="sweep")) == 0 and not os.path.exists(in_tmp / "sweep")


def test_any_string_names_a_parameter_up_to_the_template(in_tmp):
    space = ps.ParamSpace(**{"0": range(2), "lr-rate": [0.5], "x": 1})
    jobs = ps.submit("echo {lr-rate} {x}\n", "job_{x}_{hash}", space, progress=False)
    assert list(jobs["0"]) == [0, 1] and list(jobs["lr-rate"]) == [0.5, 0.5]
    for _, row in jobs.iterrows():
        meta = json.load(open(os.path.join(row.job_dir, "params.json")))
        assert meta["params"] == {"0": row["0"], "lr-rate": 0.5, "x": 1}
        assert meta["hash"] == row.hash == params_hash(meta["params"])
    assert ps.load(".")["0"].tolist() == [0, 1]
    with pytest.raises(ps.TemplateError, match="cannot use parameter '0'.*rename it"):
        ps.submit("echo {0}\n", "job_{x}_{hash}", space, work_dir="other")
    assert not os.path.exists(in_tmp / "other")

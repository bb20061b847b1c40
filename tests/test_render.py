"""Job identity, names, templates and the checks made before anything is written."""
import json
import os
import re
import subprocess
import sys

import pytest

import param_search as ps
from hypothesis import given
from hypothesis import strategies as st

from param_search.identity import canonical_json, params_hash
from param_search.render import render_jobs

SCRIPT = "echo {a} {b}\n"


def test_hash_is_stable_across_processes_and_hash_seeds():
    code = "from param_search.identity import params_hash; print(params_hash({'b': 1.5, 'a': 'x'}))"
    digests = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
        for seed in ("0", "1", "12345")
    }
    assert digests == {params_hash({"a": "x", "b": 1.5})}
    assert len(digests.pop()) == 12


def test_hash_depends_on_values_not_key_order():
    assert params_hash({"a": 1, "b": 2}) == params_hash({"b": 2, "a": 1})
    assert params_hash({"a": 1}) != params_hash({"a": 2})
    assert params_hash({"a": 1}) != params_hash({"a": "1"})


def test_known_hashes_do_not_change_between_versions():
    # a changed hash would make every existing experiment look like a new sweep
    assert params_hash({"a": "x", "b": 1.5}) == "099f4bcf556f"
    assert params_hash({"lr": 1e-16, "name": "caf\u00e9", "on": True, "n": None, "k": 10**30}) == "54872ade1b15"


flat_values = st.one_of(st.text(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                        st.booleans(), st.none())


@given(st.dictionaries(st.text(), flat_values, max_size=6))
def test_fast_canonical_json_is_json_dumps_byte_for_byte(params):
    expected = json.dumps(params, sort_keys=True, separators=(",", ":"))
    assert canonical_json(params) == expected


def test_name_and_template_get_params_and_reserved_keys(tmp_path):
    jobs = render_jobs("{job_name} {hash} {job_dir} {work_dir} {a}", "run_{a}_{hash}",
                       ps.ParamSpace(a=[1]), tmp_path)
    job = jobs[0]
    assert job.job_name == f"run_1_{job.hash}"
    assert job.script == f"{job.job_name} {job.hash} {tmp_path / job.job_name} {tmp_path} 1"


def test_missing_placeholder_names_key_and_lists_available(in_tmp):
    with pytest.raises(ps.TemplateError) as err:
        ps.submit("echo {lr} {batch}", "job_{lr}", ps.ParamSpace(lr=[0.1]), use="local")
    message = str(err.value)
    assert "{batch}" in message and "lr" in message and "job_name" in message
    assert not os.listdir(in_tmp)  # nothing written


def test_missing_placeholder_in_name(in_tmp):
    with pytest.raises(ps.TemplateError, match=r"job name uses \{seed\}"):
        ps.submit("echo", "job_{seed}", ps.ParamSpace(lr=[0.1]))
    assert not os.listdir(in_tmp)


def test_reserved_parameter_name_is_an_error(in_tmp):
    with pytest.raises(ps.TemplateError, match="'job_name' has the name of a reserved key"):
        ps.submit("echo", "j_{hash}", [{"job_name": "x"}])
    assert not os.listdir(in_tmp)


def test_colliding_names_show_both_settings(in_tmp):
    with pytest.raises(ps.TemplateError) as err:
        ps.submit(SCRIPT, "job_{a}", ps.ParamSpace(a=[1, 2], b=[3, 4]))
    message = str(err.value)
    assert "'job_1'" in message and "{'a': 1, 'b': 3}" in message and "{'a': 1, 'b': 4}" in message
    assert "{hash}" in message
    assert not os.listdir(in_tmp)


@pytest.mark.parametrize("value,problem", [("a/b", "'/'"), ("", "empty"), ("..", "special"),
                                           ("x\ny", "newline"), (".param_search", "reserved")])
def test_unsafe_names_are_errors(in_tmp, value, problem):
    with pytest.raises(ps.TemplateError, match=problem) as err:
        ps.submit("echo", "{p}", ps.ParamSpace(p=[value]))
    assert repr(value) in str(err.value)
    assert not os.listdir(in_tmp)


def test_bad_format_strings():
    with pytest.raises(ps.TemplateError, match="positional"):
        render_jobs("echo {}", "j_{a}", ps.ParamSpace(a=[1]), ".")
    with pytest.raises(ps.TemplateError, match="literal braces"):
        render_jobs("awk '{print $1}' {a", "j_{a}", ps.ParamSpace(a=[1]), ".")
    with pytest.raises(ps.TemplateError, match="must be a str"):
        render_jobs(None, "j_{a}", ps.ParamSpace(a=[1]), ".")


def test_shell_quoting_keeps_values_inert(in_tmp):
    space = ps.ParamSpace(msg=["x; touch pwned", "$(touch pwned2)", "it's"])
    jobs = ps.submit("echo {msg!q} > said.txt\n", "job_{hash}", space, progress=False)
    assert set(jobs.job_state) == {"COMPLETED"}
    said = [open(os.path.join(d, "said.txt")).read().strip() for d in jobs.job_dir]
    assert said == ["x; touch pwned", "$(touch pwned2)", "it's"]
    assert not any(p.name.startswith("pwned") for p in in_tmp.rglob("pwned*"))


def test_without_quoting_the_same_value_is_code(in_tmp):
    jobs = ps.submit("echo {msg}\n", "job_{hash}", ps.ParamSpace(msg=["x; touch pwned"]), progress=False)
    assert os.path.exists(os.path.join(jobs.job_dir[0], "pwned"))


def test_job_folder_is_self_describing(in_tmp):
    jobs = ps.submit("echo {a} > out.txt\n", "job_{a}", ps.ParamSpace(a=[1, 2]), progress=False)
    job_dir = in_tmp / "job_2"
    meta = json.loads((job_dir / "params.json").read_text())
    assert meta == {"job_name": "job_2", "hash": params_hash({"a": 2}), "params": {"a": 2}}
    assert (job_dir / "job.sh").read_text() == "echo 2 > out.txt\n"
    assert (job_dir / "out.txt").read_text() == "2\n"   # ran in its own folder
    assert (job_dir / "job.1.status").read_text().split("\n")[1].split()[:2] == ["exit", "0"]
    assert list(jobs.job_dir) == [str(in_tmp / "job_1"), str(job_dir)]


def test_repeated_points_are_one_job(in_tmp):
    with pytest.warns(UserWarning, match="repeats 2 points"):
        jobs = ps.submit("true", "job_{a}", 3 * ps.ParamSpace(a=[1]), progress=False)
    assert len(jobs) == 1


def test_numpy_values_are_stored_as_json(in_tmp):
    import numpy as np

    jobs = ps.submit("echo {x}", "job_{x}", ps.ParamSpace(x=np.array([0.5, 1.5])), progress=False)
    assert list(jobs.x) == [0.5, 1.5]
    assert json.loads((in_tmp / "job_0.5" / "params.json").read_text())["params"] == {"x": 0.5}


def test_unserializable_param_is_an_error(in_tmp):
    with pytest.raises(ps.TemplateError, match="cannot be stored as JSON"):
        ps.submit("echo", "job_{hash}", [{"f": object()}])
    assert not os.listdir(in_tmp)


def test_placeholders_for_parameters_a_format_string_cannot_name(tmp_path):
    space = ps.ParamSpace(**{"0": [1], "a.b": [2], "x[1]": [3], "a": [4], "lr-rate": [5]})
    job, = render_jobs("{a} {lr-rate}", "j_{hash}", space, str(tmp_path))
    assert job.script == "4 5" and job.params == {"0": 1, "a.b": 2, "x[1]": 3, "a": 4, "lr-rate": 5}
    for template, name in (("{0}", "'0'"), ("{a.b}", "'a.b'"), ("{x[1]}", "'x[1]'")):
        with pytest.raises(ps.TemplateError, match=f"cannot use parameter {re.escape(name)}.*rename it"):
            render_jobs(template, "j_{hash}", space, str(tmp_path))
    with pytest.raises(ps.TemplateError, match="job name cannot use parameter '0'"):
        render_jobs("x", "j_{0}", space, str(tmp_path))

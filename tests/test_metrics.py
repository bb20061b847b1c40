"""Reading metrics files: many rows per job, csv, patterns, and jobs whose files are bad."""
import math

import pytest

import param_search as ps


def _jobs(script, space=None, **kw):
    space = space or ps.ParamSpace(a=[1, 2, 3])
    return ps.submit(script, "job_{a}", space, progress=False, **kw)


def test_many_rows_per_job_joined_with_params(in_tmp):
    jobs = _jobs("printf 'epoch loss\\n0 {a}.5\\n1 {a}.25\\n' > {job_name}.metrics")
    m = ps.metrics(jobs)
    assert list(m.columns) == ["a", "job_name", "epoch", "loss"]
    assert len(m) == 6
    assert list(m.loc[m.a == 2, "loss"]) == [2.5, 2.25]
    assert m["epoch"].dtype.kind in "if"


def test_csv_and_pattern(in_tmp):
    jobs = _jobs("mkdir -p out; printf 'step,acc,model\\n1,0.{a},cnn\\n' > out/log.csv")
    m = ps.metrics(jobs, pattern="out/*.csv")
    assert list(m.acc) == [0.1, 0.2, 0.3]
    assert list(m.model) == ["cnn"] * 3   # text stays text
    m2 = ps.metrics(jobs, pattern="out/log.csv")
    assert m2.equals(m)


def test_missing_empty_and_bad_files_warn_and_the_rest_load(in_tmp):
    script = ("if [ {a} = 1 ]; then printf 'x y\\n1 oops\\n2 3.5\\n' > {job_name}.metrics; fi\n"
              "if [ {a} = 2 ]; then : > {job_name}.metrics; fi\n")
    jobs = _jobs(script, ps.ParamSpace(a=[1, 2, 3, 4]))
    with pytest.warns(UserWarning) as record:
        m = ps.metrics(jobs)
    message = str(record[0].message)
    assert "3 of 4 jobs" in message
    assert "job_2 (job_2.metrics is empty" in message and "job_3 (no file job_3.metrics)" in message
    assert list(m.x) == [1, 2] and math.isnan(m.y[0]) and m.y[1] == 3.5


def test_no_metrics_at_all_is_an_error(in_tmp):
    jobs = _jobs("true")
    with pytest.warns(UserWarning), pytest.raises(ps.MetricsError, match="no metrics could be read"):
        ps.metrics(jobs)


def test_metrics_of_a_loaded_experiment(in_tmp):
    _jobs("printf 'v\\n{a}\\n' > {job_name}.metrics")
    m = ps.metrics(ps.load("."))
    assert sorted(m.v) == [1, 2, 3]


def test_odd_metrics_files_are_named_with_the_fix(in_tmp):
    script = ("case {i} in 0) printf 'loss acc\\n0.5 0.9\\n' ;; 1) printf '1 2\\n3 4\\n' ;; "
              "2) printf 'lo\\x01ss acc\\n1 2\\n' ;; 3) printf 'loss loss\\n1 2\\n' ;; esac > job_{i}.metrics\n")
    jobs = ps.submit(script, "job_{i}", ps.ParamSpace(i=range(4)), progress=False)
    with pytest.warns(UserWarning) as caught:
        table = ps.metrics(jobs)
    message = str(caught[0].message)
    assert "3 of 4 jobs" in message and "holds numbers, not column names" in message
    assert "unprintable" in message and "'loss' appears twice" in message
    assert list(table.job_name) == ["job_0"] and list(table.columns[-2:]) == ["loss", "acc"]


def test_metrics_patterns_with_hash_brackets_and_unknown_fields(in_tmp):
    jobs = ps.submit("echo 'loss' > out_{hash}.txt; echo {i} >> out_{hash}.txt\n", "job[{i}]",
                     ps.ParamSpace(i=range(2)), progress=False)
    assert list(ps.metrics(jobs, pattern="out_{hash}.txt").loss) == [0, 1]
    assert list(ps.metrics(jobs, pattern="out_*.txt").loss) == [0, 1]      # a glob under job[0]/
    with pytest.raises(ps.MetricsError, match=r"cannot be filled.*\{job_name\}, \{hash\} and the params: i"):
        ps.metrics(jobs, pattern="{nope}.txt")

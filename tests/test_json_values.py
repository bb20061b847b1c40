"""Every JSON-able parameter value comes back exactly, in every table: NaN and ±inf, ints
beyond 64 bits, and 1, 1.0 and True as three points; files hold strict JSON."""
import json
import math

import matplotlib
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

import param_search as ps
from param_search import index_file
from param_search.experiment import Experiment
from param_search.identity import identity_of, params_hash, stored_json, untag_nonfinite
from param_search.table import frame

matplotlib.use("Agg")

NAN, INF = math.nan, math.inf
METRICS = "printf 'loss\\n{s}\\n' > {job_name}.metrics\n"


def _strict(text):
    """``json.loads`` that refuses NaN, Infinity and -Infinity, as strict JSON parsers do."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def _same(a, b, ordered=True):
    """Equal as JSON values are: NaN is NaN, 1, 1.0 and True differ, dict key order counts
    when ``ordered``."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y, ordered) for x, y in zip(a, b))
    if isinstance(a, dict):
        keys_agree = list(a) == list(b) if ordered else set(a) == set(b)
        return keys_agree and all(_same(a[k], b[k], ordered) for k in a)
    return a == b


def _tables(jobs):
    return {"submit": jobs, "load": ps.load("."), "status": ps.status("."), "metrics": ps.metrics(jobs)}


def test_nan_and_infinities_come_back_in_every_table_and_plot(in_tmp):
    space = ps.ParamSpace(x=[NAN, INF, -INF, 0.5], s=[1, 2])
    jobs = ps.submit(METRICS + "echo {x} > x.txt\n", "job_{x}_{s}", space, progress=False)
    for name, table in _tables(jobs).items():
        assert table.x.dtype == np.float64, name
        x = table.x.tolist()
        assert math.isnan(x[0]) and math.isnan(x[1]) and x[2:] == [INF, INF, -INF, -INF, 0.5, 0.5], name
    said = [open(f"{d}/x.txt").read().strip() for d in jobs.job_dir[::2]]
    assert said == ["nan", "inf", "-inf", "0.5"]   # templates see the floats, as Python prints them
    fig = ps.plot(ps.metrics(jobs), x="s", y="loss", hue="x")
    labels = [text.get_text() for text in fig.get_axes()[0].get_legend().get_texts()]
    assert sorted(labels) == sorted(["x=nan", "x=inf", "x=-inf", "x=0.5"])


POINTS = [{"x": NAN}, {"x": INF}, {"x": -INF}, {"x": "Infinity"}, {"x": "NaN"}, {"x": [1.5, -INF, None]},
          {"x": {"$numberDouble": "NaN"}}, {"x": {"$dict": {"$numberDouble": "Infinity"}}}, {"x": 2**70}]


def test_params_json_is_strict_json_that_reads_back_as_the_same_point(in_tmp):
    jobs = ps.submit("true\n", "job_{hash}", POINTS, progress=False)
    exp = Experiment.open(".")
    for point, job_name, digest in zip(POINTS, jobs.job_name, jobs.hash):
        meta = _strict(open(f"{job_name}/params.json").read())
        assert meta["hash"] == digest == params_hash(point)
        assert _same(untag_nonfinite(meta["params"]), point)   # a string "Infinity" stays a string
        assert _same(exp.record_from_dir(job_name)["params"], point)
    for table in (jobs, ps.load(".")):
        assert table.x.dtype == object and _same(table.x.tolist(), [p["x"] for p in POINTS])


def test_the_index_holds_strict_json_and_gives_every_value_back(tmp_path):
    params = {"x": NAN, "y": [INF, 2**70, -(2**64)], "s": "-Infinity", "d": {"$numberDouble": "NaN"},
              "b": True, "f": 1.0, "i": 1, "n": None}
    records = [{**_record("a"), "params": params}, {**_record("b"), "params": {"x": 0.5, "s": "Infinity"}}]
    path = str(tmp_path / "index.arrow")
    index_file.write(path, index_file.from_records(records, str(tmp_path)))
    table = index_file.read(path)
    back = index_file.to_records(table)
    assert _same(back[0]["params"], params) and _same(back[1]["params"], records[1]["params"])
    for field in table.schema:
        if field.name == "params" or (field.metadata or {}).get(b"json") == b"1":
            for text in table.column(field.name).to_pylist():
                if text is not None:
                    _strict(text)


def test_index_texts_of_earlier_versions_still_read():
    # json.dumps wrote these when orjson refused a value (an int beyond 64 bits)
    texts = ['{"x":NaN,"k":1180591620717411303424}', None, '{"x":-Infinity}', '{"x":1.5}']
    column = pa.chunked_array([pa.array(texts, type=pa.large_string())])
    expected = [{"x": NAN, "k": 2**70}, None, {"x": -INF}, {"x": 1.5}]
    assert _same(index_file.loads_column(column), expected)
    assert _same(index_file.loads_column(column[2:]), expected[2:])   # without the long int


def test_hashes_of_non_finite_floats_and_tag_like_dicts_do_not_change():
    # the digests earlier versions gave these points: their experiments stay recognised
    assert params_hash({"x": NAN, "y": INF, "z": -INF}) == "f0674081a521"
    assert params_hash({"k": 2**70, "l": [1, NAN]}) == "07b55925a01e"
    assert params_hash({"d": {"$numberDouble": "NaN"}}) == "57d0d6875bcf"


leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=4),
                   st.sampled_from(["NaN", "Infinity", "-Infinity", "$numberDouble", "$dict"]))
values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from(["$numberDouble", "$dict", "a"]) | st.text(max_size=3), inner, max_size=2), max_leaves=8)


@given(st.dictionaries(st.text(max_size=4), values, max_size=4))
def test_every_json_value_round_trips_through_strict_json(params):
    canonical, stored = identity_of(params)
    assert canonical == json.dumps(params, sort_keys=True, separators=(",", ":"))   # what the hash digests
    assert stored == stored_json(params)
    if '"$' not in canonical and not any(c in canonical for c in ("NaN", "Infinity")):
        assert stored == canonical   # an ordinary point's params.json is what it always was
    assert _same(untag_nonfinite(_strict(stored)), params, ordered=False)
    text = index_file.dumps(params)
    _strict(text)
    assert _same(index_file.loads(text), params)


def test_ints_beyond_64_bits_stay_exact(in_tmp):
    big = [2**64, -(2**63) - 1, 10**30, 2**70 + 1]
    jobs = ps.submit(METRICS, "job_{s}", [{"s": i, "n": n} for i, n in enumerate(big)], progress=False)
    for name, table in _tables(jobs).items():
        assert table.n.tolist() == big and all(type(v) is int for v in table.n), name


def test_one_one_point_oh_and_true_are_three_points_in_tables_and_plots(in_tmp):
    points = [{"m": 1, "s": 1}, {"m": 1.0, "s": 1}, {"m": True, "s": 1}]
    jobs = ps.submit(METRICS, "job_{hash}", points, progress=False)
    assert len(set(jobs.hash)) == 3
    for name, table in _tables(jobs).items():
        assert [type(v) for v in table.m] == [int, float, bool], name
    fig = ps.plot(ps.metrics(jobs), x="s", y="loss", hue="m")
    labels = [text.get_text() for text in fig.get_axes()[0].get_legend().get_texts()]
    assert sorted(labels) == ["m=1", "m=1.0", "m=True"]


def test_metrics_rows_keep_each_param_as_the_jobs_table_has_it(in_tmp):
    points = [{"v": NAN, "w": "a", "s": 1}, {"v": None, "w": "b", "s": 2}, {"v": 0.5, "w": "c", "s": 3}]
    jobs = ps.submit("printf 'loss\\n1\\n2\\n' > {job_name}.metrics\n", "job_{s}", points, progress=False)
    m = ps.metrics(jobs)
    assert len(m) == 6 and list(m.dtypes[["v", "w", "s"]]) == list(jobs.dtypes[["v", "w", "s"]])
    assert _same(m.v.tolist(), [NAN, NAN, None, None, 0.5, 0.5])   # NaN is a value, None its absence


def test_table_columns_are_typed_only_where_that_keeps_values_apart(tmp_path):
    columns = {
        "mixed": [1, 1.0, True], "nan_or_none": [NAN, None, 1.0], "big_gap": [2**53 + 1, None, 1],
        "big_float": [2**53 + 1, 0.5, 1], "int_is_float": [1, 1.0, 2.5],
        "floats": [0.5, INF, -INF], "ints": [1, 2, 3], "ints_floats": [1, 0.5, 2], "int_gap": [1, None, 3],
        "float_gap": [0.5, None, INF], "strings": ["a", "Infinity", None], "flags": [True, False, True],
    }
    records = [{**_record(str(i)), "params": {k: v[i] for k, v in columns.items()}} for i in range(3)]
    exp = Experiment.create(tmp_path)
    table = frame(exp, index_file.from_records(records, exp.work_dir))
    for name in ("mixed", "nan_or_none", "big_gap", "big_float", "int_is_float"):
        assert table[name].dtype == object, name
        assert _same(table[name].tolist(), columns[name]), name
    # plain numbers keep their fast numpy dtypes (a gap is NaN, as pandas has it)
    assert table.floats.dtype == np.float64 and table.floats.tolist() == [0.5, INF, -INF]
    assert table.ints.dtype == np.int64 and table.ints.tolist() == [1, 2, 3]
    assert table.ints_floats.dtype == np.float64 and table.ints_floats.tolist() == [1.0, 0.5, 2.0]
    assert table.int_gap.dtype == np.float64 and math.isnan(table.int_gap[1])
    assert table.float_gap.dtype == np.float64 and table.float_gap[2] == INF
    assert table.strings.dtype == "str" and table.strings[1] == "Infinity"
    assert table["flags"].dtype == bool


def test_an_experiment_of_an_earlier_version_with_bare_nan_still_loads(in_tmp, capsys):
    space = ps.ParamSpace(x=[NAN, INF, 0.5])
    jobs = ps.submit("true\n", "job_{hash}", space, progress=False)
    # as earlier versions left it: bare NaN / Infinity in params.json, null in the index
    for job_name in jobs.job_name:
        path = in_tmp / job_name / "params.json"
        path.write_text(path.read_text().replace('{"$numberDouble":"NaN"}', "NaN")
                        .replace('{"$numberDouble":"Infinity"}', "Infinity"))
    exp = Experiment.open(".")
    records = exp.load_records()
    for record in records.values():
        record["params"] = {"x": None if not math.isfinite(record["params"]["x"]) else record["params"]["x"]}
    exp.save_records(records)
    assert len(ps.load(".")) == 3
    capsys.readouterr()
    again = ps.submit("true\n", "job_{hash}", space, progress=False)
    assert "0 new" in capsys.readouterr().err and list(again.hash) == list(jobs.hash)   # recognised
    exact = dict(zip(jobs.job_name, [NAN, INF, 0.5]))
    assert _same(_x_by_name(again), exact, ordered=False)   # and the index mended
    assert _same(_x_by_name(ps.load(".")), exact, ordered=False)
    (in_tmp / ".param_search" / "index.arrow").unlink()
    with pytest.warns(UserWarning, match="rebuilt it from 3 job folders"):
        assert _same(_x_by_name(ps.load(".")), exact, ordered=False)


def test_a_tag_like_dict_written_by_an_earlier_version_stays_a_dict(in_tmp):
    point = {"d": {"$numberDouble": "NaN"}}
    jobs = ps.submit("true\n", "job_{hash}", [point], progress=False)
    path = in_tmp / jobs.job_name[0] / "params.json"
    path.write_text(path.read_text().replace('{"$dict":{"$numberDouble":"NaN"}}', '{"$numberDouble":"NaN"}'))
    assert Experiment.open(".").record_from_dir(jobs.job_name[0])["params"] == point


def _x_by_name(table):
    return dict(zip(table.job_name, table.x.tolist()))


def _record(name):
    return {"job_name": name, "hash": "h" + name, "params": {}, "script_hash": "s", "mode": "source",
            "attempt": 0, "queue": None, "job_id": None, "batch": None, "owner": None, "state": "NEW",
            "exit_code": None, "signal": None, "submitted": None, "started": None, "ended": None,
            "node": None, "reason": None, "error": None, "stdout": None, "stderr": None, "restarts": 0,
            "time_limit": None, "mem_limit": None, "excluded": None, "history": None}

"""The index as a mapping that reads rows when touched: whatever is read, changed or added,
the table it saves is the one a full rewrite of every record would save."""
import math
import os
import random

import pyarrow as pa
import pytest

from param_search import index_file
from param_search.dispatch import in_queue
from param_search.identity import params_hash
from param_search.lifecycle import HELD, in_a_queue
from param_search.record_map import SINGLE_READS, RecordMap
from param_search.states import COMPLETED, FAILED, NEW, PENDING, RUNNING

WORK_DIR = "/tmp/ps-record-map"
VALUES = [0, 1, 2, 1.0, 2.5, -0.5, float("nan"), float("inf"), True, False, "a", "b", None, [1, 2],
          {"k": 1}, 2 ** 70, 2 ** 53 + 1, 3]
STATES = [NEW, PENDING, RUNNING, COMPLETED, FAILED]


def make(i: int, params: dict, rng: random.Random) -> dict:
    out = dict.fromkeys(index_file.FIELDS)
    out.update(job_name=f"job_{i}", hash=params_hash(params), params=params, script_hash="x", mode="source",
               attempt=rng.randint(0, 3), restarts=0, state=rng.choice(STATES),
               submitted=rng.choice([None, 1700000000.123456]), reason=rng.choice([None, HELD + "max_queued=2",
                                                                                   "Priority"]))
    return out


def space(rng: random.Random) -> list[str]:
    return rng.sample(["x", "y", "z"], rng.randint(1, 3))


def point(rng: random.Random, names: list[str], pool: list) -> dict:
    return {n: rng.choice(pool) for n in names if rng.random() > 0.05}


def same(a: pa.Table, b: pa.Table) -> bool:
    """Equal tables, NaN equal to NaN (the params JSON text says the rest)."""
    if a.schema != b.schema or a.schema.metadata != b.schema.metadata:
        return False
    for name in a.column_names:
        left, right = a.column(name).to_pylist(), b.column(name).to_pylist()
        if any(not (x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)))
               for x, y in zip(left, right)) or len(left) != len(right):
            return False
    return True


@pytest.mark.parametrize("seed", range(300))
def test_the_saved_table_is_a_full_rewrite_of_the_records(seed):
    rng = random.Random(seed)
    names = space(rng)
    pool = rng.sample(VALUES, rng.randint(1, 6))
    n = rng.randint(1, 40)
    records = [make(i, point(rng, names, pool), rng) for i in range(n)]
    index = index_file.from_records(records, WORK_DIR)
    mapping = RecordMap(index, WORK_DIR)
    expected = {r["job_name"]: dict(r) for r in index_file.to_records(index)}
    for _ in range(rng.randint(0, 10)):   # read and change some rows
        name = f"job_{rng.randrange(n)}"
        mapping[name]["state"] = expected[name]["state"] = rng.choice(STATES)
        mapping[name]["ended"] = expected[name]["ended"] = rng.choice([None, 1700000001.5])
    for _ in range(rng.randint(0, 3)):   # records put in place of rows (read or not)
        name = f"job_{rng.randrange(n)}"
        assert mapping.stored(name, "state") == expected[name]["state"]
        assert mapping.stored(name, "submitted") == expected[name]["submitted"]
        expected[name] = dict(expected[name], state=rng.choice(STATES), attempt=expected[name]["attempt"] + 1)
        mapping[name] = dict(expected[name])
    if rng.random() < 0.1:   # a job replaced by one with other params
        name = f"job_{rng.randrange(n)}"
        params = point(rng, names, pool)
        mapping[name] = dict(expected[name], params=params, hash=params_hash(params))
        expected[name] = dict(mapping[name])
    extra_pool = pool if rng.random() < 0.7 else rng.sample(VALUES, 3)
    extra_names = names if rng.random() < 0.8 else space(rng)
    for i in range(n, n + rng.randint(0, 5)):   # new jobs
        mapping[f"job_{i}"] = make(i, point(rng, extra_names, extra_pool), rng)
        expected[f"job_{i}"] = dict(mapping[f"job_{i}"])
    check(mapping, expected)
    mapping.saved(mapping.table())   # a second round of changes on the saved table
    assert mapping.table() is mapping.index
    for _ in range(rng.randint(0, 4)):
        name = rng.choice(list(expected))
        mapping[name]["reason"] = expected[name]["reason"] = rng.choice([None, HELD + "x", "Resources"])
    for i in range(len(expected), len(expected) + rng.randint(0, 2)):
        mapping[f"job_{i}"] = make(i, point(rng, names, pool), rng)
        expected[f"job_{i}"] = dict(mapping[f"job_{i}"])
    check(mapping, expected)


def check(mapping: RecordMap, expected: dict) -> None:
    assert list(mapping) == list(expected)
    assert in_queue(mapping) == sum(map(in_a_queue, expected.values()))
    table = mapping.table()
    assert same(table, index_file.from_records(list(expected.values()), WORK_DIR))
    assert [index_file.dumps(sorted(r.items())) for r in index_file.to_records(table)] == \
           [index_file.dumps(sorted(r.items())) for r in expected.values()]


def test_a_row_read_alone_is_the_row_read_with_the_others():
    rng = random.Random(1)
    records = [make(i, point(rng, ["x", "y"], VALUES), rng) for i in range(20)]
    index = index_file.from_records(records, WORK_DIR)
    everything = index_file.to_records(index)
    for i in range(20):
        assert index_file.dumps(index_file.record_at(index, i)) == index_file.dumps(everything[i])


def test_reads_stay_rows_until_many_then_it_reads_all(monkeypatch):
    rng = random.Random(2)
    n = 3 * SINGLE_READS
    index = index_file.from_records([make(i, {"x": i}, rng) for i in range(n)], WORK_DIR)
    whole = []
    monkeypatch.setattr(index_file, "to_records", lambda t, f=index_file.to_records: whole.append(t.num_rows) or f(t))
    mapping = RecordMap(index, WORK_DIR)
    first = mapping["job_0"]
    assert mapping["job_0"] is first and whole == []
    for i in range(SINGLE_READS + 1):
        mapping[f"job_{i}"]
    assert whole == [n]
    assert mapping["job_0"] is first   # a row read before keeps its dict (callers changed it)
    assert "job_0" in mapping and "job_x" not in mapping
    with pytest.raises(KeyError):
        mapping["job_x"]
    with pytest.raises(TypeError):
        del mapping["job_0"]


def test_a_map_read_but_not_changed_saves_the_index_it_read():
    index = index_file.from_records([make(i, {"x": i}, random.Random(0)) for i in range(3)], WORK_DIR)
    mapping = RecordMap(index, WORK_DIR)
    assert mapping.table() is index
    mapping["job_1"]
    mapping.prefetch(["job_0", "job_2"])
    list(mapping.values())
    assert mapping.table() is index
    mapping["job_1"]["state"] = FAILED
    assert mapping.table() is not index


def test_a_transaction_that_changes_nothing_writes_nothing(tmp_path):
    from param_search.experiment import Experiment

    exp = Experiment.create(str(tmp_path))
    rng = random.Random(0)
    exp.save_records({f"job_{i}": make(i, {"x": i}, rng) for i in range(3)})
    before = os.stat(exp.index_path).st_mtime_ns, os.stat(exp.index_path).st_ino
    with exp.transaction() as records:
        records["job_1"]["state"] = records["job_1"]["state"]
    assert (os.stat(exp.index_path).st_mtime_ns, os.stat(exp.index_path).st_ino) == before
    with exp.transaction() as records:
        records["job_1"]["state"] = "FAILED" if records["job_1"]["state"] != "FAILED" else "COMPLETED"
        wanted = dict(records["job_1"])
    assert exp.load_records()["job_1"] == wanted


@pytest.mark.parametrize("seed", range(100))
def test_a_map_carried_over_from_the_last_save_writes_what_a_full_rewrite_writes(seed):
    """The next round's map starts from what the map that saved the index knew of it
    (rows by name, copies of the records it wrote): records put in place of rows it never
    read, as a loop merges its runner's news, give the table a full rewrite gives."""
    rng = random.Random(seed)
    names, pool = space(rng), rng.sample(VALUES, rng.randint(1, 6))
    n = rng.randint(1, 30)
    first = RecordMap(index_file.from_records([make(i, point(rng, names, pool), rng) for i in range(n)],
                                              WORK_DIR), WORK_DIR)
    expected = {r["job_name"]: dict(r) for r in index_file.to_records(first.index)}
    for name in rng.sample(sorted(expected), rng.randint(0, n)):   # rows this round wrote
        first[name]["state"] = expected[name]["state"] = rng.choice(STATES)
    for i in range(n, n + rng.randint(0, 3)):
        first[f"job_{i}"] = make(i, point(rng, names, pool), rng)
        expected[f"job_{i}"] = dict(first[f"job_{i}"])
    table = first.table()
    first.saved(table)
    mapping = RecordMap(table, WORK_DIR, first.carried())
    for _ in range(rng.randint(0, 6)):   # news put in place of rows not read by this map
        name = rng.choice(sorted(expected))
        assert mapping.stored(name, "state") == expected[name]["state"]
        expected[name] = dict(expected[name], state=rng.choice(STATES), ended=rng.choice([None, 1700000002.25]),
                              error=rng.choice([None, "boom"]))
        mapping[name] = dict(expected[name])
    for i in range(len(expected), len(expected) + rng.randint(0, 3)):
        mapping[f"job_{i}"] = make(i, point(rng, names, pool), rng)
        expected[f"job_{i}"] = dict(mapping[f"job_{i}"])
    check(mapping, expected)


def test_a_carried_map_splices_only_the_fields_that_changed(monkeypatch):
    rng = random.Random(3)
    first = RecordMap(index_file.from_records([make(i, {"x": i}, rng) for i in range(10)], WORK_DIR), WORK_DIR)
    first["job_2"]["state"] = RUNNING
    first.saved(first.table())
    news = dict(first["job_2"], state=COMPLETED, ended=1700000003.0)
    spliced = []
    real = index_file.replace_rows
    monkeypatch.setattr(index_file, "replace_rows", lambda *a: spliced.append(a[3]) or real(*a))
    for carried in (first.carried(), None):
        mapping = RecordMap(first.index, WORK_DIR, carried)
        mapping["job_2"] = dict(news)
        assert index_file.to_records(mapping.table())[2] == news
    assert spliced[0] == {"state", "ended"}   # (a map that knows nothing of the row: every field)
    assert spliced[1] == set(index_file.FIELDS)


def test_a_transaction_after_another_process_wrote_reads_its_index(tmp_path):
    """What a save carries over is of the index it wrote: once another process writes the
    file, the next transaction reads that one (and its records)."""
    from param_search.experiment import Experiment

    rng = random.Random(0)
    ours = Experiment.create(str(tmp_path))
    ours.save_records({f"job_{i}": make(i, {"x": i}, rng) for i in range(4)})
    with ours.transaction() as records:
        records["job_1"]["state"] = RUNNING
    with Experiment.open(str(tmp_path)).transaction() as theirs:   # another process, meanwhile
        theirs["job_1"]["state"] = FAILED
        theirs["job_9"] = make(9, {"x": 9}, rng)
    with ours.transaction() as records:
        assert records.stored("job_1", "state") == FAILED and "job_9" in records
        records["job_2"] = dict(records["job_2"], state=COMPLETED)
    reread = Experiment.open(str(tmp_path)).load_records()
    assert (reread["job_1"]["state"], reread["job_2"]["state"], len(reread)) == (FAILED, COMPLETED, 5)

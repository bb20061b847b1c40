"""The search controller's book of its round columns against the table read back from the
index it mirrors (what a round read before the book)."""
import random

import numpy as np
import pytest

from param_search import index_file
from param_search.experiment import Experiment, merge
from param_search.identity import params_hash
from param_search.lifecycle import HELD
from param_search.record_map import RecordMap
from param_search.states import CANCELLED, COMPLETED, FAILED, NEW, PENDING, PRUNED, RUNNING
from param_search.table import frame, record_fields
from param_search.trial_book import ROUND_COLUMNS, Looked, TrialBook
from param_search.trials import trial_rows

STATES = [NEW, PENDING, RUNNING, COMPLETED, FAILED, PRUNED]


def trial(i: int, rng: random.Random) -> dict:
    params = {"trial": i, "x": rng.random()}
    record = dict.fromkeys(index_file.FIELDS)
    record.update(job_name=f"trial_{i}", hash=params_hash(params), params=params, script_hash="s", mode="source",
                  attempt=1, restarts=0, state=rng.choice(STATES), error=rng.choice([None, "boom"]),
                  reason=rng.choice([None, HELD + "max_queued=4", "waiting for a free worker"]))
    return record


def read_back(exp: Experiment, index, news: list) -> Looked:
    """The round's table as a round read it from the index (the slow path)."""
    view = exp.merged_index(news, index, record_fields(ROUND_COLUMNS)) if news else index
    return Looked.of(trial_rows(frame(exp, view, live_logs=False, only=ROUND_COLUMNS)))


def assert_same(book: Looked, read: Looked) -> None:
    assert sorted(book.table.columns) == sorted(read.table.columns) == sorted(ROUND_COLUMNS)
    assert book.table["trial"].tolist() == read.table["trial"].tolist()
    for column in ("names", "states", "final", "errors"):
        assert getattr(book, column).tolist() == getattr(read, column).tolist(), column
    assert book.table["reason"].fillna("").tolist() == read.table["reason"].fillna("").tolist()


@pytest.mark.parametrize("seed", range(40))
def test_rounds_from_the_book_are_the_tables_read_back_from_the_index(tmp_path, seed):
    rng = random.Random(seed)
    exp = Experiment.create(str(tmp_path))
    exp.save_index(index_file.from_records([trial(i, rng) for i in range(rng.randint(0, 12))], exp.work_dir))
    book = TrialBook.of(exp.unchanged_index())
    for _ in range(6):   # rounds: news merged in a view, then written with new trials
        index = exp.unchanged_index()
        assert book.index is index
        saved = index_file.to_records(index)
        news = [dict(r, state=rng.choice([RUNNING, COMPLETED, FAILED, CANCELLED]), error=rng.choice([None, "x"]),
                     reason=None, attempt=r["attempt"] + rng.choice([0, 0, 1])) for r in rng.sample(saved, min(len(saved), rng.randint(0, 4)))]
        started = [dict(trial(i, rng), state=rng.choice([PENDING, RUNNING, COMPLETED]))   # (hand-offs: news
                   for i in range(len(saved), len(saved) + rng.randint(0, 3))]             # the index lacks)
        low = 0
        for record in started:   # among the others, in trial order (as they were handed out)
            low = rng.randint(low, len(news))
            news.insert(low, record)
            low += 1
        news += started[:1] + rng.sample(news, min(len(news), 1))   # (a record may come twice)
        looked = book.round(news, exp.work_dir)
        assert_same(looked, read_back(exp, index, news))
        assert looked.held.tolist() == [r["state"] == PENDING and (r["reason"] or "").startswith(HELD)
                                        for r in index_file.to_records(exp.merged_index(news, index))]
        with exp.transaction() as records:
            base = records.index
            merge(records, news)
            top = len(records)
            for i in range(top, top + rng.randint(0, 4)):
                records[f"trial_{i}"] = trial(i, rng)
        assert base is index
        book = book.update(exp.unchanged_index(), records.touched(), records.positions())
        assert_same(book.round([], exp.work_dir), read_back(exp, exp.unchanged_index(), []))


def test_an_index_with_other_rows_or_out_of_order_has_no_book(tmp_path):
    rng = random.Random(0)
    trials = [trial(i, rng) for i in range(3)]
    other = dict(trial(9, rng), job_name="sweep_job", params={"x": 1.0}, hash=params_hash({"x": 1.0}))
    assert TrialBook.of(index_file.from_records(trials, "/w")) is not None
    assert TrialBook.of(index_file.from_records([*trials, other], "/w")) is None
    assert TrialBook.of(index_file.from_records(trials[::-1], "/w")) is None
    book = TrialBook.of(index_file.from_records(trials[1:], "/w"))
    assert book.update(None, {"trial_0": trials[0]}, {"trial_0": 2}) is None   # a trial appended out of order
    mapping = RecordMap(index_file.from_records(trials[:2], "/w"), "/w")
    assert TrialBook.of(mapping.index).round([dict(other)], "/w") is None   # news of a job that is no trial
    assert TrialBook.of(mapping.index).round([dict(trials[1], job_name="trial_1b")], "/w") is None   # not after the last
    assert TrialBook.of(mapping.index).round([trials[2]], "/w").names.tolist() == ["trial_0", "trial_1", "trial_2"]


def test_a_trial_pruned_in_the_index_stays_pruned_whatever_the_runner_saw(tmp_path):
    rng = random.Random(1)
    records = [dict(trial(i, rng), state=s) for i, s in enumerate([PRUNED, RUNNING, PRUNED])]
    exp = Experiment.create(str(tmp_path))
    exp.save_index(index_file.from_records(records, exp.work_dir))
    index = exp.unchanged_index()
    news = [dict(r, state=CANCELLED) for r in records[:2]] + [dict(records[2], state=RUNNING, attempt=2)]
    looked = TrialBook.of(index).round(news, exp.work_dir)
    assert looked.states.tolist() == [PRUNED, CANCELLED, RUNNING]   # (sent again: news of its new attempt)
    assert np.array_equal(looked.final, [True, True, False])
    assert_same(looked, read_back(exp, index, news))

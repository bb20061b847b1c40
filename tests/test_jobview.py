"""ps.show: the jobs table for Jupyter, and the progress bars' plain-text form for notebooks."""
import io

import pandas as pd

import param_search as ps
from param_search.progress import TextBar, bar, in_notebook


def jobs_table():
    return pd.DataFrame({"lr": [0.1, 0.01, 0.001], "job_name": ["a", "b", "c"],
                         "job_state": ["COMPLETED", "FAILED", "RUNNING"],
                         "stdout": ["x" * 500 + "the end", None, "<b>not bold</b>"], "error": [None, "boom", None]})


def test_show_colours_states_and_cuts_outputs_in_the_view_only():
    jobs = jobs_table()
    html = ps.show(jobs, width=40).to_html()
    assert "color: #cf222e" in html and "color: #1a7f37" in html   # FAILED red, COMPLETED green
    assert "…" in html and "the end" in html and "x" * 100 not in html
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html                    # outputs are text, not markup
    assert jobs.stdout[0].endswith("x" * 400 + "the end")             # the data stays whole


def test_show_caps_the_rows_and_says_so():
    jobs = pd.concat([jobs_table()] * 100, ignore_index=True)
    html = ps.show(jobs, max_rows=10).to_html()
    assert "the first 10 of 300 jobs" in html and html.count("<tr>") <= 12


def test_text_bar_prints_whole_lines_without_escape_codes():
    out = io.StringIO()
    progress = TextBar(4, "jobs", "job", every=0.0, file=out)
    progress.update(2)
    progress.set_postfix({"completed": 2})
    progress.update(2)
    progress.close()
    progress.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "4/4" in lines[-1] and "completed=2" in lines[-1]
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_outside_a_notebook_the_bar_is_the_terminal_one():
    from tqdm.std import tqdm

    assert not in_notebook()
    made = bar(3, "jobs", "job", enabled=False)
    assert type(made) is tqdm and made.disable

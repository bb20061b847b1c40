"""The param-search command."""
import subprocess
import sys

import param_search as ps
from param_search.cli import main


def test_status_wait_resubmit_cancel(in_tmp, capsys):
    ps.submit("exit {code}", "job_{code}", ps.ParamSpace(code=[0, 2]), progress=False)
    assert main(["status", "."]) == 0
    out = capsys.readouterr().out
    assert "2 jobs: 1 COMPLETED, 1 FAILED" in out and "job_2" in out and "job_0" not in out
    assert main(["resubmit", ".", "--states", "failed"]) == 0
    assert main(["wait", "."]) == 3   # not every job completed
    assert list(ps.load(".").attempt) == [1, 2]
    assert main(["cancel", "."]) == 0


def test_errors_print_a_message_and_a_traceback_only_with_debug(tmp_path):
    run = [sys.executable, "-m", "param_search.cli", "status", str(tmp_path)]
    plain = subprocess.run(run, capture_output=True, text=True)
    assert plain.returncode == 1
    assert plain.stderr.startswith("param-search: error:") and "not a param_search experiment" in plain.stderr
    assert "Traceback" not in plain.stderr
    debug = subprocess.run(run + ["--debug"], capture_output=True, text=True)
    assert "Traceback" in debug.stderr


def test_an_os_error_is_one_line_and_a_bare_bug_is_not_hidden(in_tmp, capsys, monkeypatch):
    ps.submit("exit 0", "job_{i}", ps.ParamSpace(i=[1]), progress=False)
    import param_search.api as api

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(api, "status", disk_full)
    assert main(["status", "."]) == 1
    assert capsys.readouterr().err.endswith("param-search: error: [Errno 28] No space left on device\n")

    def bug(*args, **kwargs):
        raise KeyError("params")

    monkeypatch.setattr(api, "status", bug)
    try:
        main(["status", "."])
    except KeyError:
        pass   # a bug is a traceback, not a tidy one-line message that hides it
    else:
        raise AssertionError("a KeyError from a bug was swallowed")


SWEEP = """if [ {b} = 0 ]; then echo 'ZeroDivisionError: division by zero' >&2; exit 1; fi
printf 'x y\\n{a} {b}\\n' > {job_name}.metrics
"""


def _sweep(work_dir="sw"):
    return ps.submit(SWEEP, "job_{a}_{b}", ps.ParamSpace(a=range(3), b=range(2)), work_dir=work_dir,
                     progress=False)


def test_status_is_an_aligned_table_with_failures_grouped_by_error(in_tmp, capsys):
    _sweep()
    assert main(["status", "sw"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "6 jobs: 3 FAILED, 3 COMPLETED"
    header = lines[1]
    assert header.split() == ["NAME", "STATE", "EXIT", "ATT", "RESTARTS", "JOBID", "NODE", "TIME",
                             "REASON/ERROR"]
    rows = lines[2:5]
    assert all(r.index("FAILED") == header.index("STATE") for r in rows)   # aligned under its header
    assert all(r.endswith("ZeroDivisionError: division by zero") for r in rows)
    assert "\x1b[" not in out   # not a terminal: no colours
    groups = out.split("failures by error line:\n")[1]
    assert groups.splitlines()[:2] == ["3 x ZeroDivisionError: division by zero  [FAILED]", "    all with b=0"]


def test_status_for_scripts_in_csv_and_json(in_tmp, capsys):
    import io
    import json

    import pandas as pd

    _sweep()
    assert main(["status", "sw", "--format", "csv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert len(table) == 6 and set(table.job_state) == {"FAILED", "COMPLETED"} and "history" in table
    assert main(["status", "sw", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 6 and rows[0]["job_name"] == "job_0_0" and rows[0]["exit_code"] == 1


def test_state_colours_on_a_terminal():
    import pandas as pd

    from param_search import textview

    table = pd.DataFrame({"job_name": ["a", "b"], "job_state": ["COMPLETED", "TIMEOUT"], "exit_code": [0, None],
                          "attempt": [1, 1], "restarts": [0, 0], "job_id": ["1", "2"], "node": ["n", "n"], "runtime": [1.0, 2.0],
                          "error": ["", "time limit reached (TIMEOUT)"], "reason": [None, None]})
    text = textview.jobs_text(table, colour=True, width=200)
    assert "\x1b[32mCOMPLETED\x1b[0m" in text and "\x1b[31mTIMEOUT  \x1b[0m" in text


def test_metrics_and_plot_commands_save_files(in_tmp, capsys):
    import pandas as pd

    _sweep()
    assert main(["metrics", "sw", "-o", "m.csv"]) == 0
    saved = pd.read_csv("m.csv")
    assert saved[["a", "b", "x", "y"]].values.tolist() == [[0, 1, 0, 1], [1, 1, 1, 1], [2, 1, 2, 1]]
    assert main(["metrics", "sw"]) == 0
    assert "job_2_1" in capsys.readouterr().out
    assert main(["plot", "sw", "-x", "a", "-y", "y", "-y", "x", "-o", "fig.png"]) == 0
    assert (in_tmp / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["metrics", "sw", "-o", "m.xlsx"]) == 1
    assert "name a .csv or .json file" in capsys.readouterr().err


def test_ls_lists_the_experiments_under_a_folder(in_tmp, capsys):
    _sweep("runs/first")
    ps.submit("true\n", "j{i}", ps.ParamSpace(i=range(2)), work_dir="runs/deeper/second", progress=False)
    (in_tmp / "runs" / "not_an_experiment").mkdir()
    assert main(["ls", "runs"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "runs/deeper/second: 2 jobs: 2 COMPLETED", "runs/first: 6 jobs: 3 FAILED, 3 COMPLETED"]
    assert main(["ls", "runs/not_an_experiment"]) == 0
    assert "no experiments" in capsys.readouterr().out


def test_help_shows_examples_without_markup():
    done = subprocess.run([sys.executable, "-m", "param_search.cli", "--help"], capture_output=True, text=True)
    assert "examples:" in done.stdout and "param-search plot sweep -x lr -y loss -o loss.png" in done.stdout
    assert "``" not in done.stdout and ":func:" not in done.stdout


def test_a_broken_pipe_is_quiet(in_tmp):
    _sweep()
    done = subprocess.run(f"{sys.executable} -m param_search.cli status sw --format csv | head -1",
                          shell=True, capture_output=True, text=True)
    assert done.stdout.startswith("a,b,job_name") and "Traceback" not in done.stderr and "Error" not in done.stderr

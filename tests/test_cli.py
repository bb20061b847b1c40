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

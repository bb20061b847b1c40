"""Grid Engine's text, captured from a real Son of Grid Engine 8.1.9 (tests/data/sge/README.md), parsed."""
import pathlib
import re
import time

import pytest

from param_search.errors import OptionError, QueueError
from param_search.queues import sge_text as sge

DATA = pathlib.Path(__file__).parent / "data" / "sge"


def read(name):
    return (DATA / name).read_text()


def runs(name):
    """The blocks of a run-style capture: [(argv, stdout, stderr, exit code)]."""
    out = []
    for block in re.split(r"^(?=\$ )", read(name), flags=re.M):
        match = re.match(r"\$ (.*)\n--- stdout\n(.*?)--- stderr\n(.*?)--- exit code: (\d+)", block, re.S)
        if match:
            argv, stdout, stderr, code = match.groups()
            out.append((argv, stdout, stderr, int(code)))
    return out


def local(*fields):
    return time.mktime((*fields, 0, 0, -1))


# -- ids and argv pieces -------------------------------------------------------------------
def test_task_ids_are_sge_task_numbers_from_one():
    assert sge.task_id("10", 0) == "10.1" and sge.task_id("10", 4) == "10.5"
    assert sge.task_id("10.3", 0) == "10.1"
    assert sge.job_number("10.3") == "10" and sge.job_number("9") == "9"


def test_array_spec_and_resource_options():
    assert sge.array_spec(5, None) == ["-t", "1-5"]
    assert sge.array_spec(5, 2) == ["-t", "1-5", "-tc", "2"]
    assert sge.resource_options() == []
    assert sge.resource_options(queue="all.q", pe="smp", slots=4, h_rt="1:00:00", h_vmem="2G", project="p") == [
        "-q", "all.q", "-pe", "smp", "4", "-l", "h_rt=1:00:00", "-l", "h_vmem=2G", "-P", "p"]
    assert sge.resource_options(pe="smp") == ["-pe", "smp", "1"]
    with pytest.raises(OptionError, match="pe="):
        sge.resource_options(slots=2)


def test_own_options_are_dropped_with_their_values():
    directives = ["-N", "x", "-cwd", "-o", "a.out", "-e", "a.err", "-j", "y", "-l", "h_rt=60", "-terse",
                  "-t", "1-3", "-tc", "2", "-wd", "/w", "-S", "/bin/sh", "-b", "y", "-pe", "smp", "2", "-V"]
    assert sge.drop_own_options(directives) == ["-l", "h_rt=60", "-pe", "smp", "2", "-V"]


def test_qsub_argv_merges_hard_resources_later_values_win():
    options = ["-l", "h_rt=60,h_vmem=1G", "-q", "all.q", "-l", "h_rt=120", "-soft", "-l", "arch=x", "-hard"]
    argv = sge.qsub_argv("ps-ab.a0", "/e/b.a0.log", "/e", options, ["-t", "1-3"], "/e/run.sh", ["@/e/b.map"])
    assert argv == ["qsub", "-terse", "-N", "ps-ab.a0", "-o", "/e/b.a0.log", "-j", "y", "-wd", "/e",
                    "-S", "/bin/bash", "-b", "n", "-t", "1-3", "-l", "h_vmem=1G,h_rt=120", "-q", "all.q",
                    "-soft", "-l", "arch=x", "-hard", "/e/run.sh", "@/e/b.map"]
    assert sge.qsub_argv("n", "l", "w", [], [], "s", []).count("-l") == 0
    assert sge.split_resources(["-l", "gpu", "-l", "h_rt=5"]) == ([], {"gpu": None, "h_rt": "5"})


# -- submission and configuration ----------------------------------------------------------
def test_parse_qsub_of_every_accepted_submission():
    numbers = [sge.parse_qsub(stdout) for _argv, stdout, _err, _code in runs("qsub_submit.txt")]
    assert numbers == ["9", "10", "11", "12", "13", "14", "15", "16"]   # -terse and plain forms
    assert sge.parse_qsub("12.2-10:4\n") == "12"


def test_parse_qsub_without_a_job_id_names_the_text():
    for _argv, stdout, stderr, code in runs("qsub_errors.txt"):
        if code:
            with pytest.raises(QueueError, match="no job id"):
                sge.parse_qsub(stdout + stderr)
    with pytest.raises(QueueError, match="Unable to run job"):
        sge.parse_qsub("Unable to run job: error: no suitable queues\nExiting.\n")


def test_max_aj_tasks():
    assert sge.parse_max_aj_tasks(read("qconf_sconf.txt")) == 75000
    limits = runs("qsub_max_aj_tasks.txt")[0][1]
    assert sge.parse_max_aj_tasks(limits) == 10
    assert sge.parse_max_aj_tasks("max_aj_instances 2000\n") == 75000


# -- qstat ---------------------------------------------------------------------------------
@pytest.mark.parametrize("code, expected", [
    ("qw", ("PENDING", None)), ("hqw", ("PENDING", "held")), ("hRwq", ("PENDING", "held")),
    ("r", ("RUNNING", None)), ("t", ("RUNNING", None)), ("Rr", ("RUNNING", None)), ("Rt", ("RUNNING", None)),
    ("hr", ("RUNNING", None)), ("s", ("PENDING", "suspended")), ("S", ("PENDING", "suspended")),
    ("ts", ("PENDING", "suspended")), ("T", ("PENDING", "suspended")), ("dr", ("CANCELLED", None)),
    ("dt", ("CANCELLED", None)), ("Eqw", ("FAILED", "error state Eqw")), ("Ehqw", ("FAILED", "error state Ehqw")),
    ("z", ("UNKNOWN", None)), ("", ("UNKNOWN", None)), ("x", ("UNKNOWN", None)),
])
def test_native_state(code, expected):
    assert sge.native_state(code) == expected


def test_qstat_xml_running_suspended_pending_and_held():
    info = sge.parse_qstat_xml(read("qstat_xml_states.txt"))
    assert sorted(info) == ["2.1", "2.2", "2.3", "2.4", "2.5", "3", "4", "5.1", "5.2", "5.3", "6", "7", "8"]
    assert info["2.1"] == {"state": "RUNNING", "native": "r", "reason": None, "node": "vm", "submit": None,
                           "start": local(2026, 11, 30, 8, 2, 59), "name": "ps_arr"}
    assert info["2.4"] == {"state": "PENDING", "native": "qw", "reason": None, "node": None,
                           "submit": local(2026, 11, 30, 8, 2, 58), "start": None, "name": "ps_arr"}
    assert info["3"]["state"] == "PENDING" and info["3"]["reason"] == "suspended" and info["3"]["node"] == "vm"
    assert info["5.3"]["reason"] == info["6"]["reason"] == "held"
    assert info["7"]["state"] == "PENDING" and info["7"]["reason"] is None


def test_qstat_g_d_xml_lists_each_pending_task_alike():
    grouped = sge.parse_qstat_xml(read("qstat_xml_states.txt"))
    assert sge.parse_qstat_xml(read("qstat_g_d_xml_states.txt")) == grouped


def test_qstat_xml_deleted_error_and_held_array():
    assert sge.parse_qstat_xml(read("qstat_xml_deleted_running.txt"))["4"]["state"] == "CANCELLED"
    eqw = sge.parse_qstat_xml(read("qstat_xml_eqw.txt"))["7"]
    assert (eqw["state"], eqw["native"], eqw["reason"]) == ("FAILED", "Eqw", "error state Eqw")
    held = sge.parse_qstat_xml(read("qstat_xml_qhold_array.txt"))
    assert held["2.1"]["state"] == "RUNNING" and held["2.1"]["native"] == "hr"
    assert [held[f"2.{t}"]["reason"] for t in (3, 4, 5)] == ["held"] * 3


def test_qstat_xml_empty_and_zombies():
    assert sge.parse_qstat_xml(read("qstat_xml_empty.txt")) == {}
    assert sge.parse_qstat_xml("") == {} and sge.parse_qstat_xml("<job_info/>") == {}
    zombies = sge.parse_qstat_xml(read("qstat_s_z_xml.txt"))
    assert sorted(zombies) == ["44", "45", "46.1", "46.2", "47"]
    assert zombies["46.2"]["state"] == "UNKNOWN"   # finished: qacct knows how
    with pytest.raises(QueueError, match="no valid XML"):
        sge.parse_qstat_xml("error: commlib error: got select error (Connection refused)\n")


def test_task_lists_ranges_and_steps_expand():
    assert sge.expand_tasks("3-5:1") == [3, 4, 5]
    assert sge.expand_tasks("2-10:4") == [2, 6, 10]
    assert sge.expand_tasks("1,2") == [1, 2] and sge.expand_tasks("7") == [7]
    assert sge.expand_tasks("1,4-6:2") == [1, 4, 6]


def test_qstat_j_xml_error_reason():
    reasons = sge.parse_qstat_j_xml_reasons(read("qstat_j_xml_eqw.txt"))
    assert reasons == {"7": 'can\'t open output file "/nonexistent/dir/out.txt": No such file or directory'}
    unknown = [stdout for argv, stdout, _err, _code in runs("qstat_j_unknown.txt") if "-xml" in argv]
    assert len(unknown) == 2 and all(sge.parse_qstat_j_xml_reasons(text) == {} for text in unknown)


# -- qacct: one test per capture -----------------------------------------------------------
def test_qacct_exit0():
    info = sge.parse_qacct(read("qacct_exit0.txt"))["30"]
    assert info == {"state": "COMPLETED", "native": "failed=0 exit_status=0", "exit_code": 0, "signal": None,
                    "node": "vm", "submit": local(2026, 11, 30, 8, 4, 23), "start": local(2026, 11, 30, 8, 4, 28),
                    "end": local(2026, 11, 30, 8, 4, 28), "maxvmem": 0.0, "reason": None, "name": "ps_ok"}


def test_qacct_exit3():
    info = sge.parse_qacct(read("qacct_exit3.txt"))["39"]
    assert (info["state"], info["exit_code"], info["signal"], info["reason"]) == ("FAILED", 3, None, None)


def test_qacct_kill9_self():
    info = sge.parse_qacct(read("qacct_kill9_self.txt"))["32"]
    assert (info["state"], info["exit_code"], info["signal"]) == ("FAILED", None, "KILL")
    assert info["native"] == "failed=100 exit_status=137" and info["reason"] == "assumedly after job"


def test_qacct_kill9_external():
    info = sge.parse_qacct(read("qacct_kill9_external.txt"))["33"]
    assert (info["state"], info["exit_code"], info["signal"]) == ("FAILED", None, "KILL")
    assert info["end"] - info["start"] == 8


def test_qacct_qdel_running_looks_like_a_kill():
    info = sge.parse_qacct(read("qacct_qdel_running.txt"))["37"]
    assert (info["state"], info["exit_code"], info["signal"]) == ("FAILED", None, "KILL")
    assert info["maxvmem"] == pytest.approx(3.285 * 2**20)


def test_qacct_h_rt():
    info = sge.parse_qacct(read("qacct_h_rt.txt"))["34"]
    assert (info["state"], info["exit_code"], info["signal"]) == ("TIMEOUT", None, "KILL")
    assert info["reason"] == "qmaster enforced h_rt, h_cpu, or h_vmem limit"


def test_qacct_h_vmem_killed():
    info = sge.parse_qacct(read("qacct_h_vmem_killed.txt"))["36"]
    assert (info["state"], info["exit_code"], info["signal"]) == ("OUT_OF_MEMORY", None, "KILL")
    assert info["maxvmem"] == pytest.approx(273.734 * 2**20)


def test_qacct_h_vmem_memoryerror_is_the_scripts_own_failure():
    info = sge.parse_qacct(read("qacct_h_vmem_memoryerror.txt"))["35"]
    assert (info["state"], info["exit_code"], info["signal"], info["reason"]) == ("FAILED", 1, None, None)


def test_qacct_eqw_deleted_never_started():
    info = sge.parse_qacct(read("qacct_eqw_deleted.txt"))["7"]
    assert (info["state"], info["exit_code"], info["signal"]) == ("FAILED", None, None)
    assert info["reason"] == "opening input/output file" and info["native"] == "failed=26 exit_status=0"
    assert info["start"] is None and info["end"] is None and info["submit"] is not None


def test_qacct_array_one_record_per_task():
    info = sge.parse_qacct(read("qacct_array.txt"))
    assert sorted(info) == ["38.1", "38.2", "38.3"]
    assert [info[f"38.{t}"]["state"] for t in (1, 2, 3)] == ["COMPLETED", "FAILED", "COMPLETED"]
    assert info["38.2"]["exit_code"] == 3 and info["38.1"]["maxvmem"] == pytest.approx(3.387 * 2**20)


@pytest.mark.parametrize("category, wallclock, state", [
    ("-l h_rt=5", "6s", "TIMEOUT"), ("-l s_rt=5", "6s", "TIMEOUT"), ("-l h_vmem=150M", "1s", "OUT_OF_MEMORY"),
    ("-l h_rt=60,h_vmem=200M", "61s", "TIMEOUT"), ("-l h_rt=60,h_vmem=200M", "60s", "TIMEOUT"),
    ("-l h_rt=60,h_vmem=200M", "12s", "OUT_OF_MEMORY"), ("-q all.q -l h_rt=0:1:0,s_vmem=1G", "75s", "TIMEOUT"),
    ("-l h_cpu=5", "9s", "TIMEOUT"), ("NONE", "9s", "FAILED"),
])
def test_limit_kills_are_told_apart_by_the_request(category, wallclock, state):
    assert sge.qacct_state(37, 137, category, wallclock) == (state, None, "KILL")


def test_qacct_other_exits_and_fields():
    assert sge.qacct_state(0, 137, "NONE", "1s") == ("FAILED", 137, "KILL")   # its shell was killed
    assert sge.qacct_state(0, 130, "NONE", "1s") == ("FAILED", 130, "INT")
    assert sge.qacct_state(100, 1, "NONE", "1s") == ("FAILED", None, None)
    assert sge.qacct_state(27, 0, "NONE", "0s") == ("FAILED", None, None)
    block = read("qacct_exit0.txt").replace("0.000B", "1.2G")
    block = block.replace("failed       0    ", "failed       28  : changing into working directory")
    info = sge.parse_qacct(block)["30"]
    assert info["maxvmem"] == pytest.approx(1.2 * 2**30) and info["reason"] == "changing into working directory"
    assert sge.parse_qacct("") == {} and sge.parse_qacct("no jobs running since startup\n") == {}


def test_qacct_last_record_of_a_reused_job_number_wins():
    old = read("qacct_exit3.txt")
    new = read("qacct_exit0.txt").replace("jobnumber    30", "jobnumber    39")
    assert sge.parse_qacct(old + new)["39"]["state"] == "COMPLETED"


def test_one_qacct_call_by_name_pattern_covers_many_jobs_and_tasks():
    answers = {argv: (sge.parse_qacct(out), code) for argv, out, _err, code in runs("qacct_name_pattern.txt")}
    every, code = answers["qacct -j 'ps-abc*'"]
    assert sorted(every) == ["13", "6.1", "6.2", "7"] and code == 0
    assert every["6.1"]["name"] == "ps-abc123-0000000001.a0" and every["6.2"]["exit_code"] == 3
    assert every["13"]["state"] == "FAILED" and every["13"]["start"] is None
    assert sorted(answers["qacct -b 2611300800 -j 'ps-abc*'"][0]) == ["6.1", "6.2", "7"]   # -b drops 13
    assert sorted(answers["qacct -E -b 2611300800 -j 'ps-abc*'"][0]) == ["6.1", "6.2", "7"]
    assert list(answers["qacct -j 7,5"][0]) == ["7"] and list(answers["qacct -j 5 -j 7"][0]) == ["7"]
    assert answers["qacct -j 5 7"] == ({}, 1)


def test_qacct_gone_means_no_answer_yet():
    answers = [sge.qacct_gone(stderr, stdout) for _argv, stdout, stderr, _code in runs("qacct_errors.txt")]
    assert answers == [True] * 6
    assert not sge.qacct_gone("error: can't connect to qmaster\n", "")
    assert not sge.qacct_gone("", "")


def test_qdel_gone_only_when_every_complaint_is_about_a_gone_job():
    gone = {argv: sge.qdel_gone(stdout, stderr) for argv, stdout, stderr, code in runs("qdel.txt") if code}
    assert gone == {"qdel 99999": True, "qdel 5 99999": True}
    assert sge.qdel_gone('job "4" task "9" does not exist\n', "")   # qdel 4.9 (SGE 8.1.9, live)
    assert not sge.qdel_gone("", "error: commlib error: access denied\n")
    assert not sge.qdel_gone('denied: job "99999" does not exist\n', "unable to contact qmaster\n")
    assert not sge.qdel_gone("", "")

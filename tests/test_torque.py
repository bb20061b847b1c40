"""The Torque/PBS queue: parsers on captured output (tests/data/torque/README.md), and live
tests through Slurm's Torque wrappers (scripts/start-torque.sh) on the local Slurm cluster.

Live tests skip without the cluster or the wrappers, except under CI=true, where they fail.
"""
import os
import pathlib
import subprocess
import sys
import textwrap
import time

import pytest

import param_search as ps
from conftest import fail_or_skip, logging_shims, until, wait_jobs
from param_search.errors import QueueError
from param_search.experiment import Experiment
from param_search.queues import torque, torque_text
from param_search.queues.torque import TorqueQueue

DATA = pathlib.Path(__file__).parent / "data" / "torque"
ROOT = pathlib.Path(__file__).parent.parent


def read(name):
    return (DATA / name).read_text()


# -- parsers and argv pieces -----------------------------------------------------------------
def test_parse_qsub_of_the_wrapper_and_of_torque():
    assert torque_text.parse_qsub(read("qsub_array.txt")) == "8391"
    assert torque_text.parse_qsub(read("qsub_single.txt")) == "8392"
    # Torque's documented forms (Torque 4.2 guide, "Multiple job submission"): 1098[].hostname
    assert torque_text.parse_qsub("1098[].hostname\n") == "1098[].hostname"
    assert torque_text.parse_qsub("12667.server.domain\n") == "12667.server.domain"
    with pytest.raises(QueueError, match="no job id"):
        torque_text.parse_qsub(read("qsub_error.txt"))


def test_job_ids_in_both_forms():
    assert torque_text.task_id("8391", 2) == "8391[2]"
    assert torque_text.task_id("1098[].hostname", 4) == "1098[4].hostname"
    assert torque_text.split_id("1098[4].hostname") == ("1098", 4, ".hostname")
    assert torque_text.split_id("8391_2") == ("8391", 2, "")
    assert torque_text.split_id("179.host") == ("179", None, ".host")
    assert torque_text.id_key("8391_2") == torque_text.id_key("8391[2]") == ("8391", 2)
    assert torque_text.split_id("local-17") is None
    assert torque_text.query_ids(["1098[0].h", "1098[3].h", "8391[1]", "8392"]) == ["1098[].h", "8391", "8392"]


def test_qstat_full_of_the_wrapper_pending_and_running():
    info = torque_text.parse_qstat_full(read("qstat_f_pending_running.txt"))
    assert info[("8392", None)]["state"] == "RUNNING" and info[("8392", None)]["node"] == "localhost"
    assert info[("8393", None)]["state"] == "PENDING"        # held, yet the wrapper says Q
    assert info[("8391", None)]["name"] == "ps_arr"
    assert info[("8391", None)]["submit"] == time.mktime((2026, 11, 29, 14, 53, 13, 0, 0, -1))


def test_qstat_full_of_the_wrapper_completed_has_no_exit_status():
    info = torque_text.parse_qstat_full(read("qstat_f_tasks_ended.txt"))
    assert info[("8525", None)]["state"] == "ENDED" and info[("8525", None)]["exit_code"] is None
    assert info[("8391", None)]["state"] == "RUNNING"        # task 2 runs under the array's id
    held = torque_text.parse_qstat_full(read("qstat_f_held_cancelled.txt"))[("8393", None)]
    assert held["state"] == "ENDED" and held["node"] is None


def test_qstat_full_of_torque_documentation_sample():
    blocks = torque_text.parse_qstat_blocks(read("torque_doc_qstat_f_abridged.txt"))
    assert blocks[0]["Job Id"] == "179.host" and blocks[0]["Job_Name"] == "STDIN"
    assert blocks[0]["Variable_List"].endswith("PBS_O_LOGNAME=user,PBS_O_WORKDIR=/opt/moab,PBS_O_QUEUE=batchq")
    info = torque_text.parse_qstat_full(read("torque_doc_qstat_f_abridged.txt"))[("179", None)]
    assert info["state"] == "NODE_FAIL" and info["exit_code"] == -1 and info["node"] == "node1"


@pytest.mark.parametrize("code, expected", [
    (0, ("COMPLETED", 0, None)), (3, ("FAILED", 3, None)), (143, ("FAILED", 143, None)),
    (271, ("CANCELLED", None, "TERM")), (265, ("CANCELLED", None, "KILL")), (267, ("FAILED", None, "SEGV")),
    (-11, ("TIMEOUT", -11, None)), (-10, ("OUT_OF_MEMORY", -10, None)), (-1, ("NODE_FAIL", -1, None)),
])
def test_exit_status_mapping(code, expected):
    assert torque_text.exit_status_state(code) == expected


def test_find_chunks_by_name():
    text = read("qstat_f_tasks_ended.txt")
    assert torque_text.chunks_in_qstat(text, ["ps_arr", "ps_single", "other"]) == {"ps_arr": "8391", "ps_single": "8392"}
    torque_like = ("Job Id: 55[].srv\n    Job_Name = b.a0\n    job_state = Q\n"
                   "Job Id: 55[1].srv\n    Job_Name = b.a0-1\n    job_state = R\n")
    assert torque_text.chunks_in_qstat(torque_like, ["b.a0"]) == {"b.a0": "55.srv"}


def test_script_directives_drop_our_own_options():
    script = textwrap.dedent("""\
        #!/bin/bash
        #PBS -N mine -o out.txt -e err.txt
        #PBS -j oe
        #PBS -t 0-3
        #PBS -l walltime=01:00:00 -q long   # a comment
        #PBS -lmem=2gb -Nglued
        echo hi
        #PBS -l nodes=2
    """)
    assert torque.TorqueQueue().script_directives(script) == ["-l", "walltime=01:00:00", "-q", "long", "-lmem=2gb"]


def test_qsub_argv_merges_resources_options_win():
    options = ["-l", "walltime=01:00:00,mem=1gb", "-q", "long"] + torque_text.queue_options(
        "short", "00:05:00", None, 2, 4, "acct")
    argv = torque_text.qsub_argv("b.a0", "/s/b.a0.log", "/w", "/s/b.a0.sh", options, torque_text.array_spec(6, 2))
    assert argv == ["qsub", "-N", "b.a0", "-j", "oe", "-o", "/s/b.a0.log", "-w", "/w", "-t", "0-5%2",
                    "-q", "long", "-q", "short", "-A", "acct",
                    "-l", "mem=1gb,walltime=00:05:00,nodes=2:ppn=4", "/s/b.a0.sh"]
    assert torque_text.node_spec(None, 8) == "nodes=1:ppn=8" and torque_text.node_spec(None, None) == ""
    # why: Slurm's qsub keeps only the last -l (captured)
    assert "-t5" not in read("qsub_sbatchline_two_l.txt") and "--mem=100M" in read("qsub_sbatchline_two_l.txt")


def test_driver_script_names_the_map_file(tmp_path):
    path = tmp_path / "b.a0.sh"
    torque.write_driver(str(path), "/w dir/.param_search/wrapper.sh", "/w dir/b.a0.map")
    assert path.read_text().splitlines()[-1] == "exec bash '/w dir/.param_search/wrapper.sh' '@/w dir/b.a0.map'"
    assert os.access(path, os.X_OK)


def test_max_array_size():
    assert torque_text.parse_max_array_size("Server: s\n    max_job_array_size = 5000\n") == 5000
    assert torque_text.parse_max_array_size(read("qstat_f_pending_running.txt")) == 1000


def _rec(name, job_id, state="RUNNING"):
    return {"job_name": name, "job_id": job_id, "state": state, "queue": "torque"}


def test_qdel_ids_never_kill_a_whole_wrapper_array_for_part_of_it():
    mine = [_rec("a", "8391[0]")]
    others = [_rec("b", "8391[1]", "COMPLETED"), _rec("c", "8391[2]", "PENDING"), _rec("d", "9000[0]")]
    with pytest.raises(QueueError, match="cannot cancel part of array 8391.*'c'"):
        torque_text.qdel_ids(mine, mine + others)
    assert torque_text.qdel_ids(mine + [others[1]], mine + others) == ["8391"]
    assert torque_text.qdel_ids([_rec("x", "1098[3].h"), _rec("y", "8392")], []) == ["1098[3].h", "8392"]
    assert "isn't numeric" in read("qdel_bracket_stderr.txt")            # what qdel 8391[2] did
    assert "8391_0|8394|COMPLETED" in read("sacct_after_qdel_bracket.txt")


def test_poll_keeps_state_when_qstat_says_nothing(tmp_path, monkeypatch):
    calls = []

    def fake_call(argv, **kwargs):
        calls.append(argv)
        raise ps.CommandError(argv, 153, "", "qstat: Unknown Job Id Error 77[].srv")

    monkeypatch.setattr(torque, "call", fake_call)
    record = {"job_id": "77[0].srv", "state": "RUNNING", "submitted": time.time(), "exit_code": None}
    TorqueQueue().poll(None, [record])
    assert record["state"] == "RUNNING"
    assert calls == [["qstat", "-f", "-1", "-t", "77[].srv"]]


# -- live: Slurm's Torque wrappers on the local Slurm cluster ------------------------------
@pytest.fixture(scope="module")
def torque_bin(slurm):
    """Unpack the wrappers (scripts/start-torque.sh); the folder holding qsub/qstat/qdel."""
    try:
        done = subprocess.run([str(ROOT / "scripts" / "start-torque.sh")], capture_output=True,
                              text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        fail_or_skip(f"scripts/start-torque.sh did not run: {exc}")
    if done.returncode != 0 or not done.stdout.strip():
        fail_or_skip(f"scripts/start-torque.sh failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def torque_calls(torque_bin, tmp_path, monkeypatch):
    """Torque commands first on PATH (this test only), behind shims logging each call."""
    commands = {name: f"{torque_bin}/{name}" for name in ("qsub", "qstat", "qdel")}
    return logging_shims(tmp_path / "torque-shims", commands, monkeypatch, extra_path=str(torque_bin))


SWEEP = textwrap.dedent("""\
    #!/bin/bash
    #PBS -l walltime=00:05:00
    #PBS -N ignored -o ignored.out
    echo "x={x} host=$(hostname)"
    if [ {x} = 3 ]; then echo 'RuntimeError: three' >&2; exit 3; fi
""")


@pytest.mark.slurm
def test_sweep_runs_as_one_array(in_tmp, torque_calls):
    jobs = ps.submit(SWEEP, "job_{x}", ps.ParamSpace(x=range(6)), use="torque")
    qsubs = torque_calls("qsub")
    assert len(qsubs) == 1 and "-t 0-5" in qsubs[0] and "-l walltime=00:05:00" in qsubs[0]
    assert "ignored" not in qsubs[0]
    assert jobs.job_id.str.match(r"^\d+\[\d\]$").all()
    array = jobs.job_id.iloc[0].split("[")[0]
    shown = subprocess.run(["qstat", "-f", "-1", array], capture_output=True, text=True).stdout
    assert "Resource_List.walltime = 00:05:00" in shown      # the directive reached the scheduler
    before = len(torque_calls("qstat"))
    ps.status(jobs)
    assert len(torque_calls("qstat")) - before <= 1
    jobs = wait_jobs(jobs)
    assert list(jobs.job_state) == ["COMPLETED"] * 3 + ["FAILED"] + ["COMPLETED"] * 2
    assert list(jobs.exit_code) == [0, 0, 0, 3, 0, 0]
    assert jobs.stdout.iloc[2].startswith("x=2 host=")
    assert jobs.error.iloc[3] == "RuntimeError: three"
    assert not torque_calls("qdel")


@pytest.mark.slurm
def test_cancel_a_sleeping_job(in_tmp, torque_calls):
    script = "#!/bin/bash\nif [ {kind} = slow ]; then sleep 300; fi\necho {kind}\n"
    jobs = ps.submit(script, "job_{kind}", ps.ParamSpace(kind=["ok", "slow"]), use="torque")
    until(lambda: list(ps.status(jobs).job_state) == ["COMPLETED", "RUNNING"])
    cancelled = ps.cancel(jobs.iloc[[1]])
    assert list(cancelled.job_state) == ["CANCELLED"]
    assert torque_calls("qdel") == [f"qdel {jobs.job_id.iloc[1].split('[')[0]}"]
    array = jobs.job_id.iloc[1].split("[")[0]
    until(lambda: not subprocess.run(["squeue", "-h", "-j", array], capture_output=True,
                                      text=True).stdout.strip())
    assert list(wait_jobs(jobs).job_state) == ["COMPLETED", "CANCELLED"]


@pytest.mark.slurm
def test_cancel_part_of_a_running_array_is_refused_then_whole(in_tmp, torque_calls):
    jobs = ps.submit("sleep 300\n", "job_{i}", ps.ParamSpace(i=range(2)), use="torque")
    until(lambda: set(ps.status(jobs).job_state) == {"RUNNING"})
    with pytest.raises(QueueError, match="cannot cancel part of array"):
        ps.cancel(jobs.iloc[[0]])
    assert not torque_calls("qdel") and set(ps.status(jobs).job_state) == {"RUNNING"}
    assert set(ps.cancel(jobs).job_state) == {"CANCELLED"}
    assert len(torque_calls("qdel")) == 1


@pytest.mark.slurm
def test_single_jobs_without_arrays_are_polled_and_cancelled(in_tmp, torque_calls):
    jobs = ps.submit("sleep {s}\necho {s}\n", "job_{s}", ps.ParamSpace(s=[0, 300]), use="torque",
                     array=False)
    assert len(torque_calls("qsub")) == 2 and not any(" -t " in c for c in torque_calls("qsub"))
    assert jobs.job_id.str.isdigit().all()
    until(lambda: list(ps.status(jobs).job_state) == ["COMPLETED", "RUNNING"])
    assert list(ps.cancel(jobs.iloc[[1]]).job_state) == ["CANCELLED"]
    assert torque_calls("qdel") == [f"qdel {jobs.job_id.iloc[1]}"]
    assert list(wait_jobs(jobs).job_state) == ["COMPLETED", "CANCELLED"]


@pytest.mark.slurm
def test_job_cancelled_while_pending_outside_param_search(in_tmp, torque_calls):
    jobs = ps.submit("echo hi\n", "job_{i}", ps.ParamSpace(i=[1]), use="torque", array=False,
                     extra_args=["-a", "now+3600"])   # begins in an hour: stays pending
    subprocess.run(["qdel", jobs.job_id.iloc[0]], check=True)
    jobs = wait_jobs(jobs, timeout=60)
    assert list(jobs.job_state) == ["CANCELLED"] and jobs.started.isna().all()


@pytest.mark.slurm
def test_reconcile_finds_chunks_by_name(in_tmp, torque_calls):
    jobs = ps.submit("sleep 2\necho {i}\n", "job_{i}", ps.ParamSpace(i=range(3)), use="torque")
    ids = list(jobs.job_id)
    exp = Experiment.open(in_tmp)
    with exp.lock():   # as if the controller died between qsub and recording the ids
        records = exp.load_records()
        for record in records.values():
            record.update(state="SUBMITTING", job_id=None)
        exp.save_records(records)
    assert list(ps.status(in_tmp).job_id) == ids
    assert list(wait_jobs(jobs).stdout) == ["0\n", "1\n", "2\n"]


@pytest.mark.slurm
def test_chunks_and_slot_limit(in_tmp, torque_calls):
    jobs = ps.submit("echo {i}\n", "job_{i}", ps.ParamSpace(i=range(5)), use="torque",
                     max_array_size=2, max_running=1)
    qsubs = torque_calls("qsub")
    assert [c.split(" -t ")[1].split()[0] for c in qsubs] == ["0-1%1", "0-1%1", "0-0%1"]
    assert len({i.split("[")[0] for i in jobs.job_id}) == 3
    assert list(wait_jobs(jobs).stdout) == [f"{i}\n" for i in range(5)]


@pytest.mark.slurm
def test_resubmit_in_another_process_keeps_the_torque_options(in_tmp, torque_calls):
    script = "#!/bin/bash\n[ -e job.2.status ] && sleep 300\nexit 1\n"   # attempt 1 fails
    jobs = ps.submit(script, "job_{x}", ps.ParamSpace(x=[1]), use="torque", walltime="0:04:00",
                     queue="debug", extra_args=["-l", "pmem=100mb"])
    assert list(wait_jobs(jobs).job_state) == ["FAILED"]
    subprocess.run([sys.executable, "-c", "import param_search as ps; ps.resubmit('.')"],
                   check=True, timeout=120, stderr=subprocess.DEVNULL)
    first, second = torque_calls("qsub")
    for option in ("walltime=0:04:00", "-q debug", "pmem=100mb"):
        assert option in first and option in second
    job_id = ps.load(".").job_id[0]
    assert ps.load(".").queue[0] == "torque"
    shown = subprocess.run(["squeue", "-h", "-j", job_id.split("[")[0], "-o", "%l|%P"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert shown == ["4:00|debug"]
    assert list(ps.cancel(".").job_state) == ["CANCELLED"]


def test_a_retry_doubles_the_walltime_of_the_directive_and_slurm_runs_it_so(in_tmp, torque_calls):
    """The policy reads walltime from the template's #PBS line and qsub gets twice it."""
    script = "#!/bin/bash\n#PBS -l walltime=0:03:00\n[ -e job.2.status ] || exit 75\necho ok\n"
    policy = ps.Retry(on={"FAILED": {"exit_codes": [75], "time": 2.0}})
    jobs = ps.submit(script, "job_{x}", ps.ParamSpace(x=[1, 2]), use="torque", retry=policy)
    assert jobs.time_limit.tolist() == ["0:03:00"] * 2
    jobs = wait_jobs(jobs)
    assert jobs.job_state.tolist() == ["COMPLETED"] * 2 and jobs.attempt.tolist() == [2, 2]
    assert jobs.history.tolist() == ["attempt 1: FAILED (exit 75) -> time 0:06:00"] * 2
    first, second = torque_calls("qsub")
    assert "walltime=0:03:00" in first and "walltime=0:06:00" in second
    array = torque_text.split_id(jobs.job_id[0])[0]

    def limits():
        return subprocess.run(["sacct", "-n", "-X", "-P", "--format=Timelimit", "-j", array],
                              capture_output=True, text=True).stdout.split()

    until(lambda: set(limits()) == {"00:06:00"}, timeout=30)   # accounting may lag a moment

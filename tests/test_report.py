"""ps.report and `param-search report`: the page's content from Python, then the page itself
in a real browser (headless Chromium from the system's packages, driven by Selenium)."""
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

import param_search as ps
from param_search.experiment import Experiment
from param_search.report import context, report
from param_search.table import JOB_COLUMNS

from conftest import fail_or_skip, wait_jobs

#: The seed example, failing two ways: term2 = 0 divides by zero, (3, 3) says it is too big.
TEMPLATE = '''\
#!/bin/bash
if [ {term1}{term2} = 33 ]; then echo "ValueError: too big" >&2; exit 2; fi
product=`python3 -c "print({term1}*{term2})"`
quotient=`python3 -c "print({term1}/{term2})"` || exit 3
echo "product quotient" > {job_name}.metrics
echo "$product $quotient" >> {job_name}.metrics
'''
NAME = "job_{term1}_{term2}"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A finished sweep of 16 jobs on the local queue: 4 divide by zero, 1 is too big."""
    work_dir = tmp_path_factory.mktemp("report") / "sweep"
    space = ps.ParamSpace(term1=range(4), term2=range(4))
    jobs = ps.submit(TEMPLATE, NAME, space, use="local", work_dir=str(work_dir), progress=False)
    return wait_jobs(jobs)


@pytest.fixture(scope="module")
def sweep_report(sweep):
    return report(sweep.attrs["work_dir"])


def test_the_sweep_fails_as_planned(sweep):
    assert (sweep.job_state == "FAILED").sum() == 5
    assert set(sweep.error[sweep.job_state == "FAILED"]) == {"ZeroDivisionError: division by zero",
                                                           "ValueError: too big"}


def test_the_report_is_one_self_contained_file(sweep, sweep_report):
    html = pathlib.Path(sweep_report).read_text()
    assert sweep_report == os.path.join(sweep.attrs["work_dir"], "report.html")
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", html)   # nothing fetched
    assert "<link rel=\"stylesheet\"" not in html and "<script src" not in html
    assert html.count("data:image/png;base64,") >= 5    # 2 metrics x 2 params + heat-maps
    assert "ZeroDivisionError: division by zero" in html and "16</strong> jobs" in html


def test_the_context_holds_the_summary_groups_and_figures(sweep):
    page = context(sweep, sweep.attrs["work_dir"], None)
    counts = {c["state"]: c["n"] for c in page["summary"]["counts"]}
    assert counts == {"COMPLETED": 11, "FAILED": 5}
    assert page["summary"]["queues"] == "local"
    groups = {g["error"]: g for g in page["groups"]}
    assert groups["ZeroDivisionError: division by zero"]["jobs"] == 4
    assert groups["ZeroDivisionError: division by zero"]["shared_params"] == "term2=0"
    assert groups["ValueError: too big"]["shared_params"] == "term1=3, term2=3"
    titles = [f["title"] for f in page["figures"]]
    assert "product against term1" in titles and "mean quotient over term1 and term2" in titles
    assert page["search"] is None


def test_parameters_of_many_values_are_scattered_not_gridded(tmp_path):
    from param_search import report_figures

    rng = np.random.default_rng(1)
    metrics = pd.DataFrame({"lr": rng.random(200), "depth": rng.random(200), "job_name": "j", "loss": rng.random(200)})
    figures = report_figures.metric_figures(metrics, ["lr", "depth"])
    assert [f["title"] for f in figures] == ["loss against lr", "loss against depth", "loss over lr and depth"]
    assert all(f["uri"].startswith("data:image/png;base64,") for f in figures)
    assert report_figures._levels(pd.Series(np.repeat(np.arange(100) / 7, 4)))   # a grid: means per value
    assert not report_figures._levels(metrics["lr"])


def test_a_script_end_tag_in_an_output_cannot_end_the_data(sweep, tmp_path):
    table = sweep.copy()
    table.loc[0, "stdout"] = "</script><script>alert(1)</script>"
    html = pathlib.Path(report(table, tmp_path / "r.html", metrics=sweep.iloc[:0])).read_text()
    assert "</script><script>alert(1)" not in html


def test_report_refuses_a_folder_that_is_no_experiment(tmp_path):
    with pytest.raises(ps.ExperimentError, match="not an experiment folder"):
        report(tmp_path)
    with pytest.raises(ps.OptionError, match="name it .html"):
        report(pd.DataFrame({"job_name": []}).assign(**{c: [] for c in JOB_COLUMNS}), tmp_path / "r.txt")


def test_the_cli_writes_the_report(sweep, tmp_path):
    out = tmp_path / "cli.html"
    done = subprocess.run([sys.executable, "-m", "param_search.cli", "report", sweep.attrs["work_dir"],
                           "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert str(out) in done.stdout and out.read_text().startswith("<!DOCTYPE html>")


def test_a_search_report_shows_the_best_trial_and_the_history(tmp_path):
    pytest.importorskip("optuna")
    import scipy.stats as st

    template = 'echo loss > {job_name}.metrics\necho "({x}-0.25)^2" | bc -l >> {job_name}.metrics\n'
    trials = ps.optimize(template, "trial_{hash}", ps.ParamSpace(x=st.uniform(-1, 2)), objective="loss",
                         n_trials=6, max_running=3, seed=0, work_dir=str(tmp_path / "search"),
                         poll_interval=0.05, progress=False)
    page = context(ps.load(tmp_path / "search"), str(tmp_path / "search"), None)
    best = ps.best(trials)
    assert page["search"]["ran"] == 6 and page["search"]["history"]["uri"].startswith("data:image/png")
    assert {"trial", "x", "loss", "job_name"} <= set(page["search"]["best_columns"])
    assert [f["title"] for f in page["figures"]][:2] == ["loss against trial", "loss against x"]
    assert page["search"]["best"][0][page["search"]["best_columns"].index("job_name")] == best["job_name"]
    for table in (trials, ps.status(tmp_path / "search")):   # metrics columns and `best` are no params
        again = context(table, str(tmp_path / "search"), None)
        assert [c["key"] for c in again["columns"] if c["param"]] == ["trial", "x"]
        assert again["search"]["best"] == page["search"]["best"]


# -- in a real browser ---------------------------------------------------------------------
def synthetic_jobs(work_dir: str, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A jobs table and metrics of ``n`` made-up jobs (a tenth failed), with long outputs."""
    Experiment.create(work_dir)
    rng = np.random.default_rng(0)
    a, b = np.arange(n) // 100, np.arange(n) % 100
    failed = rng.random(n) < 0.1
    names = [f"job_{i}_{j}" for i, j in zip(a, b)]
    table = pd.DataFrame({"a": a, "b": b, **{c: None for c in JOB_COLUMNS}})
    table = table.assign(job_name=names, job_dir=[f"{work_dir}/{n}" for n in names],
                         job_state=np.where(failed, "FAILED", "COMPLETED"), exit_code=np.where(failed, 1, 0),
                         runtime=rng.uniform(1, 100, n), error=np.where(failed, "RuntimeError: boom", None),
                         stdout=["epoch line\n" * 300] * n, stderr=["warning line\n" * 300] * n,
                         attempt=1, queue="local", submitted=pd.Timestamp("2026-01-01"))
    table.attrs["work_dir"] = work_dir
    metrics = pd.DataFrame({"a": a, "b": b, "job_name": names, "loss": rng.random(n)})
    return table, metrics


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by Selenium, with the browser console's entries kept."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not (chromium and driver_path):
        fail_or_skip("no chromium/chromedriver: run scripts/install-chromium.sh (as root) first")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        fail_or_skip("selenium is not installed: pip install '.[test]'")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1600"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    yield driver
    driver.quit()


def open_page(browser, path) -> None:
    browser.get(pathlib.Path(path).resolve().as_uri())
    browser.get_log("browser")   # this page's entries only from here on


def severe(browser) -> list:
    return [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def column(browser, label: str) -> list[str]:
    """The texts of a column on the current page."""
    return browser.execute_script("""
        const th = [...document.querySelectorAll('#jobs-table th')].find(h => h.textContent === arguments[0]);
        const k = [...th.parentNode.children].indexOf(th);
        return [...document.querySelectorAll('#jobs-table tbody tr:not(.details)')].map(r => r.children[k].textContent);
    """, label)


def every_page(browser, label: str) -> list[str]:
    """A column's texts over every page (turning them with the page's own buttons)."""
    found = column(browser, label)
    while browser.find_element("id", "next").is_enabled():
        browser.find_element("id", "next").click()
        found += column(browser, label)
    return found


def choose(browser, select_id: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("id", select_id)).select_by_value(value)


@pytest.mark.browser
def test_the_report_works_in_a_browser(browser, sweep, sweep_report, tmp_path):
    browser.get(pathlib.Path(sweep_report).resolve().as_uri())
    assert severe(browser) == []
    choose(browser, "page-size", "10")
    names = every_page(browser, "name")
    assert sorted(names) == sorted(sweep.job_name) and len(names) == 16   # one row per job

    browser.refresh()
    header = next(h for h in browser.find_elements("css selector", "#jobs-table th") if h.text == "term2")
    header.click()
    assert column(browser, "term2") == sorted(column(browser, "term2"), key=int)
    header.click()
    assert column(browser, "term2") == sorted(column(browser, "term2"), key=int, reverse=True)
    assert column(browser, "term2")[0] == "3"

    take_screenshot(browser, tmp_path)
    browser.find_element("id", "filter").send_keys("job_1_")
    assert sorted(column(browser, "name")) == ["job_1_0", "job_1_1", "job_1_2", "job_1_3"]
    browser.find_element("id", "filter").clear()
    browser.find_element("id", "filter").send_keys(" ")   # an input event: the filter is empty again
    choose(browser, "state-filter", "FAILED")
    assert sorted(column(browser, "name")) == sorted(sweep.job_name[sweep.job_state == "FAILED"])

    widths = browser.execute_script("return [...document.images].map(i => i.complete ? i.naturalWidth : 0)")
    assert len(widths) >= 5 and all(w > 0 for w in widths)

    browser.find_element("css selector", "#jobs-table tbody button.toggle").click()
    assert "ZeroDivisionError" in browser.find_element("css selector", "tr.details").text or \
        "too big" in browser.find_element("css selector", "tr.details").text
    assert severe(browser) == []


@pytest.mark.browser
def test_the_failure_groups_match_the_jobs_table(browser, sweep, sweep_report):
    browser.get(pathlib.Path(sweep_report).resolve().as_uri())
    groups = browser.find_elements("css selector", "#failure-groups tbody tr")
    failed = sweep[sweep.job_state == "FAILED"]
    assert sorted(g.get_attribute("data-error") for g in groups) == sorted(failed.error.unique())
    for i in range(len(groups)):
        group = browser.find_elements("css selector", "#failure-groups tbody tr")[i]
        error, count = group.get_attribute("data-error"), int(group.get_attribute("data-jobs"))
        group.find_element("css selector", "button.show-group").click()
        shown = column(browser, "name")
        assert sorted(shown) == sorted(failed.job_name[failed.error == error]) and len(shown) == count
        assert set(column(browser, "error line")) == {error}
    browser.find_element("id", "clear-error").click()
    assert len(column(browser, "name")) == 16


def take_screenshot(browser, tmp_path) -> None:
    """A PNG of the page; REPORT_SCREENSHOT=path keeps a copy (docs/report.png comes from here)."""
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1280, min(height + 40, 2400))
    png = tmp_path / "report.png"
    assert browser.save_screenshot(str(png)) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("REPORT_SCREENSHOT"):
        shutil.copy(png, os.environ["REPORT_SCREENSHOT"])
    browser.set_window_size(1280, 1600)


@pytest.mark.slow
@pytest.mark.browser
def test_ten_thousand_jobs_open_and_sort_within_two_seconds(browser, tmp_path):
    table, metrics = synthetic_jobs(str(tmp_path / "big"), 10_000)
    path = report(table, tmp_path / "big.html", metrics=metrics)
    assert os.path.getsize(path) < 10_000_000
    start = time.perf_counter()
    browser.get(pathlib.Path(path).resolve().as_uri())
    opened = time.perf_counter() - start
    sort_ms = browser.execute_script("""
        const t0 = performance.now();
        [...document.querySelectorAll('#jobs-table th')].find(h => h.textContent === 'runtime (s)').click();
        return performance.now() - t0;""")
    runtimes = [float(v) for v in column(browser, "runtime (s)")]
    assert runtimes == sorted(runtimes) and len(runtimes) == 100
    assert "of 10000 jobs" in browser.find_element("id", "page-info").text
    assert severe(browser) == []
    assert opened < 2.0 and sort_ms < 2000, (opened, sort_ms)

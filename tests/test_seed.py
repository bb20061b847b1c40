"""The original README's example, exactly as written, on the local queue."""
import matplotlib

import param_search as ps

# define a basic job template and name format
template = '''\
#!/bin/bash
#SBATCH --job-name={job_name}
#SBATCH -o %J.stdout
#SBATCH -e %J.stderr
pwd
product=`python3 -c "print({term1}*{term2})"`
quotient=`python3 -c "print({term1}/{term2})"`

echo "product quotient" > {job_name}.metrics
echo "$product $quotient" >> {job_name}.metrics
'''
name = 'job_{term1}_{term2}'


def test_seed_example_runs_as_written(in_tmp, capsys):
    matplotlib.use("Agg")
    # define the ranges of parameters to evaluate
    param_space = ps.ParamSpace(term1=range(4), term2=range(4))

    # submit jobs for each parameter setting
    jobs = ps.submit(template, name, param_space, use='local')

    # check the stdout and stderr
    print(jobs.iloc[0].stdout)
    print(jobs.iloc[0].stderr)

    # read in output metrics
    metrics = ps.metrics(jobs)

    # plot metrics against parameters
    fig = ps.plot(metrics, x=['term1', 'term2'], y=['product', 'quotient'])

    assert len(jobs) == 16
    assert list(jobs.job_name[:2]) == ["job_0_0", "job_0_1"]
    assert jobs.iloc[0].stdout.strip() == str(in_tmp / "job_0_0")
    assert "ZeroDivisionError: division by zero" in jobs.iloc[0].stderr
    assert jobs.iloc[0].error == "ZeroDivisionError: division by zero"
    assert set(jobs.job_state) == {"COMPLETED"}
    assert (jobs.exit_code == 0).all()
    out = capsys.readouterr().out
    assert str(in_tmp / "job_0_0") in out and "ZeroDivisionError" in out

    assert len(metrics) == 16
    for row in metrics.itertuples():
        assert row.product == row.term1 * row.term2
        if row.term2 == 0:
            assert row.quotient != row.quotient  # NaN
        else:
            assert abs(row.quotient - row.term1 / row.term2) < 1e-9

    axes = fig.get_axes()
    assert len(axes) == 4
    assert all(ax.lines for ax in axes)
    assert [ax.get_ylabel() for ax in axes] == ["product", "product", "quotient", "quotient"]
    fig.savefig(in_tmp / "metrics.png")
    assert (in_tmp / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

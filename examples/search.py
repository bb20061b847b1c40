"""Adaptive search: TPE over a 6-d shifted sphere, each trial a job of the local queue.

Run from a scratch folder (the trials' folders land in ./search); pass 'slurm' to send the
trials to Slurm instead. Saves the best value against the trial number to history.png.
Needs Optuna: pip install 'param_search[search]'.
"""
import sys

import scipy.stats as st

import param_search as ps

# the job: computes sum((x_i - 0.3 i)^2) and writes it as a metrics row
template = '''\
#!/bin/bash
echo loss > {job_name}.metrics
echo "({x0}-0)^2+({x1}-0.3)^2+({x2}-0.6)^2+({x3}-0.9)^2+({x4}-1.2)^2+({x5}-1.5)^2" | bc -l >> {job_name}.metrics
'''
space = ps.ParamSpace(**{f'x{i}': st.uniform(-5, 10) for i in range(6)})   # each x_i on [-5, 5]

use = sys.argv[1] if len(sys.argv) > 1 else 'local'
trials = ps.optimize(template, 'trial_{hash}', space, objective='loss', direction='minimize',
                     n_trials=60, max_running=4, sampler='tpe', seed=0, use=use, work_dir='search')

print(trials.sort_values('loss')[['trial', 'x0', 'x1', 'x2', 'loss']].head().to_string(index=False))
best = ps.best(trials)
print(f"best loss {best.loss:.4g} at trial {best.trial} ({best.job_name})")
ps.plot_history(trials, 'history.png')
print('saved plot to history.png')

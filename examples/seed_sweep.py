"""The original README's example sweep, run on this machine's local queue.

Run from a scratch folder: job folders are created in the current directory.
"""
import sys

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

# define the ranges of parameters to evaluate
param_space = ps.ParamSpace(term1=range(4), term2=range(4))

use = sys.argv[1] if len(sys.argv) > 1 else 'local'

# submit jobs for each parameter setting
jobs = ps.submit(template, name, param_space, use=use)
if use != 'local':
    jobs = ps.wait(jobs)

# check the stdout and stderr
print(jobs.iloc[0].stdout)
print(jobs.iloc[0].stderr)

# read in output metrics
metrics = ps.metrics(jobs)

# plot metrics against parameters
fig = ps.plot(metrics, x=['term1', 'term2'], y=['product', 'quotient'])

print(metrics.to_string())
fig.savefig('metrics.png')
print('saved plot to metrics.png')

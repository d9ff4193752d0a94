#!/bin/bash
# A site's own sbatch template (sbatch_template = "custom.sub.j2"): extra directives, same context.
# shellcheck disable=SC2016 # quoted values are literal
#SBATCH --job-name=demo-eval
#SBATCH --account=coreai_dlalgo_llm
#SBATCH --partition=batch
#SBATCH --qos=normal
#SBATCH --time=01:30:00
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --chdir=/lustre/fs1/users/ada/nemotron/jobs/demo-eval-20260101-120000-0a0b0c
#SBATCH --output=/lustre/fs1/users/ada/nemotron/jobs/demo-eval-20260101-120000-0a0b0c/logs/sbatch-demo-eval_%j.out
#SBATCH --open-mode=append
#SBATCH --no-requeue
#SBATCH --mail-type=FAIL

module purge
export MODE='it'"'"'s "quoted" $HOME'
srun --output=/lustre/fs1/users/ada/nemotron/jobs/demo-eval-20260101-120000-0a0b0c/logs/log-demo-eval_%j_"${SLURM_RESTART_COUNT:-0}".out \
  --chdir=/lustre/fs1/users/ada/nemotron/jobs/demo-eval-20260101-120000-0a0b0c/code \
  python3 eval.py --config config.yaml

#!/usr/bin/env bash
# Run the tests that need a real SLURM cluster (pytest -m slurm) against a single-node SLURM
# on localhost (munge + slurmctld + slurmd, from shared/slurm/start-local-slurm.sh), and stop
# it again however the tests end. Called by .ci/run; as root, from a fresh clone with a copy of
# shared/ beside the repository (falls back to /work/shared).
#
# The jobs run the checkout's badpix: `badpix slurm` writes `sys.executable -m badpix` and the
# environment into the job scripts, and CI installed the checkout with `pip install -e .`.
# BADPIX_REQUIRE_SLURM=1 makes the SLURM tests fail, instead of skipping, if the cluster does
# not answer, so CI cannot pass without running them.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

shared="$(dirname "$repo")/shared"
[[ -f $shared/slurm/start-local-slurm.sh ]] || shared=/work/shared

# 8 advertised CPUs (the AGIPD1M cpus-per-task) let the array tasks of the test run at once;
# 40000 MB cover the largest --mem of configs/slurm.toml (32G), so its defaults submit as they
# are. Neither is enforced (no cgroups): the tasks share the real cores and memory. The
# partitions are those configs/slurm.toml names.
export SLURM_LOCAL_CPUS=${SLURM_LOCAL_CPUS:-8}
export SLURM_LOCAL_MEM_MB=${SLURM_LOCAL_MEM_MB:-40000}
export SLURM_LOCAL_PARTITIONS=${SLURM_LOCAL_PARTITIONS:-"debug exfel upex"}

bash "$shared/slurm/start-local-slurm.sh"
trap 'bash "$shared/slurm/stop-local-slurm.sh"' EXIT
env_sh="${SLURM_LOCAL_DIR:-/tmp/local-slurm}/env.sh"   # SLURM_CONF for the clients
if [[ -f $env_sh ]]; then
    # shellcheck source=/dev/null
    source "$env_sh"
fi
sinfo

BADPIX_REQUIRE_SLURM=1 python3 -m pytest -m slurm -v

"""Every named experiment `effgan reproduce NAME` runs: the effective-dynamics sweeps
(`effective`: a sweep spec plus a physics summary) and the companion papers' runs
(`companion`: each with its own `run`). EXPERIMENTS is the one registry of both; the two
`Experiment` contracts are still distinct (`spec`/`summarize` vs `run`)."""
from .companion import EXPERIMENTS as COMPANION
from .effective import EXPERIMENTS as EFFECTIVE

EXPERIMENTS = {**EFFECTIVE, **COMPANION}

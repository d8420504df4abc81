"""`python -m attnsim.kernels.bench`: time the kernels (see kernels.bench.harness)."""

import sys

from attnsim.kernels.bench.harness import main

sys.exit(main())

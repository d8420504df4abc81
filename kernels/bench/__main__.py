"""`python -m kernels.bench`: time the kernels (see kernels.bench.harness)."""

import sys

from kernels.bench.harness import main

sys.exit(main())

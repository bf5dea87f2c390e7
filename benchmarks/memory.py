"""Peak resident memory of one contender's fit, measured in a fresh process.

    python -m benchmarks.memory CONFIG CONTENDER ROWS THREADS

prints the bytes by which resident memory rose while the contender prepared
(its fit's set-up and first epoch), over the process with the data in memory.
A fresh process keeps memory freed by other contenders from hiding this one's.
"""

from __future__ import annotations

import json
import sys


def main(argv=None) -> int:
    config, key, rows, threads = (argv or sys.argv[1:])[:4]
    from threadpoolctl import threadpool_limits

    from .configs import CONFIGS, make_data
    from .contenders import cpu_contender
    from .measure import PeakRSS

    with threadpool_limits(int(threads)):
        X, y = make_data(int(rows), CONFIGS[config].layer_sizes[0])
        contender = cpu_contender(key)
        contender.load()
        with PeakRSS() as peak:
            contender.prepare(CONFIGS[config], X, y)
    print(json.dumps({"peak_bytes": peak.bytes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

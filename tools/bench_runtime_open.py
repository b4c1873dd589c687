"""Cost of opening the ExecuTorch runtime at run time (issue 12).

`diffulex --version` touches no runtime; `diffulex runtime` opens the shim library (and with it
the five libexecutorch*.so files, whose static initializers register about 260 kernels and the
XNNPACK backend) and lists the registry. The difference of the medians is what the first model
load of a process pays for finding and opening the runtime. Usage:

    python3 tools/bench_runtime_open.py target/release/diffulex [runs]
"""

import statistics
import subprocess
import sys
import time


def median_ms(args, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main():
    binary = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    bare = median_ms([binary, "--version"], runs)
    opened = median_ms([binary, "runtime"], runs)
    print(f"runs {runs}: --version {bare:.2f} ms, runtime {opened:.2f} ms, "
          f"opening the runtime {opened - bare:.2f} ms")


if __name__ == "__main__":
    main()

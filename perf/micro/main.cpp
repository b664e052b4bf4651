// Google Benchmark's main, plus the machine's TSC-free facts it already prints (CPU, caches).
#include <benchmark/benchmark.h>

BENCHMARK_MAIN();

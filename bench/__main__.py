"""`python -m bench`: run the benchmarks, print one table, write bench/results/latest.json."""

from bench.run import main

main()

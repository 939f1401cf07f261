# Developer shortcuts. `make bench` runs every benchmark (about 25 minutes on 2 cores) and regenerates
# bench/REPORT.md; `make bench-quick` is the smoke run (small counts, writes bench/results/quick/ only).
PYTHON ?= python3

.PHONY: bench bench-quick bench-report

bench:
	$(PYTHON) -m bench.run

bench-quick:
	$(PYTHON) -m bench.run --quick

bench-report:
	$(PYTHON) -m bench.report

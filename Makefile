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

# The chart's values.schema.json validates `config` with the settings model's own schema: regenerate it after
# adding or changing a settings field (tests/unit/test_chart_schema.py fails until you do).
.PHONY: chart-schema
chart-schema:
	$(PYTHON) scripts/chart-schema

# The two commands of the README: `make render` and `make test`.
.PHONY: render test setup setup-dev lint bench bench-smoke
PY := .venv/bin/python
STACK ?= dev
OUT ?= out/$(STACK)

setup:
	scripts/setup.sh

setup-dev:
	scripts/setup.sh --dev

render: setup
	rm -rf $(OUT)
	$(PY) -m automation render --stack $(STACK) --out $(OUT)

lint: setup-dev
	.venv/bin/ruff format --check .
	.venv/bin/ruff check .
	.venv/bin/mypy
	# The app repos' workflows and shell scripts (issue 12): zizmor's offline audits, shellcheck.
	.venv/bin/zizmor --offline --persona=pedantic --no-progress scoutflo/scaffold/.github/workflows/*.yaml
	shellcheck scripts/setup.sh scoutflo/scaffold/ci/dependencies scoutflo/scaffold/ci/release scoutflo/scaffold/ci/settings

test: lint
	# Two processes, one test file each at a time (--dist loadfile: a module's fixtures, such as
	# its loopback registry, stay in one process; each process starts its own PostgreSQL).
	PATH="$(CURDIR)/.tools/bin:$(CURDIR)/.venv/bin:$$PATH" $(PY) -m pytest -n 2 --dist loadfile

# Every benchmark of bench/ after a header naming the machine (bench/run.py puts .tools/bin on
# PATH itself). `make test` runs the same with --smoke (tests/test_bench_smoke.py); the full run
# takes a few minutes on 2 cores (yaml_bounds' "before" bombs are most of it).
bench: setup-dev
	$(PY) bench/run.py

bench-smoke: setup-dev
	$(PY) bench/run.py --smoke

# The two commands of the README: `make render` and `make test`.
.PHONY: render test setup setup-dev lint bench
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
	PATH="$(CURDIR)/.tools/bin:$(CURDIR)/.venv/bin:$$PATH" $(PY) -m pytest

bench: setup-dev
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(PY) bench/render_bench.py
	$(PY) bench/import_bench.py
	$(PY) bench/github_writes.py

# Entry points: `make run` starts the embedded system, `make test` runs lint, types and tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PACKAGE_FILES := requirements/dev.txt requirements/constraints.txt contracts/pyproject.toml \
	shared/pyproject.toml \
	devstack/pyproject.toml $(wildcard services/*/pyproject.toml)

.PHONY: install run demo test lint typecheck pytest contracts bench clean

CHROMIUM := /usr/bin/chromium

install: $(STAMP)

# The console's browser tests drive Debian's Chromium through Playwright (Playwright's own
# browser downloads are not available here); installed once, when it is missing, by the
# targets that run the tests (`make run` does not need it).
$(CHROMIUM):
	@echo "Chromium is missing (the console's browser tests need it): apt-get install -y chromium"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

$(STAMP): $(PACKAGE_FILES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	touch $(STAMP)

run: install
	$(PY) -m crm_devstack run

demo: install
	$(PY) -m crm_devstack demo

MYPY := $(VENV)/bin/mypy contracts/src shared/src services/profile-service/src \
	services/scoring-service/src services/lifecycle-service/src services/notification-service/src \
	devstack/src services/console/src

# Extra pytest arguments, e.g. `make pytest PYTEST_ARGS="-x tests/test_demo.py"`.
PYTEST_ARGS ?=

# The type check runs beside the tests rather than before them: a cold mypy (CI's fresh clone has
# no .mypy_cache) takes minutes of one core, while the tests leave the second core mostly idle.
# Its report follows the tests'; either failing fails the target.
TYPECHECK_LOG := var/typecheck.log

test: install lint $(CHROMIUM)
	$(PY) -m crm_devstack check-migrations
	@mkdir -p var
	@echo "make typecheck: running beside the tests, its report follows theirs"
	@$(MYPY) > $(TYPECHECK_LOG) 2>&1 & typecheck=$$!; \
	$(VENV)/bin/pytest $(PYTEST_ARGS); tests=$$?; \
	wait $$typecheck; types=$$?; \
	echo "make typecheck (exit $$types):"; cat $(TYPECHECK_LOG); \
	test $$tests -eq 0 && test $$types -eq 0

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(MYPY)

pytest: install $(CHROMIUM)
	$(PY) -m crm_devstack check-migrations
	$(VENV)/bin/pytest $(PYTEST_ARGS)

contracts: install
	$(PY) -m crm_contracts.generate

bench: install
	$(PY) bench/profile_http.py
	$(PY) bench/profile_import.py
	$(PY) bench/scoring_fit.py
	$(PY) bench/scoring_fit_service.py
	$(PY) bench/scoring_consume.py
	$(PY) bench/lifecycle_sweep.py
	$(PY) bench/lifecycle_consume.py
	$(PY) bench/notification_delivery.py
	$(PY) bench/pipeline.py
	$(PY) bench/customer_360.py
	$(PY) bench/customer_360_wrk.py
	$(PY) bench/console_pages.py

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache

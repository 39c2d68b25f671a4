# The two commands of the README: `make run` and `make test`. Both install what they need.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8080
PEERS  := $(CURDIR)/.peers

.PHONY: run test bench lint

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dev]'
	touch $@

$(PEERS)/.installed-with-sushi:
	bash ../shared/tools/fhir-peers-setup.sh $(PEERS) --with-sushi
	touch $@

# Start the service on the embedded SQLite database (instance/iop.db) loaded with examples/.
# IOP_AUTH=off is the development setting; never use it in production (see README).
run: $(VENV)/.installed
	IOP_AUTH=off $(VENV)/bin/flask --app wsgi examples load
	@echo "FHIR base URL: http://127.0.0.1:$(PORT)/fhir"
	IOP_AUTH=off $(VENV)/bin/gunicorn --workers 2 --bind 127.0.0.1:$(PORT) --access-logfile - wsgi:app

# The whole test suite (SQLite; set IOP_TEST_DATABASE_URL to run it on PostgreSQL).
test: $(VENV)/.installed $(PEERS)/.installed-with-sushi
	FHIR_PEERS_DIR=$(PEERS) $(PY) -m pytest $(PYTEST_ARGS)

# The benchmark (PostgreSQL at 127.0.0.1:5432). wrk is the load generator when it can be installed;
# otherwise bench/run.py falls back to Python client processes.
bench: $(VENV)/.installed $(PEERS)/.installed-with-sushi
	command -v wrk >/dev/null || (command -v apt-get >/dev/null && apt-get install -y -q wrk >/dev/null) || true
	FHIR_PEERS_DIR=$(PEERS) $(PY) bench/run.py $(BENCH_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check service tests scripts bench
	$(VENV)/bin/mypy service

# Paperboy: `make demo` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

export PREFECT_HOME := $(CURDIR)/var/prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: venv demo demo-reset test test-fast fuzz bench soak eval digest-check email-lint inlined clean delete-data

# The venv is rebuilt when the dependencies change; versions come from .ci/constraints.txt
# (the full, tested set) so every machine gets the same packages.
$(STAMP): pyproject.toml .ci/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c .ci/constraints.txt -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/paperboy demo

demo-reset:
	rm -rf var/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not browser"

# Hypothesis fuzzing of every parser of outside input (tests/test_fuzz.py) for FUZZ_SECONDS
# in all (default 10 minutes); `make test` runs the same properties with a few examples.
FUZZ_SECONDS ?= 600
fuzz: $(STAMP)
	PAPERBOY_FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/python -m pytest -q -m fuzz -p no:cacheprovider tests/test_fuzz.py

bench: $(STAMP)
	$(BIN)/python -m flows.bench $(BENCH_ARGS)

# Kill runs with SIGTERM/SIGINT/SIGKILL at random moments against a 5-20 ms relay, rerun,
# count duplicates and missing digests (a few minutes; not part of `make test`).
soak: $(STAMP)
	$(BIN)/python -m flows.bench.soak $(SOAK_ARGS)

# What a digest weighs and how it lays out (bytes, highlights, card heights at 375/1200 px)
digest-check: $(STAMP)
	$(BIN)/python -m flows.bench.digest --out var/digest-check

# The digest's and sign-up mails' HTML against caniemail.com's data (needs node and npm)
email-lint: $(STAMP)
	$(BIN)/python -m flows.bench.digest --no-browser --out var/digest-check
	cd tests/email-lint && npm ci --no-audit --no-fund --silent
	node tests/email-lint/lint.js var/digest-check/*.html

# After changing templates/digest.html.j2 or digest.css: store the template with the CSS
# inlined (templates/digest.inlined.json), so no process imports premailer to inline it
inlined: $(STAMP)
	$(BIN)/python -m flows.render

# Relevance on a judged set (default tests/data/eval/judged.json): make eval EVAL_SET=path/to/set.json
eval: $(STAMP)
	$(BIN)/python -m flows.bench.eval $(if $(EVAL_SET),--set "$(EVAL_SET)")

# Caches and build leftovers only: var/ (the database, the link-signing key, Prefect's state,
# the demo) is data and stays.
clean:
	rm -rf .pytest_cache .hypothesis bench-results var/preview-*.html

# Deletes var/: the delivery ledger (who was sent what), the signing key (every link in every
# digest already sent stops working), Prefect's history and the demo. Asks first.
delete-data:
	@printf 'delete var/ (database, signing key, Prefect state, demo)? [y/N] '; read answer; \
	  [ "$$answer" = y ] && rm -rf var && echo "deleted var/" || echo "kept var/"

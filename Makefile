# The two commands of the README: `make run` and `make test`. Each installs what it needs first.
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PG_VERSION = $(shell ls /etc/postgresql 2>/dev/null | head -n1)
# The browser package (@myideas/client) and the demo app built on it (frontend/dist).
NPM_CI         := npm ci --no-audit --no-fund --loglevel=error --prefix
CLIENT_JS      := clients/js
CLIENT_BUILD   := $(CLIENT_JS)/dist/index.js
FRONTEND_BUILD := frontend/dist/index.html

.PHONY: run test lint bench system-deps services

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP) $(FRONTEND_BUILD)
	$(BIN)/myideas serve

# Debian's chromium for the browser tests (Playwright never downloads a browser here).
system-deps:
	@command -v chromium >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The tests use the machine's PostgreSQL and Redis; start them if they have stopped.
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $(PG_VERSION) main start
	@redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 -::1 \
	  --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log

# clients/js: npm ci, then tsc into dist/.
$(CLIENT_JS)/node_modules/.package-lock.json: $(CLIENT_JS)/package-lock.json
	$(NPM_CI) $(CLIENT_JS)

$(CLIENT_BUILD): $(CLIENT_JS)/node_modules/.package-lock.json $(CLIENT_JS)/tsconfig.json \
                 $(wildcard $(CLIENT_JS)/src/*)
	npm run --silent --prefix $(CLIENT_JS) build
	@touch $@

frontend/node_modules/.package-lock.json: frontend/package-lock.json
	$(NPM_CI) frontend

# `tsc --noEmit` over the app, then `vite build` into frontend/dist, which `myideas serve` serves.
$(FRONTEND_BUILD): frontend/node_modules/.package-lock.json $(CLIENT_BUILD) frontend/index.html \
                   frontend/vite.config.ts frontend/tsconfig.json $(wildcard frontend/src/*)
	npm run --silent --prefix frontend build
	@touch $@

# supabase-js, for the client tests of the GoTrue-compatible API (backend/tests/gotrue/).
GOTRUE_JS := backend/tests/gotrue/js
$(GOTRUE_JS)/node_modules/.package-lock.json: $(GOTRUE_JS)/package-lock.json
	npm ci --prefix $(GOTRUE_JS) --no-audit --no-fund --loglevel=error

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: $(STAMP) system-deps services $(FRONTEND_BUILD) \
      $(GOTRUE_JS)/node_modules/.package-lock.json lint
	npm run --silent --prefix $(CLIENT_JS) typecheck
	node --test $(CLIENT_JS)/tests/
	$(BIN)/python -m pytest

# The benchmark's extra (matplotlib); the peers' venv is made by bench.run itself.
$(VENV)/.bench-installed: $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

bench: $(VENV)/.bench-installed services
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python -m bench.run $(BENCH_ARGS)

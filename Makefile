# CM portal — developer and CI entry points.
#
#   make test              venv + static assets + Debian services, then scripts/test.sh
#   make test-fast         SQLite only, no browser, no external services (quick loop)
#   make test PYTEST_ARGS="tests/test_x.py -k foo"
#   make demo              scripts/demo.sh
#   make lint              ruff check + mypy on $(MYPY_FILES)
#
# Everything the project needs on a fresh machine is installed from here (see .ci/run).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
UV_VERSION := 0.13.9
VENV_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

# Root on the project's machines; a developer laptop gets sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SYSTEM_PACKAGES := redis-server postgresql openssh-server rsync chromium git slapd ldap-utils
# python-ldap (django-auth-ldap's client) has no wheels on PyPI: the venv builds it from source.
BUILD_PACKAGES := gcc libc6-dev python3-dev libldap2-dev libsasl2-dev

# Files checked by mypy. Extend with `MYPY_FILES += path.py` below or on the command line.
MYPY_FILES := cmdb/gitrepo.py cmdb/gitparse.py cmdb/services.py cmdb/indexer.py cmdb/layout.py cmdb/secrets.py cmdb/markdown.py cmdb/search.py fleet changes/services.py changes/permissions.py deploys audits/services.py audits/queries.py audits/tasks.py audits/permissions.py portal/errors.py portal/roles.py portal/middleware.py audits/adopt.py audits/errors.py cmdb/gittypes.py changes/verification.py portal/views.py portal/listing.py cmdb/lint.py cmdb/views.py cmdb/api changes/views.py changes/api changes/impact.py changes/diffs.py changes/queries.py changes/tasks.py audits/views.py audits/api.py portal/env.py portal/backup.py portal/tasks.py portal/throttling.py portal/auth.py portal/api.py cmdb/converters.py accounts portal/metrics.py portal/sso.py portal/auth_ldap.py portal/auth_oidc.py portal/apidocs.py notifications portal/status.py portal/status_api.py cmdb/export.py cmdb/runbook.py cmdb/versions.py cmdb/panels.py

PYTEST_ARGS ?=
# Folders compileall leaves alone (regular expression on the path).
BYTECODE_SKIP := (^|/)(node_modules|data|\.venv|\.git|test-artifacts)(/|$$)

.PHONY: help venv bytecode static system-packages build-packages test test-fast demo lint clean distclean

help:
	@echo "targets: venv bytecode static system-packages build-packages test test-fast demo lint clean distclean"

# --- Python -----------------------------------------------------------------------------------------
venv: $(VENV_STAMP)

$(VENV_STAMP): pyproject.toml | build-packages
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/uv --version 2>/dev/null | grep -qF ' $(UV_VERSION)' \
	  || $(VPY) -m pip install -q uv==$(UV_VERSION)
	@# Bytecode compiled once here: the machines set PYTHONDONTWRITEBYTECODE=1, so without it every
	@# worker, command and test subprocess compiles Django, DRF and Celery again (check: 1.9 s -> 0.8 s).
	$(VENV)/bin/uv pip install -q --compile-bytecode --python $(VPY) -r pyproject.toml --extra dev
	@touch $@

# The project's own modules, for the same reason (the venv holds only the dependencies). Incremental:
# only files changed since the last run are compiled again. scripts/test.sh does the same itself.
bytecode: venv
	$(VPY) -m compileall -q -j 0 -x '$(BYTECODE_SKIP)' .

# --- front-end assets (bootstrap, bootstrap-icons -> STATICFILES_DIRS; axe-core for the browser tests) ---
static: $(NODE_STAMP)

$(NODE_STAMP): package.json $(wildcard package-lock.json)
	@if [ -f package-lock.json ]; then \
	  npm ci --no-audit --no-fund; \
	else \
	  npm install --no-audit --no-fund; \
	fi
	@test -f node_modules/bootstrap/dist/css/bootstrap.min.css
	@test -f node_modules/bootstrap-icons/font/bootstrap-icons.min.css
	@test -f node_modules/axe-core/axe.min.js
	@touch $@

# --- Debian packages: the real services the tests start (no systemd: nothing is started here) -------
# $(call apt_ensure,TARGET,PACKAGES): apt-get update and install only when one of PACKAGES is missing.
define apt_ensure
	@if dpkg-query -W -f='$${db:Status-Abbrev}\n' $(2) 2>/dev/null \
	     | awk '$$1 != "ii" {bad=1} END {exit bad || NR != $(words $(2))}'; then \
	  echo "$(1): all installed ($(2))"; \
	else \
	  echo "$(1): installing $(2)"; \
	  $(SUDO) apt-get update; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(2); \
	fi
endef

system-packages:
	$(call apt_ensure,system-packages,$(SYSTEM_PACKAGES))

build-packages:
	$(call apt_ensure,build-packages,$(BUILD_PACKAGES))

# --- entry points -----------------------------------------------------------------------------------
test: venv static system-packages
	scripts/test.sh $(PYTEST_ARGS)

# The quick red/green loop: SQLite only, no browser, no redis-server/sshd/PostgreSQL (those tests are
# deselected by their markers). `make test` stays the full run.
test-fast: venv bytecode static
	env -u DATABASE_URL -u REDIS_URL -u CMDB_REPO_URL -u CMDB_DATA_DIR DJANGO_DEBUG=true \
	  $(VPY) -m pytest -m "not browser and not services" $(PYTEST_ARGS)

demo: venv bytecode static
	scripts/demo.sh

lint: venv
	$(VENV)/bin/ruff check .
	@# The django-stubs plugin imports portal.settings, which needs a secret key unless DEBUG.
	DJANGO_DEBUG=true $(VENV)/bin/mypy $(MYPY_FILES)

# Generated files only; data/ (the portal's own data) and the venv are kept.
clean:
	rm -rf node_modules test-artifacts .pytest_cache .mypy_cache .ruff_cache
	find . -path ./.venv -prune -o \( -name __pycache__ -type d -prune -exec rm -rf {} + \) -o \( -name '*.pyc' -delete \)

distclean: clean
	rm -rf $(VENV)

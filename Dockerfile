# CM portal image: web (gunicorn), Celery worker and beat all run from it (see docker-compose.yml).

# --- front-end assets: bootstrap + bootstrap-icons, exactly as pinned in package-lock.json ---------
FROM node:20-slim AS assets
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --omit=dev

# --- the application ------------------------------------------------------------------------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=portal.settings \
    CMDB_DATA_DIR=/data

# git and ssh for the configuration repository (clone/fetch/push over ssh://); OpenLDAP and SASL
# libraries for python-ldap (directory sign-in), which is built from source below (no wheels on PyPI).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends git openssh-client \
      libldap2-dev libsasl2-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first (cached layer): pyproject.toml declares no packages, so this installs the
# pinned dependencies only; the code is run from /app.
COPY pyproject.toml ./
# PYTHONDONTWRITEBYTECODE keeps processes from writing .pyc at run time, so compile once here: every
# gunicorn worker, Celery process and management command then starts in about half the time.
# The compiler is needed for python-ldap only: installed and removed in the same layer.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc \
 && pip install . \
 && python -m compileall -q "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
 && apt-get purge -y --auto-remove gcc \
 && rm -rf /var/lib/apt/lists/*

COPY . .
RUN python -m compileall -q -x '(node_modules|tests|benchmarks)/' /app
COPY --from=assets /build/node_modules/bootstrap/dist /app/node_modules/bootstrap/dist
COPY --from=assets /build/node_modules/bootstrap-icons/font /app/node_modules/bootstrap-icons/font

# Unprivileged user; /data is the named volume (git clone, collected static files). A new named
# volume takes this directory's owner.
RUN useradd --uid 1000 --create-home --shell /usr/sbin/nologin cmportal \
 && install -d -o cmportal -g cmportal /data
USER cmportal
VOLUME ["/data"]
EXPOSE 8000

CMD ["gunicorn", "portal.wsgi:application", "--bind", "0.0.0.0:8000"]

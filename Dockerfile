# The GitHub Action's image: built by every job from main (action.yml:
# `image: Dockerfile`), and once per release for linux/amd64 and linux/arm64
# by .github/workflows/release.yml, whose tagged action.yml pulls it by digest.
# GitHub's rules for Docker actions: no USER (the runner expects root) and no
# WORKDIR (the runner sets /github/workspace); the entrypoint in exec form.
# BuildKit (Docker's default builder since 23.0) is needed for RUN --mount.

# Builder: the same Python on the same Debian, plus gcc and the headers (the
# full image has them). Each pinned requirement becomes a wheel in /wheels:
# the index's wheel where there is one for this platform, else one built here
# from the sdist (hdrhistogram on arm64: it publishes x86-64 wheels only).
# setuptools and pbr, at their pins, build them (hence no build isolation).
FROM python:3.11.14-bookworm AS builder

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY requirements/action.txt /build/action.txt
RUN pip install --no-cache-dir --only-binary=:all: -c /build/action.txt setuptools pbr \
    && pip wheel --no-cache-dir --no-build-isolation --wheel-dir /wheels -r /build/action.txt

# The image: the slim base, no compiler. The dependencies come from the
# builder's wheels only (no index, no sdist), mounted for this one step so
# they take no room in a layer.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Pinned dependencies first, in their own layer: it survives code changes.
COPY requirements/action.txt /app/requirements/action.txt
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels --only-binary=:all: \
    -r /app/requirements/action.txt

COPY pyproject.toml README.md entrypoint.py /app/
COPY loadaction /app/loadaction
COPY scenarios /app/scenarios
# The package from the copied tree, then the tree's copy of it removed so the
# installed one is what runs (the script's directory comes first on sys.path).
RUN pip install --no-cache-dir --no-index --no-deps --no-build-isolation /app \
    && rm -rf /app/loadaction /app/build /app/loadaction.egg-info

ENTRYPOINT ["python", "/app/entrypoint.py"]

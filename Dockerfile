# The GitHub Action's image (action.yml: `image: Dockerfile`). GitHub's rules
# for Docker actions: no USER (the runner expects root) and no WORKDIR (the
# runner sets /github/workspace); the entrypoint in exec form.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Pinned dependencies first, in their own layer: it survives code changes.
COPY requirements/action.txt /app/requirements/action.txt
RUN pip install --no-cache-dir --only-binary=:all: -r /app/requirements/action.txt

COPY pyproject.toml README.md entrypoint.py /app/
COPY loadaction /app/loadaction
COPY scenarios /app/scenarios
# The package from the copied tree, then the tree's copy of it removed so the
# installed one is what runs (the script's directory comes first on sys.path).
RUN pip install --no-cache-dir --no-deps --no-build-isolation /app \
    && rm -rf /app/loadaction /app/build /app/loadaction.egg-info

ENTRYPOINT ["python", "/app/entrypoint.py"]

# syntax=docker/dockerfile:1
# Notifier's one image: the web server (gunicorn), the RQ workers and the cron scheduler all
# run from it; compose.yaml picks each one's command (README "Running in production").
#
# Stage 1 builds a virtualenv holding the project's dependencies (from pyproject.toml, so a
# code change does not reinstall them); stage 2 puts that venv and the code on a clean slim
# Python, collects the static files and runs as an unprivileged user.
ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml ./
# The dependencies come as wheels for glibc Linux, but for pure-Python ones published as
# source only (http-ece), which build without a compiler: the slim image needs none.
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && pip install --prefer-binary -r requirements.txt

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=notifier_site.settings \
    STATIC_ROOT=/app/staticfiles \
    STATIC_MANIFEST=1 \
    PORT=8000
RUN groupadd --system --gid 10001 notifier \
    && useradd --system --uid 10001 --gid notifier --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin notifier
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
# The code stays owned by root: the user that runs it cannot change it.
COPY manage.py gunicorn.conf.py ./
COPY notifier_site ./notifier_site
COPY campaigns ./campaigns
COPY channels ./channels
COPY templates ./templates
COPY static ./static
# Hashed, compressed copies for WhiteNoise (STATIC_MANIFEST=1). DEBUG=1 only stands in for a
# SECRET_KEY, which collecting static files does not use.
RUN DEBUG=1 python manage.py collectstatic --noinput --verbosity 0
USER 10001:10001
EXPOSE 8000
# The web server by default; compose.yaml runs workers and the scheduler with other commands.
CMD ["gunicorn", "notifier_site.wsgi"]

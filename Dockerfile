FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 BUFFET_VAR_DIR=/var/lib/buffet
WORKDIR /app
RUN useradd --system --home /app buffet && mkdir -p /var/lib/buffet \
    && chown buffet /var/lib/buffet
COPY pyproject.toml README.md ./
COPY stampsim ./stampsim
COPY base ./base
COPY tenants ./tenants
COPY fabric ./fabric
COPY plans ./plans
COPY provisioning ./provisioning
COPY dr_addon ./dr_addon
COPY portal ./portal
COPY manage.py ./
RUN pip install --no-cache-dir . && python manage.py collectstatic --noinput
USER buffet
EXPOSE 8000
CMD ["gunicorn", "portal.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4", "--access-logfile", "-"]

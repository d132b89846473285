"""The Alembic migrations, run through :mod:`svckit.migrations`."""

# Package form, so the migrations are found inside an installed wheel too.
LOCATION = "auth_service:migrations"

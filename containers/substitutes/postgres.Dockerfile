# Substitute for the upstream `postgres` image, built only when it cannot be pulled
# (see build.sh). Debian's PostgreSQL server; the upstream image's interface as the compose
# file and testcontainers use it: POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB, the data
# directory /var/lib/postgresql/data (PGDATA), password authentication over TCP, trust on the
# Unix socket, `postgres`, `pg_isready` and `psql` on PATH.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN mkdir -p /etc/postgresql-common \
    && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
    && chmod 700 /var/lib/postgresql/data
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
USER postgres
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]

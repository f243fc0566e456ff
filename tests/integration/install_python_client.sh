#!/usr/bin/env bash
# install_python_client.sh ROOT VENV — the documented install of the Python
# client (docs/python-client.md), offline: a venv over Debian's python3 that
# sees its system packages (grpcio, protobuf, grpc_tools, setuptools), then
# pip without network and without build isolation. The ctest fixture the
# client, quickstart, status page and Grafana tests share.
set -euo pipefail
root=$(cd "$1" && pwd) venv=$(realpath -m "$2")
rm -rf "$venv"
/usr/bin/python3 -m venv --system-site-packages "$venv"
cd "$root"
"$venv/bin/python" -m pip install --quiet --no-index --no-build-isolation ./clients/python
cd /
"$venv/bin/python" -c 'import moerec_client, sys; print("moerec_client", moerec_client.__version__, "from", moerec_client.__file__)'

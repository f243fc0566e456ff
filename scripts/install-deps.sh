#!/usr/bin/env bash
# install-deps.sh — install what moerec needs on Debian 12, idempotently.
#
#   scripts/install-deps.sh            # build packages + faiss_c (quiet when present)
#   scripts/install-deps.sh --tests    # also what the tests start or drive (servers, chromium, torch)
#   scripts/install-deps.sh --bench    # also the benchmarks' peers (xgboost, dask)
#   scripts/install-deps.sh --check    # report what is missing, install nothing
#
# 1. Debian packages: installs only the missing ones; runs `apt-get update`
#    only when something must be installed. As root it calls apt-get
#    directly; otherwise through sudo, or it prints the exact command.
# 2. faiss_c: Debian's libfaiss-dev ships the FAISS C API headers but not
#    the compiled library. We fetch Debian's own faiss source package with
#    `apt-get source` through a private deb-src list derived from this
#    machine's apt sources (same URIs, suites, keyring), build its c_api/
#    against the installed libfaiss.a, and cache the result under
#    $MOEREC_DEPS_DIR (default ~/.cache/moerec). /etc/apt is never edited.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config dpkg-dev
  librocksdb-dev libfaiss-dev libopenblas-dev libomp-dev
  libgrpc-dev libprotobuf-c-dev protobuf-c-compiler
  libxxhash-dev libjansson-dev libcmocka-dev libmicrohttpd-dev
  clang clang-format libclang-rt-14-dev
  python3 python3-grpcio python3-grpc-tools python3-numpy
  python3-venv python3-setuptools python3-wheel
  libdnnl-dev libcsv-dev libnats-dev libhiredis-dev libgnutls28-dev libssl-dev
)
# What the test suite starts or drives: JetStream and Redis Cluster servers,
# TLS certificates, headless Chromium for the status page, PyTorch and xxhash
# for the Python round trip, pip, h2load, Prometheus (promtool + a server)
# for the Grafana dashboard's queries. (The client package's venv build
# needs python3-venv, setuptools and wheel: in PACKAGES, as the demo uses it.)
TEST_PACKAGES=(
  nats-server redis-server openssl chromium python3-torch python3-xxhash
  python3-pip nghttp2-client prometheus
)
# Benchmark peers only.
BENCH_PACKAGES=(python3-xgboost python3-distributed)
DEPS_DIR=${MOEREC_DEPS_DIR:-${HOME:-/root}/.cache/moerec}
FAISS_C_DIR="$DEPS_DIR/faiss_c"
CHECK_ONLY=0
for a in "$@"; do
  case "$a" in
    --check) CHECK_ONLY=1 ;;
    --tests) PACKAGES+=("${TEST_PACKAGES[@]}") ;;
    --bench) PACKAGES+=("${TEST_PACKAGES[@]}" "${BENCH_PACKAGES[@]}") ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-deps.sh: unknown option '$a' (try --help)" >&2; exit 2 ;;
  esac
done

say() { echo "install-deps: $*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else say "not root and no sudo; run as root, then re-run this script:"; say "  $root_cmd"; exit 1
  fi
}

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ $CHECK_ONLY -eq 1 ]; then say "missing packages: ${missing[*]}"; exit 1; fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  root_cmd="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---- faiss_c -------------------------------------------------------------
faiss_version=$(dpkg-query -W -f='${Version}' libfaiss-dev)
stamp="$FAISS_C_DIR/.built-$faiss_version"
if [ -f "$stamp" ] && [ -f "$FAISS_C_DIR/lib/libfaiss_c.a" ]; then exit 0; fi
if [ $CHECK_ONLY -eq 1 ]; then say "faiss_c not built for libfaiss-dev $faiss_version"; exit 1; fi

say "building faiss_c for libfaiss-dev $faiss_version (once; cached in $FAISS_C_DIR)"
work=$(mktemp -d "${TMPDIR:-/tmp}/moerec-faiss.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/apt/sources.d" "$work/src"

# Derive deb-src entries from the machine's own apt sources (deb822 and
# one-line formats), keeping URIs, suites, components and keyrings.
/usr/bin/env python3 - "$work/apt/sources.d/moerec-src.sources" <<'PY'
import glob, os, re, sys
out = []
def add(uris, suites, comps, signed):
    for u in uris:
        e = "Types: deb-src\nURIs: %s\nSuites: %s\nComponents: %s\n" % (u, " ".join(suites), " ".join(comps))
        if signed: e += "Signed-By: %s\n" % signed
        out.append(e)
etc = os.environ.get("MOEREC_APT_ETC", "/etc/apt")  # tests point it at sample files
files = [etc + "/sources.list"] + sorted(glob.glob(etc + "/sources.list.d/*.list")) \
        + sorted(glob.glob(etc + "/sources.list.d/*.sources"))
for f in files:
    if not os.path.isfile(f): continue
    text = open(f).read()
    if f.endswith(".sources"):
        for stanza in re.split(r"\n\s*\n", text):
            kv = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line: continue
                k, v = line.split(":", 1); kv[k.strip().lower()] = v.strip()
            if "deb" not in kv.get("types", "").split() or kv.get("enabled", "yes") == "no": continue
            if "debian" not in kv.get("uris", ""): continue
            add(kv["uris"].split(), kv.get("suites", "").split(), kv.get("components", "main").split(), kv.get("signed-by"))
    else:
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            m = re.match(r"^deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s*(.*)$", line)
            if not m or "debian" not in m.group(2): continue
            opts = m.group(1) or ""; sb = re.search(r"signed-by=(\S+?)[\] ]", opts + " ")
            add([m.group(2)], [m.group(3)], (m.group(4) or "main").split(), sb.group(1) if sb else None)
if not out: sys.exit("install-deps: no Debian apt source found to derive a deb-src entry from")
open(sys.argv[1], "w").write("\n".join(out))
PY

APT_OPTS=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$work/apt/sources.d"
          -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache"
          -o "APT::Sandbox::User=root" -qq)
# A derived entry whose repository publishes no sources (a third-party
# repo on this machine) fails its index; the others are still usable.
apt-get "${APT_OPTS[@]}" update >/dev/null 2>"$work/update.err" \
  || say "some deb-src indexes could not be fetched (ignored): $(grep -m1 -E '^(E|W):' "$work/update.err" || true)"
( cd "$work/src" && apt-get "${APT_OPTS[@]}" source --download-only "faiss=${faiss_version}" >/dev/null 2>&1 \
    || apt-get "${APT_OPTS[@]}" source --download-only faiss >/dev/null )
( cd "$work/src" && dpkg-source -x --no-check ./*.dsc faiss >/dev/null )

here=$(cd "$(dirname "$0")" && pwd)
cmake -S "$here/faiss_c" -B "$work/build" -DFAISS_SRC="$work/src/faiss" \
      -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$FAISS_C_DIR" >/dev/null
cmake --build "$work/build" -j"$(nproc)" >/dev/null
rm -rf "$FAISS_C_DIR"
cmake --install "$work/build" >/dev/null
touch "$FAISS_C_DIR/.built-$faiss_version"
say "faiss_c ready in $FAISS_C_DIR"

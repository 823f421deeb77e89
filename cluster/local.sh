#!/usr/bin/env bash
# A local two-node Ray cluster on 127.0.0.1: a head that schedules no work (--num-cpus=0, as on
# Kubernetes) and a SECOND node, each its own `ray start` process, Ray's token auth on.
#
#   cluster/local.sh up       # start head + worker; prints the env to use (also in $DIR/env)
#   . "$DIR/env"              # RAY_ADDRESS (the job API), RAY_AUTH_MODE, RAY_AUTH_TOKEN_PATH
#   ray job submit --working-dir . -- synth-ray run jobs/wrap.yaml --set output_dir=/tmp/wrap1
#   cluster/local.sh status   # nodes and resources
#   cluster/local.sh down     # stop THIS cluster only
#
# Settings (environment):
#   SYNTH_RAY_LOCAL_DIR  state dir (token, ports, Ray temp dir, logs); default /tmp/srl-$UID.
#                        Keep it short: Ray's unix sockets live under it (108-byte limit).
#   HEAD_CPUS=0  WORKER_CPUS=8  logical CPUs of the head and the worker (8 on 2 real cores:
#                        a Ray Data LLM pipeline of several actor stages deadlocks with fewer).
#   OBJECT_STORE_BYTES=500000000  per node.
#   RAY_AUTH_TOKEN_PATH  use this token file (default: a new token in $DIR/auth_token).
#   RAY=ray              the ray CLI (its directory's python, with synth-ray installed,
#                        runs the port helper and `python -m synth_ray.localcluster kill`).
#
# Ports: all picked free (never 6379/8265/10001/52365/8000, which other clusters may hold).
# `down` never runs `ray stop` (that kills every Ray on the machine, other users' and tests'
# included): it kills the process groups of our two `ray start` sessions, every process carrying
# this cluster's marker variable (Ray workers leave the group but inherit the environment),
# and all their descendants (vLLM engine processes), SIGTERM then SIGKILL.
set -euo pipefail

DIR=${SYNTH_RAY_LOCAL_DIR:-/tmp/srl-$(id -u)}
RAY=${RAY:-$(command -v ray || true)}
[ -n "$RAY" ] || { echo "local.sh: no 'ray' on PATH (activate the venv or set RAY=...)" >&2; exit 2; }
PY=${PYTHON:-$(dirname "$RAY")/python}
[ -x "$PY" ] || PY=python3
MARKER_VAR=SYNTH_RAY_LOCAL_CLUSTER

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The environment of every process of this cluster (and of the `ray` CLI talking to it).
cluster_env() {
    unset RAY_ADDRESS RAY_API_SERVER_ADDRESS RAY_AUTH_TOKEN
    export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$TOKEN_PATH"
    export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0  # keep 127.0.0.1 instead of the machine's address
    export RAY_USAGE_STATS_ENABLED=0 TMPDIR="$DIR/tmp"  # vLLM's socket files go under TMPDIR
    export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1} TOKENIZERS_PARALLELISM=false
    export "$MARKER_VAR=$MARKER"
}

load_state() {
    [ -f "$DIR/state" ] || { echo "local.sh: no cluster in $DIR (run: $0 up)" >&2; return 1; }
    # shellcheck disable=SC1091
    . "$DIR/state"
}

# `ray start` for a node JOINING on loopback. With RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (what keeps
# Ray on 127.0.0.1 instead of the machine's network address) the `ray start` CLI refuses to join
# any head ("Multi-node Ray clusters are not supported on Windows and OSX"); everything else
# reads the variable to pick the loopback address. This runs Ray's own CLI with that one guard
# seeing True; the node and its daemons still run with the variable at 0, i.e. on 127.0.0.1.
RAY_START_JOIN_LOOPBACK='
import sys, types
import ray._private.ray_constants as c
from ray.scripts import scripts
scripts.ray_constants = types.SimpleNamespace(**{**vars(c), "ENABLE_RAY_CLUSTER": True})
sys.argv = ["ray", *sys.argv[1:]]
sys.exit(scripts.main())
'

# Start `ray start ARGS` (or, with JOIN=1, the loopback join above) in a new session; its pid
# (= the process group id of the node's daemons) goes to $DIR/pgids.
start_in_session() {
    local log=$1; shift
    local cmd=("$RAY")
    [ "${JOIN:-0}" = 1 ] && cmd=("$PY" -c "$RAY_START_JOIN_LOOPBACK")
    setsid bash -c 'echo $$ >> "$0/pgids"; exec "$@"' "$DIR" "${cmd[@]}" start "$@" \
        >"$log" 2>&1 </dev/null
}

cmd_up() {
    if [ -f "$DIR/state" ]; then
        echo "local.sh: $DIR already holds a cluster; '$0 down' first" >&2; exit 1
    fi
    mkdir -p "$DIR/tmp" "$DIR/logs"
    chmod 700 "$DIR"
    TOKEN_PATH=${RAY_AUTH_TOKEN_PATH:-$DIR/auth_token}
    if [ ! -s "$TOKEN_PATH" ]; then
        (umask 077; "$PY" -c 'import secrets; print(secrets.token_hex(32), end="")' >"$TOKEN_PATH")
    fi
    MARKER=$("$PY" -c 'import uuid; print(uuid.uuid4().hex)')
    GCS_PORT=$(free_port); DASH_PORT=$(free_port)
    cat >"$DIR/state" <<EOF
TOKEN_PATH=$TOKEN_PATH
MARKER=$MARKER
GCS_PORT=$GCS_PORT
DASH_PORT=$DASH_PORT
EOF
    cat >"$DIR/env" <<EOF
export RAY_ADDRESS=http://127.0.0.1:$DASH_PORT
export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN_PATH=$TOKEN_PATH
export SYNTH_RAY_LOCAL_GCS=127.0.0.1:$GCS_PORT
EOF
    : >"$DIR/pgids"
    cluster_env
    local common=(--node-ip-address=127.0.0.1 --disable-usage-stats
                  "--object-store-memory=${OBJECT_STORE_BYTES:-500000000}")
    # One Ray temp dir PER NODE, as on separate machines: with a shared one, the worker's
    # runtime-env agent re-unpacks a job's working_dir under the head's driver, deleting its cwd.
    echo "starting head (num-cpus ${HEAD_CPUS:-0}) on 127.0.0.1:$GCS_PORT, job API http://127.0.0.1:$DASH_PORT"
    if ! start_in_session "$DIR/logs/head.log" --head "--port=$GCS_PORT" \
        --dashboard-host=127.0.0.1 "--dashboard-port=$DASH_PORT" \
        "--ray-client-server-port=$(free_port)" "--dashboard-agent-listen-port=$(free_port)" \
        "--metrics-export-port=$(free_port)" "--num-cpus=${HEAD_CPUS:-0}" "--temp-dir=$DIR/ray" \
        "${common[@]}"; then
        cat "$DIR/logs/head.log" >&2; cmd_down; exit 1
    fi
    echo "starting worker node (num-cpus ${WORKER_CPUS:-8})"
    if ! JOIN=1 start_in_session "$DIR/logs/worker.log" "--address=127.0.0.1:$GCS_PORT" \
        "--dashboard-agent-listen-port=$(free_port)" "--metrics-export-port=$(free_port)" \
        "--num-cpus=${WORKER_CPUS:-8}" "--temp-dir=$DIR/ray-worker" "${common[@]}"; then
        cat "$DIR/logs/worker.log" >&2; cmd_down; exit 1
    fi
    # The job API answers a little after `ray start` returns.
    local i
    for i in $(seq 1 60); do
        if "$RAY" job list --address "http://127.0.0.1:$DASH_PORT" >/dev/null 2>&1; then
            echo "up. Use it with:  . $DIR/env"
            cat "$DIR/env"
            return 0
        fi
        sleep 2
    done
    echo "local.sh: the job API did not answer in 120 s (logs: $DIR/logs, $DIR/ray)" >&2
    exit 1
}

cmd_status() {
    load_state
    cluster_env
    cat "$DIR/env"
    "$RAY" status --address "127.0.0.1:$GCS_PORT"
}

cmd_down() {
    load_state || return 0
    local rc=0
    "$PY" -m synth_ray.localcluster kill --pgids-file "$DIR/pgids" --var "$MARKER_VAR" \
        --marker "$MARKER" || rc=1
    rm -f "$DIR/state" "$DIR/env" "$DIR/pgids"
    rm -rf "$DIR/ray" "$DIR/ray-worker" "$DIR/tmp"
    return $rc
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *) sed -n '2,9p' "$0"; exit 2 ;;
esac

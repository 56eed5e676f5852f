#!/usr/bin/env bash
# Real slow links on one machine: N network namespaces joined by veth pairs
# through a bridge, optionally rate-limited with tbf, and mpirun across them
# over the real TCP stack (btl tcp), one rank per namespace.
#
# Why namespaces instead of the in-process emulator: they exercise the real
# TCP path (kernel buffers, Nagle, OpenMPI's tcp btl) that shared memory
# bypasses.  This kernel has no netem, so there is no added delay: only
# bandwidth (tbf, burst >= 256 kB) is shaped; delay would need a userspace
# relay.  Needs root (or CAP_NET_ADMIN + CAP_SYS_ADMIN).
#
#   scripts/netns.sh up N [--rate 100mbit] [--burst 256kb]   create lhns0..lhns(N-1)
#   scripts/netns.sh run N [mpirun options] -- PROGRAM ARGS  mpirun -np N across them
#   scripts/netns.sh down N                                  remove everything
#   scripts/netns.sh status
#
# Addresses: namespace i is 10.77.0.(i+1)/24 on its veth; the root namespace
# (where mpirun runs) is 10.77.0.254 on the bridge lhbr0.  Each rank's
# namespace also gets its own UTS namespace and hostname (lhns<i>), so Open
# MPI sees N distinct nodes and cannot use shared memory between them.
set -euo pipefail

PREFIX=lhns
BRIDGE=lhbr0
SUBNET=10.77.0
STATE_DIR=${LONGHAUL_NETNS_DIR:-/tmp/longhaul-netns}

die() { echo "netns.sh: $*" >&2; exit 1; }
need_root() { [ "$(id -u)" -eq 0 ] || die "needs root (creates namespaces, veth pairs and a bridge)"; }
check_n() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge 2 ] && [ "$1" -le 64 ] || die "N must be 2..64, got '$1'"; }

cmd_up() {
  local n=$1; shift
  local rate="" burst=256kb
  while [ $# -gt 0 ]; do
    case $1 in
      --rate) rate=$2; shift 2 ;;
      --burst) burst=$2; shift 2 ;;
      *) die "up: unknown option $1" ;;
    esac
  done
  need_root; check_n "$n"
  mkdir -p "$STATE_DIR"
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$SUBNET.254/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
  fi
  for i in $(seq 0 $((n - 1))); do
    local ns=$PREFIX$i host_if=lhv$i
    ip netns list | grep -qw "$ns" && die "namespace $ns exists: run 'netns.sh down $n' first"
    ip netns add "$ns"
    ip link add "$host_if" type veth peer name eth0 netns "$ns"
    ip link set "$host_if" master "$BRIDGE" up
    ip -n "$ns" addr add "$SUBNET.$((i + 1))/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    if [ -n "$rate" ]; then
      # egress of the namespace (its uplink) and of the bridge port towards it (its downlink)
      ip netns exec "$ns" tc qdisc add dev eth0 root tbf rate "$rate" burst "$burst" latency 400ms
      tc qdisc add dev "$host_if" root tbf rate "$rate" burst "$burst" latency 400ms
    fi
  done
  # host file and rsh agent for mpirun
  : > "$STATE_DIR/hostfile"
  for i in $(seq 0 $((n - 1))); do echo "$PREFIX$i slots=1" >> "$STATE_DIR/hostfile"; done
  cat > "$STATE_DIR/rsh-agent" <<'AGENT'
#!/usr/bin/env bash
# mpirun's "rsh": run the ORTE daemon inside the namespace named like the host,
# in a fresh UTS namespace whose hostname is that name.
set -e
host=$1; shift
[ "$1" = "-x" ] && shift
exec ip netns exec "$host" unshare --uts /bin/sh -c 'hostname "$0"; exec /bin/sh -c "$*"' "$host" "$*"
AGENT
  chmod +x "$STATE_DIR/rsh-agent"
  echo "netns.sh: $n namespaces up (${rate:-unlimited}); hostfile $STATE_DIR/hostfile"
}

cmd_run() {
  local n=$1; shift
  check_n "$n"
  [ -f "$STATE_DIR/hostfile" ] || die "run 'netns.sh up $n' first"
  local extra=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do extra+=("$1"); shift; done
  [ "${1:-}" = "--" ] || die "run: expected '-- PROGRAM ARGS'"
  shift
  [ $# -gt 0 ] || die "run: no program"
  local yield=()
  [ "$n" -ge 3 ] && yield=(--mca mpi_yield_when_idle 1)
  [ -n "${LONGHAUL_LOG:-}" ] && extra+=(-x LONGHAUL_LOG)
  exec mpirun --allow-run-as-root -np "$n" --hostfile "$STATE_DIR/hostfile" \
    --mca plm_rsh_agent "$STATE_DIR/rsh-agent" --bind-to none \
    --mca btl self,tcp --mca btl_tcp_if_include "$SUBNET.0/24" --mca oob_tcp_if_include "$SUBNET.0/24" \
    "${yield[@]}" \
    "${extra[@]}" "$@"
}

cmd_down() {
  local n=$1
  need_root; check_n "$n"
  for i in $(seq 0 $((n - 1))); do
    ip netns del "$PREFIX$i" 2>/dev/null || true
    ip link del "lhv$i" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
  rm -f "$STATE_DIR/hostfile" "$STATE_DIR/rsh-agent"
  echo "netns.sh: removed"
}

cmd_status() {
  ip netns list | grep "^$PREFIX" || echo "no $PREFIX namespaces"
  ip link show "$BRIDGE" 2>/dev/null | head -1 || true
}

[ $# -ge 1 ] || die "usage: netns.sh up|run|down N ... | status"
action=$1; shift
case $action in
  up) [ $# -ge 1 ] || die "usage: netns.sh up N [--rate R] [--burst B]"; cmd_up "$@" ;;
  run) [ $# -ge 1 ] || die "usage: netns.sh run N [mpirun options] -- PROGRAM ARGS"; cmd_run "$@" ;;
  down) [ $# -ge 1 ] || die "usage: netns.sh down N"; cmd_down "$1" ;;
  status) cmd_status ;;
  *) die "unknown action '$action' (up, run, down, status)" ;;
esac

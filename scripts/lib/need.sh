# Sourced by the scripts that install what they need on a fresh Debian
# machine, so that "apt-get install what is missing" is written once:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/need.sh"   (from scripts/)
#   need node:nodejs npm:npm     # a command, and the package that provides it
#   need php-cli php-amqplib     # a package, checked with dpkg
#   need_install chromium        # install these (when a check of its own failed)
#
# Only what is missing is installed, in one apt-get run, through sudo when
# not root. The package list is refreshed only when an install fails on it
# (a stale list names versions the mirror no longer has). apt's output goes
# to stderr: some callers print results on stdout (scripts/cluster's URLs).
# Messages are prefixed with NEED_LOG (default: the calling script's name).

need_log() { echo "${NEED_LOG:-$(basename "$0")}: $*" >&2; }

# Installs the given Debian packages.
need_install() {
  (($#)) || return 0
  local sudo_cmd=()
  [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  # Another install on the machine holds dpkg's lock for a while: wait for
  # it rather than fail.
  local apt=("${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)
  need_log "apt-get install $*"
  "${apt[@]}" install -y -q --no-install-recommends "$@" >&2 \
    || { "${apt[@]}" update -qq >&2 && "${apt[@]}" install -y -q --no-install-recommends "$@" >&2; }
}

# Installs what is missing of the given needs: COMMAND:PACKAGE when the
# command is not on PATH, or PACKAGE when dpkg does not have it installed.
need() {
  local missing=() spec
  for spec in "$@"; do
    case $spec in
      *:*) command -v "${spec%%:*}" >/dev/null || missing+=("${spec#*:}") ;;
      *) dpkg-query -W -f='${Status}' "$spec" 2>/dev/null | grep -q 'install ok installed' \
        || missing+=("$spec") ;;
    esac
  done
  need_install "${missing[@]}"
}

#!/usr/bin/env bash
# bench/peers.sh: run Prosody and ejabberd, from Debian 12's packages, on
# loopback, configured so that they can be compared fairly with adhocd.
#
#   bench/peers.sh install
#       As root: install the prosody and ejabberd packages if missing, then
#       stop whatever system instance the packages started (prosody, beam.smp,
#       epmd), so that nothing of them takes CPU or ports. Idempotent.
#   bench/peers.sh start prosody|ejabberd DIR PORT NUSERS PASSWORD
#       Write a private configuration into DIR (created; config, data, logs
#       and pid files all stay in it; nothing in /etc or /var is used), with
#       domain localhost and c2s on 127.0.0.1:PORT only; create the accounts
#       bench0 ... bench{NUSERS-1}, admin and idle, all with PASSWORD (admin
#       and the bench users are server admins); start the server in the
#       background and wait (at most PEERS_START_TIMEOUT, 60 s) until it
#       accepts an XMPP login. Prints the PID of the server process (lua for
#       Prosody, beam.smp for ejabberd), also written to DIR/server.pid; all
#       else goes to stderr. On failure prints the log tail and exits 1.
#   bench/peers.sh stop prosody|ejabberd DIR
#       Stop the server that start started in DIR, by its PID, and wait (at
#       most PEERS_STOP_TIMEOUT, 30 s, then SIGKILL) until it is gone. Exits 0
#       when it is already stopped.
#
# Fairness with adhocd (the details are in the templates in bench/peers/):
#   - No TLS: no certificate is configured, STARTTLS is neither required nor
#     offered, and SASL PLAIN is offered on the unencrypted stream (Prosody:
#     c2s_require_encryption = false, allow_unencrypted_plain_auth = true;
#     ejabberd offers PLAIN on any stream, starttls: false).
#   - SCRAM-SHA-1 works and both store SCRAM credentials (Prosody:
#     internal_hashed; ejabberd: auth_password_format: scram), with 4096
#     PBKDF2 iterations like adhocd: Prosody's default_iteration_count = 4096
#     (its default is 10000); ejabberd 23.01 has 4096 hard-coded.
#   - No rate limits: Prosody without mod_limits; ejabberd with shaper: none
#     on the listener, c2s_shaper none, no shapers, max_fsm_queue raised.
#   - No session or per-address limits: neither server has a per-address
#     connection limit in this configuration, and ejabberd has no
#     max_user_sessions rule (so 1,000 sessions of 'idle' are allowed).
#   - Same accounts and admin rights; stock ad-hoc command sets (Prosody:
#     mod_adhoc + mod_admin_adhoc; ejabberd: mod_adhoc + mod_configure); a
#     small module set otherwise; logging at warning level.
#   - Both run as root (Prosody with run_as_root = true, ejabberdctl told not
#     to su), so DIR may be anywhere root can write, and with the same open
#     file limit (the soft limit is raised to the hard one).
#
# Ports: Prosody listens on PORT only. ejabberd also needs an Erlang
# distribution port for ejabberdctl: PORT+1000 (PORT-1000 above 64535) on
# 127.0.0.1, or PEERS_EJABBERD_DIST_PORT; no epmd is started at all.
set -euo pipefail

readonly SELF=${0##*/}
TEMPLATES=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/peers
readonly TEMPLATES
readonly START_TIMEOUT=${PEERS_START_TIMEOUT:-60}
readonly STOP_TIMEOUT=${PEERS_STOP_TIMEOUT:-30}
readonly DOMAIN=localhost

log() { printf '%s: %s\n' "$SELF" "$*" >&2; }
die() {
	log "$*"
	exit 1
}

usage() {
	cat >&2 <<EOF
usage: $SELF install
       $SELF start prosody|ejabberd DIR PORT NUSERS PASSWORD
       $SELF stop prosody|ejabberd DIR
EOF
	exit 2
}

# ---------------------------------------------------------------------------
# Small helpers.

# alive PID: the process exists (and is not a zombie).
alive() {
	local state
	[[ -r /proc/$1/stat ]] || return 1
	state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $state && $state != Z ]]
}

# is_ours PID DIR: the process's command line names a file in DIR (Prosody:
# --config DIR/prosody.cfg.lua; beam.smp: -mnesia dir DIR/spool), so a PID
# that was reused by an unrelated process since is never signalled.
is_ours() {
	local cmdline
	cmdline=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
	[[ $cmdline == *"$2/"* ]]
}

# wait_gone SECONDS PID...: wait until none of the PIDs is alive.
wait_gone() {
	local deadline=$((SECONDS + $1)) pid left
	shift
	while :; do
		left=0
		for pid in "$@"; do
			if alive "$pid"; then left=1; fi
		done
		((left)) || return 0
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}

# terminate SECONDS PID...: SIGTERM, wait, then SIGKILL what is left.
terminate() {
	local secs=$1 pid
	shift
	(($#)) || return 0
	kill -TERM "$@" 2>/dev/null || true
	if ! wait_gone "$secs" "$@"; then
		for pid in "$@"; do
			if alive "$pid"; then
				log "pid $pid did not stop in ${secs}s: SIGKILL"
				kill -KILL "$pid" 2>/dev/null || true
			fi
		done
		wait_gone 10 "$@" || die "pids $* still alive after SIGKILL"
	fi
}

# render TEMPLATE OUT KEY=VALUE...: copy TEMPLATE to OUT replacing each @KEY@.
render() {
	local text kv
	text=$(<"$1")
	shift
	local out=$1
	shift
	for kv in "$@"; do
		# Quoted replacement: no '&' expansion (bash 5.2 patsub_replacement).
		text=${text//"@${kv%%=*}@"/"${kv#*=}"}
	done
	printf '%s\n' "$text" >"$out"
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# read_until FD PATTERN...: read the stream on FD ('>' by '>', at most 2 s a
# read and 500 reads) until it contains one of the PATTERNs; print which one.
read_until() {
	local fd=$1 buf='' chunk pat n
	shift
	for ((n = 0; n < 500; n++)); do
		IFS= read -r -t 2 -d '>' -u "$fd" chunk || return 1
		buf+="$chunk>"
		for pat in "$@"; do
			if [[ $buf == *"$pat"* ]]; then
				printf '%s\n' "$pat"
				return 0
			fi
		done
	done
	return 1
}

# xmpp_login PORT USER PASSWORD: 0 when a client stream to PORT gets SASL
# PLAIN success for USER@localhost. Plain bash (/dev/tcp), no client needed.
xmpp_login() {
	local port=$1 user=$2 pass=$3 auth got
	auth=$(printf '\0%s\0%s' "$user" "$pass" | base64 -w0)
	(
		exec 3<>"/dev/tcp/127.0.0.1/$port"
		printf "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>" "$DOMAIN" >&3
		got=$(read_until 3 'mechanisms>' '</stream:stream>') || exit 1
		[[ $got == 'mechanisms>' ]] || exit 1
		printf "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>" "$auth" >&3
		got=$(read_until 3 '<success' '<failure' '</stream:stream>') || exit 1
		printf '</stream:stream>' >&3 || true
		[[ $got == '<success' ]]
	) 2>/dev/null
}

# raise_nofile: 1,000 idle connections need more than the usual 1024 open
# files; both servers get the same (hard) limit.
raise_nofile() {
	ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

# ---------------------------------------------------------------------------
# install

installed() {
	[[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == 'install ok installed' ]]
}

# stop_system_instances: the packages' postinst scripts start the system
# services through invoke-rc.d where policy allows it (a policy-rc.d that
# exits 101, as in Docker images, prevents it). SIGTERM is a clean shutdown
# for both prosody and beam.smp, so signal the PIDs in the services' pid
# files and every process of the packages' system users (prosody, ejabberd,
# and epmd where systemd's unit created it; an epmd started by the ejabberd
# init script runs as ejabberd). The benchmark instances run as root, so
# those users' processes are never theirs. The init scripts are not used:
# '/etc/init.d/ejabberd stop' itself boots an Erlang node, which starts an
# epmd. Last, the system epmd (port 4369) is killed if it still runs with no
# node registered; benchmark instances use no epmd.
stop_system_instances() {
	local pidfile pid pids=() u
	# Where systemd runs (not in this project's containers) it would restart
	# the units or socket-activate epmd: stop them through it first.
	if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
		systemctl stop prosody.service ejabberd.service epmd.socket epmd.service >/dev/null 2>&1 || true
	fi
	for pidfile in /run/prosody/prosody.pid /run/ejabberd/ejabberd.pid; do
		pid=$(cat "$pidfile" 2>/dev/null || true)
		if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid"; then pids+=("$pid"); fi
	done
	for u in prosody ejabberd epmd; do
		if id -u "$u" >/dev/null 2>&1; then
			while read -r pid; do
				[[ -n $pid ]] && pids+=("$pid")
			done < <(pgrep -u "$u" || true)
		fi
	done
	if ((${#pids[@]})); then
		mapfile -t pids < <(printf '%s\n' "${pids[@]}" | sort -un)
		log "stopping system instance processes: ${pids[*]}"
		terminate 20 "${pids[@]}"
	fi
	if command -v epmd >/dev/null && epmd -names >/dev/null 2>&1; then
		if epmd -names 2>/dev/null | grep -q '^name '; then
			log "warning: the system epmd has nodes registered; left running"
		else
			epmd -kill >/dev/null 2>&1 || true
		fi
	fi
}

cmd_install() {
	(($# == 0)) || usage
	((EUID == 0)) || die "install must run as root"
	export DEBIAN_FRONTEND=noninteractive
	local missing=() p
	for p in prosody ejabberd; do
		installed "$p" || missing+=("$p")
	done
	if ((${#missing[@]})); then
		log "installing ${missing[*]}"
		# apt's output goes to stderr: stdout is for results only.
		apt-get update >&2
		apt-get install -y prosody ejabberd >&2
	else
		log "prosody and ejabberd already installed"
	fi
	stop_system_instances
	dpkg-query -W -f='${Package} ${Version}\n' prosody ejabberd >&2
}

# ---------------------------------------------------------------------------
# start

# log_tail SERVER DIR: the last lines of the instance's logs, to stderr.
log_tail() {
	local f
	for f in "$2/prosody.log" "$2/prosody.out" "$2"/logs/*.log "$2/ejabberd.out"; do
		if [[ -s $f ]]; then
			log "---- tail of $f"
			tail -n 40 "$f" >&2
		fi
	done
}

# wait_ready SERVER DIR PORT PASSWORD PIDFN: until the process is alive and
# 'admin' can log in, at most START_TIMEOUT seconds. PIDFN prints the server
# PID (or nothing yet).
wait_ready() {
	local server=$1 dir=$2 port=$3 password=$4 pidfn=$5 pid=''
	local deadline=$((SECONDS + START_TIMEOUT))
	while ((SECONDS < deadline)); do
		pid=$("$pidfn" "$dir")
		if [[ -n $pid ]] && ! alive "$pid"; then
			log "$server exited during start-up"
			log_tail "$server" "$dir"
			return 1
		fi
		if [[ -n $pid ]] && xmpp_login "$port" admin "$password"; then
			printf '%s\n' "$pid" >"$dir/server.pid"
			printf '%s\n' "$pid"
			return 0
		fi
		sleep 0.2
	done
	log "$server did not accept a login on 127.0.0.1:$port within ${START_TIMEOUT}s"
	log_tail "$server" "$dir"
	if [[ -n $pid ]] && alive "$pid"; then terminate "$STOP_TIMEOUT" "$pid"; fi
	return 1
}

# users NUSERS: the account names, one a line.
users() {
	local i
	for ((i = 0; i < $1; i++)); do printf 'bench%d\n' "$i"; done
	printf '%s\n' admin idle
}

prosody_ctl() {
	prosodyctl --config "$1/prosody.cfg.lua" "${@:2}"
}

prosody_pid() {
	cat "$1/prosody.launch.pid" 2>/dev/null || true
}

start_prosody() {
	local dir=$1 port=$2 nusers=$3 password=$4 admins='' i u pid accounts
	for ((i = 0; i < nusers; i++)); do admins+="\"bench$i@$DOMAIN\", "; done
	admins+="\"admin@$DOMAIN\""
	# Fresh state: no accounts or logs of an earlier run.
	rm -rf "$dir/data" "$dir/prosody.log" "$dir/prosody.out" "$dir/prosody.pid" "$dir/prosody.launch.pid"
	mkdir -p "$dir/data" "$dir/certs"
	render "$TEMPLATES/prosody.cfg.lua.in" "$dir/prosody.cfg.lua" \
		"DIR=$dir" "PORT=$port" "ADMINS=$admins"

	# Accounts, created offline in the data store. 'prosodyctl register'
	# takes about 35 ms a call (Lua start-up and config loading: 35 s for
	# 1,000 users), so only 'admin' is registered with it, and its record
	# (SCRAM-SHA-1 stored key, server key, salt, 4096 iterations; nothing in
	# it names the user) is copied for every other account: the same
	# password with the same salt, which changes nothing in what a login
	# costs. The names are plain [a-z0-9], which the file store keeps as is.
	accounts=$dir/data/$DOMAIN/accounts
	prosody_ctl "$dir" register admin "$DOMAIN" "$password" >"$dir/prosody.out" 2>&1 ||
		{ cat "$dir/prosody.out" >&2; die "prosodyctl register admin failed"; }
	[[ -s $accounts/admin.dat ]] || die "prosodyctl register wrote no $accounts/admin.dat"
	while read -r u; do
		[[ $u == admin ]] || cp "$accounts/admin.dat" "$accounts/$u.dat"
	done < <(users "$nusers")

	# In the foreground (-F) of its own session, in the background of ours:
	# $! is the lua process itself (the prosody script is exec'd by env, and
	# setsid execs too since a background job is no group leader).
	raise_nofile
	setsid prosody --config "$dir/prosody.cfg.lua" -F \
		</dev/null >>"$dir/prosody.out" 2>&1 &
	pid=$!
	printf '%s\n' "$pid" >"$dir/prosody.launch.pid"
	wait_ready prosody "$dir" "$port" "$password" prosody_pid
}

# ejabberd_ctl DIR ARGS...: ejabberdctl on this instance's private files;
# HOME is DIR so that Erlang reads or writes nothing in root's home.
ejabberd_ctl() {
	local dir=$1
	shift
	HOME=$dir ejabberdctl \
		--config-dir "$dir" \
		--config "$dir/ejabberd.yml" \
		--ctl-config "$dir/ejabberdctl.cfg" \
		--spool "$dir/spool" \
		--logs "$dir/logs" \
		"$@"
}

ejabberd_pid() {
	cat "$1/ejabberd.pid" 2>/dev/null || true
}

start_ejabberd() {
	local dir=$1 port=$2 nusers=$3 password=$4 dist cookie pid
	dist=${PEERS_EJABBERD_DIST_PORT:-$((port <= 64535 ? port + 1000 : port - 1000))}
	if port_open "$dist"; then
		die "the Erlang distribution port 127.0.0.1:$dist is in use (set PEERS_EJABBERD_DIST_PORT)"
	fi
	cookie=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	# Fresh state: no Mnesia database or logs of an earlier run.
	rm -rf "$dir/spool" "$dir/logs" "$dir/ejabberd.pid" "$dir/ejabberd.out"
	mkdir -p "$dir/spool" "$dir/logs" "$dir/contrib/conf"
	render "$TEMPLATES/ejabberd.yml.in" "$dir/ejabberd.yml" "PORT=$port"
	(
		umask 077
		render "$TEMPLATES/ejabberdctl.cfg.in" "$dir/ejabberdctl.cfg" \
			"DIR=$dir" "NODE=bench$port@localhost" "DIST_PORT=$dist" "COOKIE=$cookie"
	)
	# ERL_INETRC (ejabberdctl takes it from the config dir): name resolution
	# of the VM, as in the package's /etc/ejabberd/inetrc: localhost is
	# 127.0.0.1, whatever /etc/hosts says.
	printf '%s\n' '{lookup, [file, native]}.' '{host, {127,0,0,1}, ["localhost"]}.' >"$dir/inetrc"

	# 'start' runs beam.smp detached (no parent left); ejabberd writes its
	# OS pid to DIR/ejabberd.pid (EJABBERD_PID_PATH) before it reads the
	# configuration.
	raise_nofile
	ejabberd_ctl "$dir" start </dev/null >"$dir/ejabberd.out" 2>&1 ||
		{ log_tail ejabberd "$dir"; die "ejabberdctl start failed"; }
	# Until the node runs ejabberd (pid file, then 'status').
	if ! wait_ejabberd_up "$dir"; then
		log_tail ejabberd "$dir"
		pid=$(ejabberd_pid "$dir")
		if [[ -n $pid ]] && alive "$pid"; then terminate "$STOP_TIMEOUT" "$pid"; fi
		die "ejabberd did not start"
	fi
	pid=$(ejabberd_pid "$dir")

	# Accounts: registered in the running node (Mnesia lives in it). Each
	# ejabberdctl call boots an Erlang VM (about 0.5 s), so rather than one
	# 'register' per account, all are imported at once from a XEP-0227
	# file with plain passwords ('import_piefxis' calls the same
	# ejabberd_auth:try_register as 'register', so SCRAM is derived the same
	# way, with 4096 iterations). The file holds the password: private, and
	# removed afterwards.
	(
		umask 077
		write_piefxis "$dir/accounts.xml" "$nusers" "$password"
	)
	if ! ejabberd_ctl "$dir" import_piefxis "$dir/accounts.xml" >>"$dir/ejabberd.out" 2>&1; then
		rm -f "$dir/accounts.xml"
		log_tail ejabberd "$dir"
		terminate "$STOP_TIMEOUT" "$pid"
		die "ejabberdctl import_piefxis (account creation) failed"
	fi
	rm -f "$dir/accounts.xml"
	wait_ready ejabberd "$dir" "$port" "$password" ejabberd_pid
}

# wait_ejabberd_up DIR: until ejabberd has written its pid file and
# 'ejabberdctl status' says the application runs (ejabberdctl's own
# 'started' polls only every 2 s).
wait_ejabberd_up() {
	local dir=$1 pid deadline=$((SECONDS + START_TIMEOUT))
	while ((SECONDS < deadline)); do
		pid=$(ejabberd_pid "$dir")
		if [[ -n $pid ]]; then
			alive "$pid" || { log "ejabberd exited during start-up"; return 1; }
			ejabberd_ctl "$dir" status >/dev/null 2>&1 && return 0
		fi
		sleep 0.2
	done
	log "ejabberd did not come up within ${START_TIMEOUT}s"
	return 1
}

# xml_attr TEXT: TEXT escaped for an XML attribute value.
xml_attr() {
	local t=$1
	# Quoted replacements: '&' is literal (bash 5.2 patsub_replacement).
	t=${t//&/"&amp;"}
	t=${t//</"&lt;"}
	t=${t//>/"&gt;"}
	t=${t//\'/"&apos;"}
	t=${t//\"/"&quot;"}
	printf '%s' "$t"
}

# write_piefxis FILE NUSERS PASSWORD: the accounts as XEP-0227 server data.
write_piefxis() {
	local u pw
	pw=$(xml_attr "$3")
	{
		printf '%s\n' "<?xml version='1.0' encoding='UTF-8'?>" \
			"<server-data xmlns='urn:xmpp:pie:0'>" "<host jid='$DOMAIN'>"
		while read -r u; do
			printf "<user name='%s' password='%s'/>\n" "$u" "$pw"
		done < <(users "$2")
		printf '%s\n' '</host>' '</server-data>'
	} >"$1"
}

cmd_start() {
	(($# == 5)) || usage
	local server=$1 dir=$2 port=$3 nusers=$4 password=$5 old
	[[ $server == prosody || $server == ejabberd ]] || usage
	if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then die "bad PORT: $port"; fi
	[[ $nusers =~ ^[0-9]+$ ]] || die "bad NUSERS: $nusers"
	[[ -n $password ]] || die "empty PASSWORD"
	# DIR goes into Lua and YAML strings and shell config: keep it plain.
	[[ $dir =~ ^[A-Za-z0-9._/+-]+$ ]] || die "DIR may only contain A-Z a-z 0-9 . _ / + -: $dir"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd -P)
	command -v "${server/ejabberd/ejabberdctl}" >/dev/null || die "$server is not installed (run: $SELF install)"

	old=$(cat "$dir/server.pid" 2>/dev/null || true)
	if [[ $old =~ ^[0-9]+$ ]] && alive "$old" && is_ours "$old" "$dir"; then
		die "$server already runs in $dir (pid $old): stop it first"
	fi
	rm -f "$dir/server.pid"
	if port_open "$port"; then die "127.0.0.1:$port is already in use"; fi

	"start_$server" "$dir" "$port" "$nusers" "$password"
}

# ---------------------------------------------------------------------------
# stop

cmd_stop() {
	(($# == 2)) || usage
	local server=$1 dir=$2 pid
	[[ $server == prosody || $server == ejabberd ]] || usage
	[[ -d $dir ]] || { log "$dir does not exist: nothing to stop"; return 0; }
	dir=$(cd "$dir" && pwd -P)
	pid=$(cat "$dir/server.pid" 2>/dev/null || true)
	# A start that failed half-way has no server.pid: fall back on the
	# server's own pid file.
	[[ -n $pid ]] || pid=$("${server}_pid" "$dir")
	if ! [[ $pid =~ ^[0-9]+$ ]] || ! alive "$pid"; then
		log "$server in $dir is not running"
		rm -f "$dir/server.pid"
		return 0
	fi
	is_ours "$pid" "$dir" || die "pid $pid is not the $server of $dir; not stopping it"
	# SIGTERM is a clean shutdown for both: Prosody closes its sessions,
	# and beam.smp runs init:stop(). (The beam's helpers, erl_child_setup
	# and inet_gethost, end with it.)
	terminate "$STOP_TIMEOUT" "$pid"
	rm -f "$dir/server.pid"
	log "$server in $dir stopped (pid $pid)"
}

# ---------------------------------------------------------------------------

main() {
	(($# >= 1)) || usage
	local cmd=$1
	shift
	case $cmd in
	install) cmd_install "$@" ;;
	start) cmd_start "$@" ;;
	stop) cmd_stop "$@" ;;
	*) usage ;;
	esac
}

main "$@"

# Runs the test that sources this file again inside a private mount
# namespace, its own and gone with it, where it may mount what it likes
# (a small tmpfs); skips (77) where that needs what the machine lacks.
# Source it before lib.sh.
if [ -z "${FLT_MOUNT_NS:-}" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "SKIP: needs root to mount a small file system"
		exit 77
	fi
	if ! command -v unshare >/dev/null ||
		! unshare -m --propagation private true 2>/dev/null; then
		echo "SKIP: creating a mount namespace is not permitted here"
		exit 77
	fi
	FLT_MOUNT_NS=1 exec unshare -m --propagation private bash "$0" "$@"
fi

/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * The "dipc" generic netlink family (version 1): what dipcctl asks dipc.ko.
 * Resolve the family id with CTRL_CMD_GETFAMILY, as for any genl family.
 *
 * DIPC_CMD_STATUS (do): one reply with a DIPC_A_STAT nest per item of
 *   /proc/dipc/status, in the same order and with the same names: a name
 *   and either a number (DIPC_A_STAT_VALUE) or a text (DIPC_A_STAT_TEXT).
 * DIPC_CMD_OBJECTS (dump): one message per distributed object this node
 *   has a shadow of (DIPC_A_OBJ_*).
 * DIPC_CMD_KEYS_GET (do): the key policy, DIPC_A_KEYS, as in
 *   /proc/sys/dipc/keys.
 * DIPC_CMD_KEYS_SET (do, CAP_NET_ADMIN): replaces the key policy with
 *   DIPC_A_KEYS (the syntax of /proc/sys/dipc/keys); -EINVAL leaves the
 *   old one.
 * DIPC_CMD_JOIN (do, CAP_NET_ADMIN): joins the cluster of the referee at
 *   DIPC_A_REFEREE ("a.b.c.d:port", or up to 5 replicated referees
 *   comma-separated) as node DIPC_A_NODE_ID (absent: the
 *   node_id given at load), with the secret in DIPC_A_SECRET_FILE (absent:
 *   the secret_file given at load, if any). Returns once the connection
 *   thread runs; the connection itself shows in DIPC_CMD_STATUS. Errors:
 *   -EISCONN already joined; -EINVAL a bad address or no node id; the
 *   secret file's (-ENOENT, -EPERM when others may read it, -EINVAL when
 *   its length is wrong).
 * DIPC_CMD_LEAVE (do, CAP_NET_ADMIN): leaves the cluster once the referee
 *   has taken back every page this node owns. Errors (nothing changed):
 *   -ENOTCONN not joined; -EBUSY a process here has a distributed segment
 *   attached; -EAGAIN not connected to the referee now, -EIO or -EINTR the
 *   referee did not confirm. With DIPC_A_FORCE the last three leave anyway
 *   (what this node owned is then lost, as when a node dies).
 */
#ifndef _UAPI_DIPC_NETLINK_H
#define _UAPI_DIPC_NETLINK_H

#define DIPC_GENL_NAME "dipc"
#define DIPC_GENL_VERSION 1

enum dipc_genl_cmd {
	DIPC_CMD_UNSPEC,
	DIPC_CMD_STATUS,
	DIPC_CMD_OBJECTS,
	DIPC_CMD_KEYS_GET,
	DIPC_CMD_KEYS_SET,
	DIPC_CMD_JOIN,
	DIPC_CMD_LEAVE,
	__DIPC_CMD_MAX,
};

enum dipc_genl_attr {
	DIPC_A_UNSPEC,
	DIPC_A_STAT,		/* nest: DIPC_A_STAT_* */
	DIPC_A_KEYS,		/* string */
	DIPC_A_OBJ_CLASS,	/* u8: 1 sem, 2 msg, 3 shm */
	DIPC_A_OBJ_ID,		/* s32: the local shadow's id */
	DIPC_A_OBJ_OID,		/* u64: the cluster-wide id */
	DIPC_A_OBJ_SIZE,	/* u64: nsems, or bytes (segments) */
	DIPC_A_OBJ_PAGES_READ,	/* u64: pages cached here read-only */
	DIPC_A_OBJ_PAGES_WRITE,	/* u64: pages owned (writable) here */
	DIPC_A_OBJ_NATTCH,	/* u64: attaches on this node */
	DIPC_A_PAD,
	DIPC_A_REFEREE,		/* string: "a.b.c.d:port[,a.b.c.d:port...]" (at most 5, 127 bytes) */
	DIPC_A_NODE_ID,		/* u32 */
	DIPC_A_SECRET_FILE,	/* string: a path */
	DIPC_A_FORCE,		/* flag */
	__DIPC_A_MAX,
};
#define DIPC_A_MAX (__DIPC_A_MAX - 1)

enum dipc_genl_stat_attr {
	DIPC_A_STAT_UNSPEC,
	DIPC_A_STAT_NAME,	/* string */
	DIPC_A_STAT_VALUE,	/* u64 */
	DIPC_A_STAT_TEXT,	/* string */
	DIPC_A_STAT_PAD,
	__DIPC_A_STAT_MAX,
};

#endif /* _UAPI_DIPC_NETLINK_H */

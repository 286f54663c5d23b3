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

// SPDX-License-Identifier: GPL-2.0
/*
 * The "dipc" generic netlink family (include/uapi/dipc_netlink.h): the
 * registration and the message layout are here; what goes in the messages
 * comes from Rust (dipc_rust_status_genl, dipc_rust_object_at).
 */
#include <net/genetlink.h>
#include "../dipc_helpers.h"
#include "../../include/uapi/dipc_netlink.h"

static void *dipc_genl_ctx;
static struct genl_family dipc_genl_family;

int dipc_genl_put_stat(void *msg, const char *name, u64 value, const char *text)
{
	struct sk_buff *skb = msg;
	struct nlattr *nest = nla_nest_start(skb, DIPC_A_STAT);

	if (!nest)
		return -EMSGSIZE;
	if (nla_put_string(skb, DIPC_A_STAT_NAME, name) ||
	    (text ? nla_put_string(skb, DIPC_A_STAT_TEXT, text) :
		    nla_put_u64_64bit(skb, DIPC_A_STAT_VALUE, value, DIPC_A_STAT_PAD))) {
		nla_nest_cancel(skb, nest);
		return -EMSGSIZE;
	}
	nla_nest_end(skb, nest);
	return 0;
}

static int dipc_genl_status(struct sk_buff *skb, struct genl_info *info)
{
	struct sk_buff *msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	void *hdr;
	int err;

	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_put_reply(msg, info, &dipc_genl_family, 0, DIPC_CMD_STATUS);
	if (!hdr) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	err = dipc_rust_status_genl(dipc_genl_ctx, msg);
	if (err) {
		nlmsg_free(msg);
		return err;
	}
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
}

static int dipc_genl_put_object(struct sk_buff *skb, struct netlink_callback *cb,
				const struct dipc_genl_object *o)
{
	void *hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid, cb->nlh->nlmsg_seq,
				&dipc_genl_family, NLM_F_MULTI, DIPC_CMD_OBJECTS);

	if (!hdr)
		return -EMSGSIZE;
	if (nla_put_u8(skb, DIPC_A_OBJ_CLASS, o->class) ||
	    nla_put_s32(skb, DIPC_A_OBJ_ID, o->id) ||
	    nla_put_u64_64bit(skb, DIPC_A_OBJ_OID, o->oid, DIPC_A_PAD) ||
	    nla_put_u64_64bit(skb, DIPC_A_OBJ_SIZE, o->size, DIPC_A_PAD) ||
	    nla_put_u64_64bit(skb, DIPC_A_OBJ_PAGES_READ, o->pages_read, DIPC_A_PAD) ||
	    nla_put_u64_64bit(skb, DIPC_A_OBJ_PAGES_WRITE, o->pages_write, DIPC_A_PAD) ||
	    nla_put_u64_64bit(skb, DIPC_A_OBJ_NATTCH, o->nattch, DIPC_A_PAD)) {
		genlmsg_cancel(skb, hdr);
		return -EMSGSIZE;
	}
	genlmsg_end(skb, hdr);
	return 0;
}

/* cb->args[0]: the index of the next object to send. */
static int dipc_genl_objects(struct sk_buff *skb, struct netlink_callback *cb)
{
	struct dipc_genl_object o;
	long pos = cb->args[0], next;

	/* pos: where the next part of the dump starts (class and slot). */
	while (dipc_rust_object_at(dipc_genl_ctx, pos, &next, &o)) {
		if (dipc_genl_put_object(skb, cb, &o))
			break;
		pos = next;
	}
	cb->args[0] = pos;
	return skb->len;
}

static int dipc_genl_keys_get(struct sk_buff *skb, struct genl_info *info)
{
	struct sk_buff *msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	char keys[DIPC_KEYS_LEN];
	void *hdr;

	if (!msg)
		return -ENOMEM;
	dipc_keys_get(keys, sizeof(keys));
	hdr = genlmsg_put_reply(msg, info, &dipc_genl_family, 0, DIPC_CMD_KEYS_GET);
	if (!hdr || nla_put_string(msg, DIPC_A_KEYS, keys)) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
}

static int dipc_genl_keys_set(struct sk_buff *skb, struct genl_info *info)
{
	if (GENL_REQ_ATTR_CHECK(info, DIPC_A_KEYS))
		return -EINVAL;
	return dipc_keys_set(nla_data(info->attrs[DIPC_A_KEYS]));
}

static int dipc_genl_join(struct sk_buff *skb, struct genl_info *info)
{
	struct nlattr *secret = info->attrs[DIPC_A_SECRET_FILE];
	struct nlattr *id = info->attrs[DIPC_A_NODE_ID];

	if (GENL_REQ_ATTR_CHECK(info, DIPC_A_REFEREE))
		return -EINVAL;
	return dipc_rust_join(dipc_genl_ctx, nla_data(info->attrs[DIPC_A_REFEREE]),
			      id ? nla_get_u32(id) : 0, secret ? nla_data(secret) : "");
}

static int dipc_genl_leave(struct sk_buff *skb, struct genl_info *info)
{
	return dipc_rust_leave(dipc_genl_ctx, nla_get_flag(info->attrs[DIPC_A_FORCE]));
}

static const struct nla_policy dipc_genl_policy[DIPC_A_MAX + 1] = {
	[DIPC_A_KEYS] = { .type = NLA_NUL_STRING, .len = DIPC_KEYS_LEN - 1 },
	[DIPC_A_REFEREE] = { .type = NLA_NUL_STRING, .len = 127 },
	[DIPC_A_NODE_ID] = { .type = NLA_U32 },
	[DIPC_A_SECRET_FILE] = { .type = NLA_NUL_STRING, .len = 255 },
	[DIPC_A_FORCE] = { .type = NLA_FLAG },
};

static const struct genl_small_ops dipc_genl_ops[] = {
	{ .cmd = DIPC_CMD_STATUS, .doit = dipc_genl_status },
	{ .cmd = DIPC_CMD_OBJECTS, .dumpit = dipc_genl_objects },
	{ .cmd = DIPC_CMD_KEYS_GET, .doit = dipc_genl_keys_get },
	{ .cmd = DIPC_CMD_KEYS_SET, .doit = dipc_genl_keys_set, .flags = GENL_ADMIN_PERM },
	{ .cmd = DIPC_CMD_JOIN, .doit = dipc_genl_join, .flags = GENL_ADMIN_PERM },
	{ .cmd = DIPC_CMD_LEAVE, .doit = dipc_genl_leave, .flags = GENL_ADMIN_PERM },
};

static struct genl_family dipc_genl_family = {
	.name = DIPC_GENL_NAME,
	.version = DIPC_GENL_VERSION,
	.maxattr = DIPC_A_MAX,
	.policy = dipc_genl_policy,
	.module = THIS_MODULE,
	/*
	 * Without the genl mutex: a leave waits for the referee, and must not
	 * hold up every other family meanwhile. The Rust side locks what it
	 * touches (joins and leaves are serialised by the node).
	 */
	.parallel_ops = true,
	.small_ops = dipc_genl_ops,
	.n_small_ops = ARRAY_SIZE(dipc_genl_ops),
	.resv_start_op = __DIPC_CMD_MAX,
};

int dipc_genl_register(void *ctx)
{
	dipc_genl_ctx = ctx;
	return genl_register_family(&dipc_genl_family);
}

/* Returns once no operation of the family runs (they hold the genl lock). */
void dipc_genl_unregister(void)
{
	genl_unregister_family(&dipc_genl_family);
}

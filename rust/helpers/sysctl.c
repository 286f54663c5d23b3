// SPDX-License-Identifier: GPL-2.0
/* /proc/sys/dipc/ (the run-time switch), /proc/dipc/ (status), module parameters. */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/sysctl.h>
#include <linux/utsname.h>
#include "../dipc_helpers.h"

int dipc_enabled = 1;

static char dipc_referee[64];
module_param_string(referee, dipc_referee, sizeof(dipc_referee), 0444);
MODULE_PARM_DESC(referee, "Referee address, a.b.c.d:port, or up to 5 replicated referees comma-separated (empty: do not connect)");

static void *dipc_ctl_ctx;
static char dipc_keys[DIPC_KEYS_LEN];
static char dipc_quantum_keys[DIPC_KEYS_LEN];
static char dipc_segment_keys[DIPC_KEYS_LEN];
/* Serialises the text sysctls' writes and reads. */
static DEFINE_MUTEX(dipc_keys_lock);
/* The default time quantum (ms); per key range in quantum_keys. */
static int dipc_quantum_ms;
static int dipc_quantum_max = DIPC_QUANTUM_MAX_MS;
static bool dipc_genl_registered;

/*
 * The parsers of the text sysctls (in Rust; a bad text is refused and
 * changes nothing). Called with dipc_keys_lock held; the caller keeps the
 * text once it is taken.
 */
static int dipc_keys_parse(const char *text)
{
	return dipc_rust_policy_set(dipc_ctl_ctx, text, strnlen(text, DIPC_KEYS_LEN));
}

static int dipc_quanta_parse(const char *text)
{
	return dipc_rust_quanta_set(dipc_ctl_ctx, text, strnlen(text, DIPC_KEYS_LEN));
}

static int dipc_whole_parse(const char *text)
{
	return dipc_rust_whole_set(dipc_ctl_ctx, text, strnlen(text, DIPC_KEYS_LEN));
}

int dipc_keys_set(const char *text)
{
	int err;

	mutex_lock(&dipc_keys_lock);
	err = dipc_keys_parse(text);
	if (!err)
		strscpy(dipc_keys, text, sizeof(dipc_keys));
	mutex_unlock(&dipc_keys_lock);
	return err;
}

void dipc_keys_get(char *buf, size_t len)
{
	mutex_lock(&dipc_keys_lock);
	strscpy(buf, dipc_keys, len);
	mutex_unlock(&dipc_keys_lock);
}

/*
 * /proc/sys/dipc/keys, quantum_keys and segment_keys: the text is parsed
 * (and refused) by the parser in extra1, and kept in data once taken.
 */
static int dipc_text_handler(const struct ctl_table *table, int write, void *buffer,
			     size_t *lenp, loff_t *ppos)
{
	int (*parse)(const char *text) = table->extra1;
	struct ctl_table tmp = *table;
	char buf[DIPC_KEYS_LEN] = "";
	int err;

	mutex_lock(&dipc_keys_lock);
	if (!write) {
		err = proc_dostring(table, write, buffer, lenp, ppos);
		goto out;
	}
	tmp.data = buf;
	err = proc_dostring(&tmp, write, buffer, lenp, ppos);
	if (err)
		goto out;
	err = parse(buf);
	if (!err)
		strscpy(table->data, buf, table->maxlen);
out:
	mutex_unlock(&dipc_keys_lock);
	return err;
}

static const struct ctl_table dipc_sysctl_table[] = {
	{
		.procname = "enabled",
		.data = &dipc_enabled,
		.maxlen = sizeof(int),
		.mode = 0644,
		.proc_handler = proc_dointvec_minmax,
		.extra1 = SYSCTL_ZERO,
		.extra2 = SYSCTL_ONE,
	},
	{
		.procname = "keys",
		.data = dipc_keys,
		.maxlen = sizeof(dipc_keys),
		.mode = 0644,
		.proc_handler = dipc_text_handler,
		.extra1 = dipc_keys_parse,
	},
	{
		.procname = "quantum_ms",
		.data = &dipc_quantum_ms,
		.maxlen = sizeof(int),
		.mode = 0644,
		.proc_handler = proc_dointvec_minmax,
		.extra1 = SYSCTL_ZERO,
		.extra2 = &dipc_quantum_max,
	},
	{
		.procname = "quantum_keys",
		.data = dipc_quantum_keys,
		.maxlen = sizeof(dipc_quantum_keys),
		.mode = 0644,
		.proc_handler = dipc_text_handler,
		.extra1 = dipc_quanta_parse,
	},
	{
		.procname = "segment_keys",
		.data = dipc_segment_keys,
		.maxlen = sizeof(dipc_segment_keys),
		.mode = 0644,
		.proc_handler = dipc_text_handler,
		.extra1 = dipc_whole_parse,
	},
};

static struct ctl_table_header *dipc_sysctl_header;
static struct proc_dir_entry *dipc_proc_dir;

static int dipc_status_show(struct seq_file *m, void *v)
{
	return dipc_rust_status_show(m, m->private);
}

int dipc_control_register(void *ctx)
{
	int err;

	dipc_ctl_ctx = ctx;
	dipc_sysctl_header = register_sysctl("dipc", dipc_sysctl_table);
	if (!dipc_sysctl_header)
		return -ENOMEM;
	dipc_proc_dir = proc_mkdir("dipc", NULL);
	if (!dipc_proc_dir)
		goto err;
	if (!proc_create_single_data("status", 0444, dipc_proc_dir, dipc_status_show, ctx))
		goto err;
	err = dipc_genl_register(ctx);
	if (err) {
		dipc_control_unregister();
		return err;
	}
	dipc_genl_registered = true;
	return 0;
err:
	dipc_control_unregister();
	return -ENOMEM;
}

void dipc_control_unregister(void)
{
	if (dipc_genl_registered)
		dipc_genl_unregister();
	dipc_genl_registered = false;
	/* Waits for readers of the status file to finish. */
	if (dipc_proc_dir)
		proc_remove(dipc_proc_dir);
	dipc_proc_dir = NULL;
	if (dipc_sysctl_header)
		unregister_sysctl_table(dipc_sysctl_header);
	dipc_sysctl_header = NULL;
}

unsigned int dipc_quantum_ms_get(void)
{
	return READ_ONCE(dipc_quantum_ms);
}

int dipc_enabled_get(void)
{
	return READ_ONCE(dipc_enabled);
}

const char *dipc_referee_param(void)
{
	return dipc_referee;
}

void dipc_nodename(char *buf, size_t len)
{
	strscpy(buf, utsname()->nodename, len);
}
